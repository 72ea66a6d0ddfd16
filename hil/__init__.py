"""The hardware-in-the-loop rig: drives flightsim into a runtime, uplinks a model, scores the results.

A library first (``hil.run``, which search calls for every candidate) and a CLI second.
"""

from hil.rig import RigResult, run

__all__ = ["RigResult", "run"]

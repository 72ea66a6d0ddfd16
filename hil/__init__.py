"""The hardware-in-the-loop rig: drives flightsim into a runtime, uplinks a model, scores the results.

A library first (``hil.run``, which search calls for every candidate) and a CLI second.
"""

from hil.rig import RigResult, run
from hil.settings import Settings

__all__ = ["RigResult", "Settings", "run"]

"""The flight software: receives tiles over ZeroMQ, segments vessels with an OpenVINO IR, sends polygons.

Depends on numpy, openvino, pyzmq, rasterio and shapely only; imports none of the other packages.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"

"""One import for both OpenVINO Python APIs the payload meets.

The Myriad X plugin exists only in the OpenVINO 2022.3 LTS toolkit (Python 3.10 at most), whose API
lives in ``openvino.runtime``; modern releases expose the same classes from ``openvino`` and dropped
``openvino.runtime`` in 2026. Everything in the runtime imports OpenVINO from here.
"""

from __future__ import annotations

try:  # OpenVINO 2023.1 and later
    from openvino import Core, Model, Tensor
    from openvino import get_version as _get_version

    API = "openvino"
except ImportError:  # OpenVINO 2022.3 LTS, the last with the MYRIAD plugin
    from openvino.runtime import Core, Model, Tensor  # type: ignore[no-redef]
    from openvino.runtime import get_version as _get_version  # type: ignore[no-redef]

    API = "openvino.runtime"

__all__ = ["API", "Core", "Model", "Tensor", "version"]


def version() -> str:
    """The OpenVINO build string, e.g. ``2026.4.1-...`` or ``2022.3.2-...``."""
    return _get_version()

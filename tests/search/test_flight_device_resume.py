"""A search scores every candidate on one device: ``hil_device = "flight"`` resolved once, not per candidate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import runtime.device
from search.evolution import run_search

ROOT = Path(__file__).resolve().parents[2]

#: Makes ``flight`` the CPU in every process started with it on PYTHONPATH (hil's runtime runs in one).
CPU_IS_FLIGHT = '''
import runtime.device
runtime.device.flight_default = lambda core=None: ("CPU", "CPU attached (a stand-in)")
'''


@pytest.mark.slow
def test_a_search_resumed_where_flight_is_another_device_is_refused(
        tmp_path: Path, tiny_cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``[candidate] hil_device = "flight"`` (the default) was resolved by every hil run on its own: a
    search begun where flight is the twin and resumed where it is another device (a MYRIAD or an NPU
    plugged in since; the CPU stands in for it here) ranked candidates scored on two devices, one
    by the Myriad X cost model's estimate and one by its measured p50, as one fitness."""
    cfg = {**tiny_cfg, "evolution": {**tiny_cfg["evolution"], "generations": 1}, "run": {**tiny_cfg["run"], "workers": 1}}
    out = tmp_path / "search"
    first = run_search(cfg, out, progress=False)
    assert {r["device_metrics"]["device"] for r in first.records.values() if r.get("device_metrics")} == {"myriadx-emu"}
    # a device attached since: flight is now the CPU, here and in the processes hil starts
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CPU_IS_FLIGHT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(runtime.device, "flight_default", lambda core=None: ("CPU", "CPU attached (a stand-in)"))
    resumed = {**cfg, "evolution": {**cfg["evolution"], "generations": 2}}
    with pytest.raises(ValueError, match=r"hil_device 'flight' is CPU here.*myriadx-emu"):
        result = run_search(resumed, out, progress=False)
        devices = {r["device_metrics"]["device"] for r in result.records.values() if r.get("device_metrics")}
        pytest.fail(f"resumed: one search ranked candidates scored on {sorted(devices)}; "
                    f"best {result.best and result.best['device_metrics']['device']}")

"""``--profile`` is the twin's target profile: given with a device that is no twin it was silently
ignored (``hil run --device CPU --profile myriadx-fp16-accumulate`` reported CPU f32 scores under
``profile: null``), so a hypothesis was never scored while the operator believed it had been."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import main as hil_main
from runtime import config
from runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("device", ["CPU", "GPU", "MYRIAD", "NPU.0"])
def test_a_profile_with_a_device_that_is_no_twin_is_refused(device: str) -> None:
    with pytest.raises(ValueError, match=rf"profile 'fp16-myriadx'.*myriadx-emu.*not {device}"):
        Settings.from_config(config.defaults(), device=device, profile="fp16-myriadx")


@pytest.mark.parametrize("device", ["myriadx-emu", "flight"])
def test_a_profile_with_the_twin_or_flight_is_taken(device: str) -> None:
    assert Settings.from_config(config.defaults(), device=device, profile="fp16-myriadx").profile == "fp16-myriadx"


def test_hil_refuses_a_profile_for_a_cpu_runtime_before_starting_it(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert hil_main(["run", "--scene", "synthetic:size=256", "--model", str(REPO / "models/default"), "--quiet",
                     "--device", "CPU", "--profile", "myriadx-fp16-accumulate", "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--profile" in err and "not CPU" in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_a_search_scoring_robust_profiles_off_the_twin_is_refused_before_training() -> None:
    """hil refuses a profile on a device that is no twin, so a search whose candidates would be
    scored under robust_profiles on the CPU is refused up front, not after every training."""
    from search.recipe import check_scoring

    cand = {"hil_device": "CPU", "robust_profiles": ["fp16-myriadx"], "check_target": "MYRIAD"}
    with pytest.raises(ValueError, match="robust_profiles"):
        check_scoring(cand)
    check_scoring({**cand, "hil_device": "myriadx-emu"})
    check_scoring({**cand, "robust_profiles": []})

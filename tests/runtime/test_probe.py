"""``runtime probe``: the battery recovers every profile from the twin's outputs alone, and fp32 on
the CPU; what it writes is a profile the loader reads back as the same profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.probe import probe, to_toml
from runtime.profiles import get_profile, profile_names, read_profiles

REPO = Path(__file__).resolve().parents[2]


def _same_semantics(measured, profile) -> bool:
    if profile is None or measured is None:
        return profile is None and measured is None
    return (set(map(tuple, measured.native_nearest)) == set(map(tuple, profile.native_nearest))
            and set(measured.native_linear) == set(profile.native_linear)
            and tuple(measured.remap_nearest) == tuple(profile.remap_nearest)
            and measured.remap_linear == profile.remap_linear)


@pytest.mark.parametrize("name", profile_names())
def test_the_probe_recovers_each_profile_on_the_twin(name: str, tmp_path: Path) -> None:
    result = probe("myriadx-emu", name)
    expected = get_profile(name)
    assert name in result["matches"], result["mismatches"].get(name)
    path = tmp_path / "measured.toml"
    path.write_text(to_toml(result, "measured"))
    measured = read_profiles(path)["measured"]
    assert measured.numerics == expected.numerics
    assert _same_semantics(measured.ops.interpolate, expected.ops.interpolate)
    assert all(v.startswith("measured: runtime probe") for v in measured.status.values())


def test_the_cpu_in_f32_is_fp32() -> None:
    result = probe("CPU")
    assert result["matches"] == ["fp32"], result["mismatches"]
    assert result["numerics"]["format"]["evidence"]["significant_bits"] == 24


def test_the_command_line_writes_a_profile_and_refuses_a_profile_for_a_real_device(tmp_path: Path) -> None:
    out = tmp_path / "p.toml"
    proc = subprocess.run([sys.executable, "-m", "runtime", "probe", "--device", "myriadx-emu", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "matches: fp16-myriadx" in proc.stdout, proc.stderr
    assert read_profiles(out)["measured-myriadx-emu"].numerics == get_profile("fp16-myriadx").numerics
    proc = subprocess.run([sys.executable, "-m", "runtime", "probe", "--device", "CPU", "--profile", "bf16"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "applies to a twin" in proc.stderr

"""``runtime probe``: the battery recovers every profile from the twin's outputs alone, and fp32 on
the CPU; what it writes is a profile the loader reads back as the same profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime import config
from runtime.probe import probe, to_toml
from runtime.profiles import get_profile, profile_names, read_profiles

REPO = Path(__file__).resolve().parents[2]


def _same_semantics(measured, profile) -> bool:
    if profile is not None and profile.honour_all:
        # every coordinate mode as written (myriadx-native-interp): what the probe, which tries the
        # coordinate modes of the modes that compile, measures as no remapping table
        profile = None
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


def test_the_cpu_told_f16_computes_as_fp16_ieee_where_it_has_fp16_units() -> None:
    """On a CPU with FP16 arithmetic (AVX512_FP16, as on the Intel AMX hosts here) the plugin told
    f16 computes in binary16, and every field the probe measures is the ``fp16-ieee`` reference
    profile's: a real FP16 device on the host, against which that profile is measured rather than
    assumed. Where the plugin does not compute in f16, there is nothing to compare."""
    try:
        result = probe("CPU", cpu_precision="f16")
    except RuntimeError as exc:  # a plugin may refuse the hint on a CPU without FP16 units
        pytest.skip(f"the CPU plugin refuses f16 here: {str(exc)[:200]}")
    assert result["cpu_precision"] == "f16"
    found = result["numerics"]["format"]["value"]
    if found != "fp16":
        pytest.skip(f"the CPU plugin told f16 computes in {found} here")
    assert result["matches"] == ["fp16-ieee"], result["mismatches"]


def test_a_cpu_precision_is_one_the_plugin_knows_and_only_for_the_cpu() -> None:
    from runtime.probe import Runner
    from runtime.settings import Settings

    with pytest.raises(ValueError, match=r"one of \['f32', 'bf16', 'f16'\]"):
        Runner("CPU", cpu_precision="fp8")
    with pytest.raises(ValueError, match="applies to the CPU"):
        Runner("myriadx-emu", cpu_precision="f16")
    cfg = config.defaults()
    cfg["inference"]["cpu_precision"] = "f64"
    with pytest.raises(ValueError, match="cpu precision must be one of"):
        Settings.from_config(cfg)

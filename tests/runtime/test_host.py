"""runtime.host: the CPU that computed a figure, as reports and benchmarks name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.host import describe_host, host_line

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile
"""


def test_an_amx_host_is_named_with_its_flags(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(XEON)
    host = describe_host(tmp_path / "cpuinfo")
    assert host["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert host["avx512"] and host["avx512_fp16"] and host["amx"] and host["avx2"]
    assert host_line(host).endswith("AVX-512 FP16 yes, AMX yes")


def test_unreadable_cpuinfo_gives_unknown_flags_not_false(tmp_path: Path) -> None:
    host = describe_host(tmp_path / "missing")
    assert host["amx"] is None and "AMX ?" in host_line(host)


def test_this_host_is_described() -> None:
    host = describe_host()
    assert host["cpu"] and host["cores"] >= 1


def test_cores_are_those_the_process_may_use_not_the_machines() -> None:
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks on this OS")
    before = os.sched_getaffinity(0)
    one = {min(before)}
    os.sched_setaffinity(0, one)
    try:
        assert describe_host()["cores"] == 1
    finally:
        os.sched_setaffinity(0, before)

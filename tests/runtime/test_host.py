"""runtime.host: the CPU that computed a figure, as reports and benchmarks name it, and where this
process's CPU goes by thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import zmq

from runtime.host import cpu_by_thread, describe_host, host_line, idle_seconds

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


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread CPU is read from /proc")
def test_cpu_is_accounted_to_the_python_thread_that_spent_it_and_to_zeromq() -> None:
    done, spun = threading.Event(), threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        done.wait(10)  # alive while it is counted: a thread that ended is no longer in /proc

    thread = threading.Thread(target=spin, name="spinner-under-test", daemon=True)
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)  # starts ZeroMQ's I/O thread
    thread.start()
    try:
        assert spun.wait(10)
        cpu = cpu_by_thread()
        assert 0.25 <= cpu["spinner-under-test"] <= 1.0, cpu
        assert "zmq" in cpu and cpu["MainThread"] >= 0.0
        assert all(v >= 0 for v in cpu.values())
    finally:
        done.set()
        thread.join()
        socket.close(0)
        context.term()


def test_idle_time_is_read_from_proc_stat_and_unknown_without_it(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 4000 200 0 3 0 0 0\ncpu0 50 0 25 2000 100 0 1 0 0 0\n")
    assert idle_seconds(stat) == pytest.approx(4200 / os.sysconf("SC_CLK_TCK"))
    assert idle_seconds(tmp_path / "absent") is None
    stat.write_text("intr 1 2 3\n")
    assert idle_seconds(stat) is None

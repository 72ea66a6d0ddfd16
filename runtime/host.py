"""The machine a figure was measured on: CPU model, cores and the instruction sets that change what
OpenVINO's CPU plugin computes and how fast (AVX-512, AVX-512 BF16/FP16, AMX); and where this
process's CPU time goes, thread by thread.

Every report and benchmark summary carries this beside its figures, because the same kind of
machine here may be an AMD EPYC or an Intel Xeon with AMX, and the CPU plugin picks different
kernels (and precisions, unless told) on each.
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path
from typing import Any

#: /proc/cpuinfo flags reported, by the name used in reports.
FLAGS = {"avx2": "avx2", "avx512": "avx512f", "avx512_bf16": "avx512_bf16",
         "avx512_fp16": "avx512_fp16", "amx": "amx_tile"}


def usable_cores() -> int:
    """Logical cores this process may run on: its affinity mask where the OS has one (``taskset``,
    a container's cpuset), not the machine's count, since that is what a figure was measured on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def describe_host(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """CPU model, logical cores and the flags in :data:`FLAGS` (``None`` where they cannot be read)."""
    model, flags = platform.processor() or platform.machine(), None
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and flags is None:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "cores": usable_cores(),
            **{name: (None if flags is None else flag in flags) for name, flag in FLAGS.items()}}


def host_line(host: dict[str, Any] | None = None) -> str:
    """One line for docs: ``AMD EPYC, 2 cores, AVX-512 yes, AVX-512 FP16 no, AMX no``."""
    h = host or describe_host()

    def yes(v: Any) -> str:
        return "?" if v is None else "yes" if v else "no"

    return (f"{h['cpu']}, {h['cores']} cores, AVX-512 {yes(h['avx512'])}, AVX-512 BF16 {yes(h['avx512_bf16'])}, "
            f"AVX-512 FP16 {yes(h['avx512_fp16'])}, AMX {yes(h['amx'])}")


def thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) each live thread of this process has used, by thread id, with
    the thread's OS name; ``{}`` where /proc cannot be read (not Linux)."""
    task = Path("/proc/self/task")
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    threads: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(task)
    except OSError:
        return threads
    for tid in tids:
        try:
            stat = (task / tid / "stat").read_text()
            name = (task / tid / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
        threads[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return threads


def cpu_by_thread() -> dict[str, float]:
    """CPU seconds of this process's live threads, grouped: each Python thread by its name
    (threads of one name summed), ZeroMQ's I/O threads as ``zmq``, and every other thread, which
    Python did not start (OpenVINO's inference streams, mostly), as ``native``. The payload's own
    account of where its host CPU goes, beside what the device computes."""
    python = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    spent: dict[str, float] = {}
    for tid, (os_name, seconds) in thread_cpu_seconds().items():
        key = python.get(tid) or ("zmq" if os_name.startswith("ZMQ") else "native")
        spent[key] = spent.get(key, 0.0) + seconds
    return spent


def idle_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """Seconds this machine's cores have been idle (idle and iowait) since boot, summed over the
    cores; None where /proc/stat cannot be read (not Linux). Over a benchmark round, time no thread of
    anything had work for: a pipeline stalled on a wait shows here, not in any thread's CPU."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != "cpu":
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (int(fields[4]) + int(fields[5])) / tick


if __name__ == "__main__":
    print(host_line())

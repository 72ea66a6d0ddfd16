"""The machine a figure was measured on: CPU model, cores and the instruction sets that change what
OpenVINO's CPU plugin computes and how fast (AVX-512, AVX-512 BF16/FP16, AMX).

Every report and benchmark summary carries this beside its figures, because the same kind of
machine here may be an AMD EPYC or an Intel Xeon with AMX, and the CPU plugin picks different
kernels (and precisions, unless told) on each.
"""

from __future__ import annotations

import os
import platform
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


if __name__ == "__main__":
    print(host_line())

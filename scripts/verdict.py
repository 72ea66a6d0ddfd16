"""The end of a rig script's run (soak, adversarial soak, fuzz campaign): its summary written to
``--out``, its verdict said, and its work folder removed on success or kept, and named, on failure,
where the runtime's log is what an operator reads next."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def finish(summary: dict[str, Any], out: Path | None, work: Path, kept: str) -> int:
    """Write ``summary`` (with its ``failures`` list) to ``out`` if given; then, if it failed, say
    why and ``kept`` (what of ``work`` is kept for the operator) on stderr and return 1, else remove
    ``work`` and return 0."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1))
    why = summary["failures"]
    if why:
        print("FAIL: " + "; ".join(why), file=sys.stderr)
        print(kept, file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0

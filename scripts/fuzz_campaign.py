"""Fuzz campaign against a real runtime over its sockets: malformed tiles and control commands.

    .venv/bin/python scripts/fuzz_campaign.py --per-kind 300 --out out/fuzz.json

Every malformed message must come back as a result (tiles) or a reply (commands): rejected with a
reason, or processed if the mutation happened to leave it valid. The runtime must still serve a
valid tile afterwards. Prints a table by kind and outcome; exits 1 on any crash or loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from malformed import CONTROL_KINDS, TILE_KINDS, valid_tile  # noqa: E402

from flightsim.streamer import Streamer  # noqa: E402
from hil.collector import ResultCollector  # noqa: E402
from hil.runtime_proc import RuntimeProcess  # noqa: E402
from runtime import protocol  # noqa: E402
from runtime.client import ControlClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    log = Path(tempfile.mkdtemp()) / "runtime.log"
    proc = RuntimeProcess("CPU", log, 60)
    summary: dict = {"tiles": {}, "control": {}, "crashes": 0, "lost": 0}
    try:
        control = ControlClient(proc.endpoints["control"], timeout_s=30)
        control.load_model(args.model)
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        streamer = Streamer(proc.endpoints["tiles"], window=32)
        seen = 0

        def duplicates() -> int:
            # A mutated header may repeat an id already seen: the runtime acknowledges it as a resend
            # (duplicate) and, by design, does not process it twice, so no second result comes.
            acks = [*streamer.log.acks.values(), *streamer.log.anonymous_acks]
            return sum(1 for a in acks if a.get("duplicate"))

        for kind, make in TILE_KINDS.items():
            dup_before = duplicates()
            for i in range(args.per_kind):
                streamer.send_frames(f"{kind}/{i}", make(rng, i))
            streamer.drain()
            dup = duplicates() - dup_before
            complete = collector.wait_for(seen + args.per_kind - dup, 60)
            batch = collector.results[seen:]
            seen = len(collector.results)
            outcomes = Counter(r["reason"] or "processed" if r["status"] == "rejected" else "processed" for _, r, _ in batch)
            if dup:
                outcomes["duplicate id: acknowledged, not processed again"] = dup
            lost = args.per_kind - len(batch) - dup
            summary["lost"] += lost
            summary["tiles"][kind] = {"sent": args.per_kind, "outcomes": dict(outcomes), "lost": lost,
                                      "rejected_without_reason": sum(1 for _, r, _ in batch if r["status"] == "rejected" and not r.get("reason"))}
            if proc.proc.poll() is not None or not complete:
                summary["crashes"] += proc.proc.poll() is not None
                break
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(proc.endpoints["control"])
        for kind, make in CONTROL_KINDS.items():
            replies: Counter = Counter()
            for _ in range(args.per_kind):
                sock.send_multipart(make(rng))
                if not sock.poll(30_000):
                    summary["crashes"] += 1
                    break
                reply = protocol.loads(sock.recv())
                replies["ok" if reply.get("ok") else "refused with error"] += 1
            summary["control"][kind] = {"sent": args.per_kind, "replies": dict(replies)}
        # Still serving: a valid tile after all that.
        streamer.send_frames("after/0", valid_tile(rng, 0, "after/0"))
        streamer.drain()
        collector.wait_for(seen + 1, 30)
        after = [r for _, r, _ in collector.results[seen:] if r.get("tile_id") == "after/0"]
        summary["valid_tile_after_campaign"] = after[0]["status"] if after else "missing"
        summary["status_after"] = control.status()["counters"]
        collector.close()
        streamer.close()
    except Exception:
        print(f"campaign failed; runtime log: {log}", file=sys.stderr)
        raise
    finally:
        code = proc.close()
    summary["runtime_exit_code"] = code
    total_tiles = sum(k["sent"] for k in summary["tiles"].values())
    total_control = sum(k["sent"] for k in summary["control"].values())
    print(f"{'kind':<22}{'sent':>6}  outcomes")
    for kind, row in summary["tiles"].items():
        print(f"tile/{kind:<17}{row['sent']:>6}  {row['outcomes']} lost {row['lost']}")
    for kind, row in summary["control"].items():
        print(f"control/{kind:<14}{row['sent']:>6}  {row['replies']}")
    print(f"{total_tiles} malformed tiles, {total_control} malformed commands; crashes {summary['crashes']}, "
          f"lost {summary['lost']}; valid tile afterwards: {summary['valid_tile_after_campaign']}; "
          f"runtime exit code {code}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))
    ok = summary["crashes"] == 0 and summary["lost"] == 0 and summary["valid_tile_after_campaign"] == "ok" and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz campaign against a real runtime over its sockets: malformed tiles and control commands.

    .venv/bin/python scripts/fuzz_campaign.py --per-kind 300 --out out/fuzz.json

Every malformed message must come back as a result (tiles) or a reply (commands): rejected with a
reason, or processed if the mutation happened to leave it valid. The runtime must still serve a
valid tile afterwards. Prints a table by kind and outcome, and writes it to ``--out``, whatever
happened (a runtime that crashes mid-campaign is what the campaign exists to report); exits 1 on
any crash, loss, rejection without a reason, control reply timeout, a valid tile not served
afterwards, or a runtime exit code other than 0. The runtime's log is kept, its path printed, on
failure only.

Tiles are accounted per message, not per kind (:func:`account`): each result is matched to the
message whose ids it echoes, and a message answered twice, a message not answered, and a result
that answers no message sent each fail the campaign; counted per kind, one message answered twice
and another not at all cancelled out (review 19). Messages whose results cannot be told apart (a
header no one can read: every such result echoes no id) are sent one at a time, each once the
answer to the one before has come, so that each answer still belongs to one message.

Length: over 400 lines, kept in one file because it is one campaign: the tile phase, its per-message
accounting and the control phase share the runtime, the sockets and the summary they fill; the
malformed messages themselves live apart (scripts/malformed.py).
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from malformed import CONTROL_KINDS, TILE_KINDS, valid_tile  # noqa: E402

from flightsim.streamer import LinkError, Streamer  # noqa: E402
from hil.collector import ResultCollector  # noqa: E402
from hil.runtime_proc import RuntimeProcess  # noqa: E402
from runtime import protocol  # noqa: E402
from runtime.client import ControlClient, ControlError  # noqa: E402
from runtime.config import defaults, positive_int  # noqa: E402
from scripts.verdict import finish  # noqa: E402

#: The served runtime's [limits] max_header_bytes (RuntimeProcess serves the defaults).
HEADER_LIMIT = int(defaults()["limits"]["max_header_bytes"])

REPO = Path(__file__).resolve().parents[1]

#: Seconds to wait for each control reply; a stalled runtime costs this much per message.
REPLY_TIMEOUT_S = 30.0
#: Control replies missed in a row after which the runtime is taken for unresponsive and the control
#: phase stops (each miss costs REPLY_TIMEOUT_S).
MAX_TIMEOUTS_IN_A_ROW = 3
#: The outcome of a rejection whose result gives no reason (a runtime bug: every rejection must say why).
NO_REASON = "rejected without reason"
#: The outcome of a tile whose id the runtime took for a resend of one already taken.
DUPLICATE = "duplicate id: acknowledged, not processed again"
#: Rejection reasons that are a runtime bug whatever the input (the runtime turns a bug met on a tile
#: into this reason instead of stopping): the campaign would otherwise pass the very bugs it looks for.
BUG_REASONS = frozenset({"internal_error"})
#: kind -> the only outcomes a correct runtime gives it: every message of these kinds is invalid by
#: construction (or, for ``same_name_scene``, valid), so any other outcome ("processed" included)
#: means a check of the runtime is gone. Kinds not listed mutate at random and may leave a valid tile.
EXPECTED_OUTCOMES: dict[str, frozenset[str]] = {
    "pixel_bit_flips": frozenset({"bad_checksum"}), "truncated_pixels": frozenset({"wrong_byte_count"}),
    "extra_bytes": frozenset({"wrong_byte_count"}), "missing_frame": frozenset({"bad_frames"}),
    "extra_frame": frozenset({"bad_frames"}), "required_field_removed": frozenset({"bad_header"}),
    "unknown_version": frozenset({"unknown_version"}), "huge_shape": frozenset({"too_large"}),
    "float_pixels": frozenset({"unsupported_dtype"}), "nan_inf_in_header": frozenset({"bad_header"}),
    "wrong_band_count": frozenset({"bad_shape"}), "deep_nesting": frozenset({"bad_header"}),
    "long_ids": frozenset({"bad_header"}), "extreme_numbers": frozenset({"bad_header"}),
    "same_name_scene": frozenset({"processed"}),
}
#: What a result echoes of the tile message it answers (``protocol.tile_ids``): scene_id, tile_id, seq
#: and checksum, each None where the message's was missing or unusable.
AnswerKey = tuple[Any, Any, Any, Any]
#: Seconds to wait for the answer to the last message with the same answer key before sending one
#: whose answer could not be told apart from it (see the module docstring).
ANSWER_WAIT_S = 5.0
#: The tile sent after the campaign to see the runtime still serve; not a campaign message.
AFTER_ID = "after/0"


class Sent(NamedTuple):
    """One malformed tile message sent: its campaign id (``kind/index``), its kind, the ids its
    answer will echo, and when it was sent (``time.monotonic``, the clock of the collector's results).
    A NamedTuple, not a dataclass: tests load this script as a module that is not in sys.modules."""

    msg_id: str
    kind: str
    key: AnswerKey
    t_sent: float


def result_key(result: dict[str, Any]) -> AnswerKey:
    """The ids a result (or a tile header) echoes, as :data:`AnswerKey`."""
    ids = protocol.tile_ids(result)
    return ids["scene_id"], ids["tile_id"], ids["seq"], ids["checksum"]


def answer_key(frames: list[bytes]) -> AnswerKey:
    """The ids the runtime's answer to a tile message will echo: those of its header as the runtime's
    own decoder reads it (``protocol.decode_tile``; of a refused message, what it could read)."""
    try:
        # pixel limits above any: the header is all we want; the header's own, the runtime's (a header
        # over it is refused unread, its ids null)
        header, _ = protocol.decode_tile(frames, 1 << 62, 1 << 20, HEADER_LIMIT)
    except protocol.TileRejected as exc:
        header = exc.header
    except Exception:  # noqa: BLE001 - the runtime would answer a bug here with no ids either
        header = {}
    return result_key(header)


def _accepted(result: dict[str, Any]) -> bool:
    """Whether a result says its tile was accepted first (processed, or failed in inference): a
    resend of that tile is then acknowledged as a duplicate and not answered again."""
    return result.get("status") == "ok" or result.get("reason") == "inference_failed"


def account(sent: list[Sent], answers: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Each message's answers: ``answers`` (time received, result) matched to the messages ``sent``.

    A result belongs to the message whose ids it echoes (:func:`answer_key`); of several messages
    with those ids (sent one at a time), to the last one sent before it came. A message not answered
    is a resend, not a loss, when an earlier message of the same (scene_id, tile_id, checksum) was
    accepted: the runtime acknowledges it as a duplicate and by design does not answer it again.

    Returns ``answers`` (per message, in the order of ``sent``, the results that answered it),
    ``not_answered`` and ``duplicates`` (message ids), ``answered_twice`` (message id -> answers),
    and ``stray`` (results that answer no message sent). Nothing cancels out: a message answered
    twice and another not answered are both reported."""
    by_key: dict[AnswerKey, list[int]] = defaultdict(list)
    for i, message in enumerate(sent):
        by_key[message.key].append(i)
    times = {key: [sent[i].t_sent for i in idx] for key, idx in by_key.items()}
    got: list[list[dict[str, Any]]] = [[] for _ in sent]
    stray: list[dict[str, Any]] = []
    for t, result in sorted(answers, key=lambda a: a[0]):
        key = result_key(result)
        n = bisect.bisect_right(times.get(key, []), t)
        if n == 0:  # no message with these ids, or none sent yet
            stray.append(result)
        else:
            got[by_key[key][n - 1]].append(result)
    accepted: set[tuple[Any, Any, Any]] = set()
    not_answered: list[str] = []
    duplicates: list[str] = []
    twice: dict[str, int] = {}
    for message, results in zip(sent, got):
        tile = (message.key[0], message.key[1], message.key[3])
        known = None not in tile
        if not results:
            (duplicates if known and tile in accepted else not_answered).append(message.msg_id)
        elif len(results) > 1:
            twice[message.msg_id] = len(results)
        if known and results and _accepted(results[0]):
            accepted.add(tile)
    return {"answers": got, "not_answered": not_answered, "duplicates": duplicates, "answered_twice": twice,
            "stray": stray}


def outcome(result: dict[str, Any]) -> str:
    """A result's row in the table: its rejection reason, ``NO_REASON`` for a rejection that gives
    none (not "processed": that is the bug to see), or "processed"."""
    if result.get("status") == "rejected":
        return result.get("reason") or NO_REASON
    return "processed"


def message_key(frames: list[bytes], fallback: str) -> str:
    """The id the runtime will echo in its ack of this message: the header's ``tile_id`` when it is
    readable (a string the runtime echoes), else ``fallback``. Keying the sender's log by the
    campaign's own id instead would file every ack as anonymous and list every tile, acknowledged or
    not, as unacknowledged when the link stalls."""
    try:
        tile_id = json.loads(frames[0]).get("tile_id") if frames else None
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return fallback
    if isinstance(tile_id, str) and len(tile_id) <= protocol.MAX_ID_CHARS:
        return tile_id
    return fallback


def unexpected_outcomes(kind: str, outcomes: dict[str, int]) -> dict[str, int]:
    """The outcomes of ``kind`` a correct runtime does not give: a bug reason (any kind), or, for a
    kind in ``EXPECTED_OUTCOMES``, anything else than what it expects. A rejection without a reason
    is counted apart (``NO_REASON``)."""
    allowed = EXPECTED_OUTCOMES.get(kind)
    return {o: n for o, n in outcomes.items() if o != NO_REASON
            and (o in BUG_REASONS or (allowed is not None and o not in allowed))}


def control_outcome(reply: dict[str, Any]) -> str:
    """A control reply's row: every campaign command is malformed, so only a refusal that says why
    is right; "ok" (the runtime took a malformed command) and a bug in a command are failures."""
    error = reply.get("error")
    if reply.get("ok"):
        return "ok"
    if not isinstance(error, str) or not error:
        return "refused without error"
    return "internal error" if error.startswith("internal error") else "refused with error"


def runtime_alive(proc: RuntimeProcess) -> bool:
    """Whether the runtime process is still running."""
    return proc.proc.poll() is None


def failures(summary: dict[str, Any]) -> list[str]:
    """Why the campaign failed, one line per reason; empty when it passed."""
    why = []
    if summary.get("error"):
        why.append(f"campaign stopped early: {summary['error']}")
    if summary.get("crashes"):
        why.append(f"{summary['crashes']} runtime crash(es)")
    if summary.get("lost"):
        why.append(f"{summary['lost']} tiles lost")
    if summary.get("answered_twice"):
        why.append(f"{summary['answered_twice']} tiles answered more than once")
    if summary.get("stray_answers"):
        why.append(f"{summary['stray_answers']} results answering no tile sent")
    if summary.get("rejected_without_reason"):
        why.append(f"{summary['rejected_without_reason']} rejections without a reason")
    if summary.get("unexpected_outcomes"):
        why.append(f"{summary['unexpected_outcomes']} tiles answered other than their kind expects "
                   "(internal_error, or a malformed tile processed or rejected for another reason)")
    if summary.get("control_not_refused"):
        why.append(f"{summary['control_not_refused']} malformed commands not refused with an error "
                   "(answered ok, without an error, or with an internal error)")
    if summary.get("control_timeouts"):
        why.append(f"{summary['control_timeouts']} control messages got no reply in {REPLY_TIMEOUT_S:g} s")
    if summary.get("valid_tile_after_campaign") != "ok":
        why.append(f"valid tile afterwards: {summary.get('valid_tile_after_campaign')}")
    if summary.get("runtime_exit_code") != 0:
        why.append(f"runtime exit code {summary.get('runtime_exit_code')}, not 0")
    return why


def tile_rows(summary: dict[str, Any], sent: list[Sent], answers: list[tuple[float, dict[str, Any]]]) -> None:
    """Fill ``summary``'s rows by kind, and its totals, from the messages ``sent`` and the results
    received (:func:`account`). A message's outcome is its first answer's (``DUPLICATE`` for a resend);
    ``lost`` counts the messages not answered and those of the kind planned but never sent (a crash)."""
    books = account(sent, answers)
    not_answered, twice = set(books["not_answered"]), books["answered_twice"]
    duplicates = set(books["duplicates"])
    for kind, row in summary["tiles"].items():
        mine = [(m, got) for m, got in zip(sent, books["answers"]) if m.kind == kind]
        outcomes = Counter(DUPLICATE if m.msg_id in duplicates else outcome(got[0]) for m, got in mine
                           if got or m.msg_id in duplicates)
        lost = sum(m.msg_id in not_answered for m, _ in mine) + max(0, row["planned"] - len(mine))
        unexpected = unexpected_outcomes(kind, outcomes)
        row.update({"outcomes": dict(outcomes), "lost": lost, "rejected_without_reason": outcomes.get(NO_REASON, 0),
                    "unexpected": unexpected, "answered_twice": sum(m.msg_id in twice for m, _ in mine),
                    "not_answered_ids": [m.msg_id for m, _ in mine if m.msg_id in not_answered][:20],
                    "answered_twice_ids": {m.msg_id: twice[m.msg_id] for m, _ in mine if m.msg_id in twice}})
        summary["lost"] += lost
        summary["rejected_without_reason"] += row["rejected_without_reason"]
        summary["unexpected_outcomes"] += sum(unexpected.values())
        summary["answered_twice"] += row["answered_twice"]
    summary["stray_answers"] = len(books["stray"])
    summary["stray_answer_ids"] = [protocol.tile_ids(r) for r in books["stray"][:20]]


def print_table(summary: dict[str, Any]) -> None:
    """The campaign's table: one row per kind, then the totals."""
    total_tiles = sum(k["sent"] for k in summary["tiles"].values())
    total_control = sum(k["sent"] for k in summary["control"].values())
    print(f"{'kind':<22}{'sent':>6}  outcomes")
    for kind, row in summary["tiles"].items():
        extra = f" rejected without reason {row['rejected_without_reason']}" if row["rejected_without_reason"] else ""
        link = f" LINK ERROR: {row['link_error']}" if row.get("link_error") else ""
        bad = f" UNEXPECTED {row['unexpected']}" if row.get("unexpected") else ""
        twice = f" ANSWERED TWICE {row['answered_twice']}" if row.get("answered_twice") else ""
        print(f"tile/{kind:<17}{row['sent']:>6}  {row['outcomes']} lost {row['lost']}{extra}{bad}{twice}{link}")
    for kind, row in summary["control"].items():
        timeouts = f" timeouts {row['timeouts']}" if row["timeouts"] else ""
        print(f"control/{kind:<14}{row['sent']:>6}  {row['replies']}{timeouts}")
    print(f"{total_tiles} malformed tiles, {total_control} malformed commands; crashes {summary['crashes']}, "
          f"lost {summary['lost']}, answered twice {summary['answered_twice']}, "
          f"answers to no tile {summary['stray_answers']}, "
          f"rejected without reason {summary['rejected_without_reason']}, "
          f"unexpected outcomes {summary['unexpected_outcomes']}, "
          f"commands not refused {summary['control_not_refused']}, "
          f"control timeouts {summary['control_timeouts']}; valid tile afterwards: "
          f"{summary['valid_tile_after_campaign']}; runtime exit code {summary['runtime_exit_code']}")


def main(argv: list[str] | None = None) -> int:
    """Run the campaign; 0 if it passed (see the module docstring), else 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=positive_int, default=300, help="messages of each kind (>= 1)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    log = work / "runtime.log"
    summary: dict[str, Any] = {"tiles": {}, "control": {}, "crashes": 0, "lost": 0, "answered_twice": 0,
                               "stray_answers": 0, "rejected_without_reason": 0,
                               "unexpected_outcomes": 0, "control_not_refused": 0, "control_timeouts": 0,
                               "valid_tile_after_campaign": "not tried", "error": None}
    proc: RuntimeProcess | None = None
    code: int | None = None
    collector: ResultCollector | None = None
    messages: list[Sent] = []  # every malformed tile message sent, in order
    try:
        proc = RuntimeProcess("CPU", log, 60)
        control = ControlClient(proc.endpoints["control"], timeout_s=REPLY_TIMEOUT_S)
        control.load_model(args.model)
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        streamer = Streamer(proc.endpoints["tiles"], window=32)
        seen = 0
        sent_by_key: Counter[AnswerKey] = Counter()  # messages sent, by the ids their answers echo
        answered: Counter[AnswerKey] = Counter()     # results received, likewise
        tallied = 0                                  # of collector.results, counted in answered

        def wait_answered(key: AnswerKey) -> bool:
            """Wait (up to ANSWER_WAIT_S) until every message sent with ids ``key`` has an answer:
            the next such message's answer could not be told apart from theirs."""
            nonlocal tallied
            assert collector is not None
            deadline = time.monotonic() + ANSWER_WAIT_S
            while True:
                new = collector.results[tallied:]
                tallied += len(new)
                answered.update(result_key(r) for _, r, _ in new)
                if answered[key] >= sent_by_key[key]:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.001)

        def duplicates() -> int | None:
            # A mutated header may repeat an id already seen: the runtime acknowledges it as a resend
            # (duplicate) and, by design, does not process it twice, so no second result comes. The
            # runtime's own count: acks keyed by id would keep only the last of a repeated id's.
            try:
                return int(control.status(timeout_s=10)["counters"]["duplicates"])
            except ControlError:
                return None

        for kind, make in TILE_KINDS.items():
            dup_before = duplicates() or 0
            keys: list[str] = []
            link_error = None
            missed = 0  # waits for an answer missed in a row: past MAX_TIMEOUTS_IN_A_ROW, the runtime stalls
            try:
                for i in range(args.per_kind):
                    frames = make(rng, i)
                    key = message_key(frames, f"{kind}/{i}")
                    keys.append(key)
                    ids = answer_key(frames)
                    if sent_by_key[ids] and missed < MAX_TIMEOUTS_IN_A_ROW:
                        missed = 0 if wait_answered(ids) else missed + 1
                    t_sent = time.monotonic()
                    streamer.send_frames(key, frames)
                    messages.append(Sent(f"{kind}/{i}", kind, ids, t_sent))
                    sent_by_key[ids] += 1
                streamer.drain()
            except LinkError as exc:
                link_error = str(exc)
            alive = runtime_alive(proc)
            dup_after = duplicates() if alive else None
            dup = max(0, dup_after - dup_before) if dup_after is not None else 0
            complete = collector.wait_for(seen + args.per_kind - dup, 60 if alive and not link_error else 5)
            seen = len(collector.results)  # the outcomes are accounted per message at the end (tile_rows)
            # Acks naming no tile (the header was unreadable) answer this kind's unreadable messages;
            # the ids listed are the keyed messages the runtime never acknowledged.
            anonymous = len(streamer.log.anonymous_acks)
            unacked = [k for k in dict.fromkeys(keys) if k not in streamer.log.acks]
            summary["tiles"][kind] = {"sent": len(keys), "planned": args.per_kind,
                                      "link_error": link_error, "anonymous_acks": anonymous,
                                      "unacknowledged": max(0, len(unacked) - anonymous),
                                      "unacknowledged_ids": unacked[:20]}
            # Forget this kind in the sender's log: a later stall then names only that kind's tiles.
            for key in keys:
                streamer.log.sent_at.pop(key, None)
                streamer.log.acks.pop(key, None)
            streamer.log.anonymous_acks.clear()
            if not alive:
                summary["crashes"] += 1
                summary["tiles"][kind]["runtime_exit_code"] = proc.proc.returncode
                print(f"runtime exited (code {proc.proc.returncode}) during tile/{kind}; "
                      "the campaign stops here", file=sys.stderr)
                break
            if link_error:
                streamer.reconnect()  # the runtime lives but stalled: a fresh link for the next kind
            elif not complete:
                break
        if runtime_alive(proc):
            sock = zmq.Context.instance().socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(proc.endpoints["control"])
            in_a_row = 0
            for kind, make in CONTROL_KINDS.items():
                replies: Counter = Counter()
                sent = timeouts = 0
                for _ in range(args.per_kind):
                    sock.send_multipart(make(rng))
                    sent += 1
                    if not sock.poll(int(REPLY_TIMEOUT_S * 1000)):
                        # A REQ socket that missed its reply is stuck (the next send fails with EFSM):
                        # throw it away and carry on with a fresh one (the Lazy Pirate pattern).
                        timeouts += 1
                        in_a_row += 1
                        sock.close()
                        sock = zmq.Context.instance().socket(zmq.REQ)
                        sock.setsockopt(zmq.LINGER, 0)
                        sock.connect(proc.endpoints["control"])
                        if not runtime_alive(proc) or in_a_row >= MAX_TIMEOUTS_IN_A_ROW:
                            break
                        continue
                    in_a_row = 0
                    reply = protocol.loads(sock.recv())
                    replies[control_outcome(reply)] += 1
                summary["control_timeouts"] += timeouts
                summary["control_not_refused"] += sum(n for r, n in replies.items() if r != "refused with error")
                summary["control"][kind] = {"sent": sent, "replies": dict(replies), "timeouts": timeouts}
                if not runtime_alive(proc):
                    summary["crashes"] += 1
                    print(f"runtime exited (code {proc.proc.returncode}) during control/{kind}", file=sys.stderr)
                    break
                if in_a_row >= MAX_TIMEOUTS_IN_A_ROW:
                    print(f"runtime did not reply {in_a_row} times in a row during control/{kind}; "
                          "the control phase stops here", file=sys.stderr)
                    break
            sock.close()
        if runtime_alive(proc):
            # Still serving: a valid tile after all that.
            streamer.send_frames(AFTER_ID, valid_tile(rng, 0, AFTER_ID))
            streamer.drain()
            collector.wait_for(seen + 1, 30)
            after = [r for _, r, _ in collector.results[seen:] if r.get("tile_id") == AFTER_ID]
            summary["valid_tile_after_campaign"] = after[0]["status"] if after else "missing"
            summary["status_after"] = control.status()["counters"]
        else:
            summary["valid_tile_after_campaign"] = "not tried: the runtime is not running"
        collector.close()
        streamer.close()
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the table and --out still come out
        summary["error"] = f"{type(exc).__name__}: {exc}"
        print(f"campaign stopped early: {summary['error']}", file=sys.stderr)
        if proc is not None and not runtime_alive(proc):
            summary["crashes"] += 1
    finally:
        if proc is not None:
            code = proc.close()
    summary["runtime_exit_code"] = code
    received = collector.results if collector is not None else []
    answers = [(t, r) for t, r, _ in received if r.get("tile_id") != AFTER_ID]
    tile_rows(summary, messages, answers)
    print_table(summary)
    why = failures(summary)
    summary["failures"] = why
    return finish(summary, args.out, work, f"runtime log kept: {log}")


if __name__ == "__main__":
    sys.exit(main())

"""scripts/fuzz_campaign.py accounts per message, not per kind (review 19): it counted the results of
each kind of malformed message, so one message answered twice and another not answered at all
cancelled out and the campaign passed. Now each result is matched to the message whose ids it
echoes, and a message answered twice, one not answered, or a result answering no message sent fails
the campaign."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# the campaign loaded fresh, and the runtime log kept on failure under each test's tmp_path (autouse)
from tests.runtime.test_fuzz_campaign import load_campaign, malformed, private_tmp  # noqa: F401


def _result(tile_id: str | None, seq: int | None = 0, checksum: str | None = "crc32:1",
            reason: str = "bad_checksum") -> dict[str, Any]:
    """A rejection result echoing these ids."""
    return {"scene_id": "fuzz" if tile_id else None, "tile_id": tile_id, "seq": seq, "checksum": checksum,
            "status": "rejected", "reason": reason}


def test_a_message_answered_twice_and_one_not_answered_do_not_cancel_out() -> None:
    fc = load_campaign()
    a, b = ("fuzz", "a", 0, "crc32:1"), ("fuzz", "b", 1, "crc32:2")
    sent = [fc.Sent("k/0", "k", a, 1.0), fc.Sent("k/1", "k", b, 1.1)]
    answers = [(2.0, _result("a", 0, "crc32:1")), (2.1, _result("a", 0, "crc32:1"))]  # as many as sent
    books = fc.account(sent, answers)
    assert books["answered_twice"] == {"k/0": 2} and books["not_answered"] == ["k/1"]
    assert books["stray"] == [] and books["duplicates"] == []
    summary: dict[str, Any] = {"tiles": {"k": {"sent": 2, "planned": 2}}, "lost": 0, "answered_twice": 0,
                               "rejected_without_reason": 0, "unexpected_outcomes": 0}
    fc.tile_rows(summary, sent, answers)
    assert summary["tiles"]["k"]["lost"] == 1 and summary["tiles"]["k"]["answered_twice"] == 1
    assert summary["tiles"]["k"]["not_answered_ids"] == ["k/1"]
    assert summary["tiles"]["k"]["answered_twice_ids"] == {"k/0": 2}
    why = fc.failures({**summary, "valid_tile_after_campaign": "ok", "runtime_exit_code": 0})
    assert why == ["1 tiles lost", "1 tiles answered more than once"]


def test_messages_with_no_readable_ids_are_told_apart_by_when_they_were_sent() -> None:
    """Unreadable headers all get answers echoing no id; sent one at a time, each answer belongs to
    the last one sent before it came, so a double answer and a missing one still both show."""
    fc = load_campaign()
    anon = (None, None, None, None)
    sent = [fc.Sent("r/0", "r", anon, 1.0), fc.Sent("r/1", "r", anon, 3.0), fc.Sent("r/2", "r", anon, 5.0)]
    none = _result(None, None, None, "bad_header")
    books = fc.account(sent, [(2.0, none), (2.5, none), (6.0, none)])
    assert books["answered_twice"] == {"r/0": 2} and books["not_answered"] == ["r/1"]
    assert [len(a) for a in books["answers"]] == [2, 0, 1]


def test_a_resend_of_an_accepted_tile_is_a_duplicate_and_a_result_for_no_message_is_stray() -> None:
    fc = load_campaign()
    ok = {**_result("a", 0, "crc32:1"), "status": "ok", "reason": None}
    sent = [fc.Sent("k/0", "k", ("fuzz", "a", 0, "crc32:1"), 1.0),
            fc.Sent("k/1", "k", ("fuzz", "a", 7, "crc32:1"), 1.1)]
    books = fc.account(sent, [(2.0, ok), (2.1, _result("zzz"))])
    assert books["duplicates"] == ["k/1"] and books["not_answered"] == [] and books["answered_twice"] == {}
    assert [r["tile_id"] for r in books["stray"]] == ["zzz"]
    assert fc.failures({"stray_answers": 1, "valid_tile_after_campaign": "ok", "runtime_exit_code": 0}) == [
        "1 results answering no tile sent"]


def test_answer_key_is_what_the_runtime_echoes() -> None:
    """The ids predicted for a message are those its result echoes: of a valid tile all four, of a
    tile refused after its header was read the same, of an unreadable header none."""
    fc = load_campaign()
    import numpy as np

    frames = malformed.valid_tile(np.random.default_rng(0), 3, "t/3")
    header = json.loads(frames[0])
    assert fc.answer_key(frames) == ("fuzz", "t/3", 3, header["checksum"])
    assert fc.answer_key([frames[0], frames[1][:-1]]) == ("fuzz", "t/3", 3, header["checksum"])
    assert fc.answer_key([b"\xff{", frames[1]]) == (None, None, None, None)


def test_a_short_campaign_passes_on_the_real_runtime_message_by_message(tmp_path: Path) -> None:
    """Every kind, a few messages each, against a real runtime process: every message answered
    exactly once, no stray result, and the campaign passes."""
    out = tmp_path / "fuzz.json"
    fc = load_campaign()
    code = fc.main(["--per-kind", "4", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 0, summary["failures"]
    assert summary["lost"] == 0 and summary["answered_twice"] == 0 and summary["stray_answers"] == 0
    assert set(summary["tiles"]) == set(malformed.TILE_KINDS)
    for kind, row in summary["tiles"].items():
        assert row["sent"] == 4 and row["answered_twice"] == 0 and row["not_answered_ids"] == [], (kind, row)
        assert sum(row["outcomes"].values()) == 4, (kind, row)


def test_a_campaign_whose_answers_are_shuffled_between_messages_fails(brightness_bundle: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A real runtime, and a result stream doctored on the way in: the second pixel-bit-flip result
    is made to echo the first one's ids. As many results as messages, so the count per kind passed;
    per message, the first is answered twice and the second not at all."""
    import runtime.protocol as protocol

    decode = protocol.decode_result
    first: dict[str, Any] = {}

    def shuffled(frames: list[bytes]) -> tuple[dict[str, Any], Any]:
        result, mask = decode(frames)
        if result.get("reason") == "bad_checksum":
            ids = {k: result[k] for k in ("scene_id", "tile_id", "seq", "checksum")}
            if not first:
                first.update(ids)
            elif "done" not in first:
                first["done"] = True
                result = {**result, **{k: v for k, v in first.items() if k != "done"}}
        return result, mask

    monkeypatch.setattr(protocol, "decode_result", shuffled)
    fc = load_campaign()
    monkeypatch.setattr(fc, "TILE_KINDS", {"pixel_bit_flips": malformed.TILE_KINDS["pixel_bit_flips"]})
    monkeypatch.setattr(fc, "CONTROL_KINDS", {"not_an_object": malformed.CONTROL_KINDS["not_an_object"]})
    out = tmp_path / "fuzz.json"
    code = fc.main(["--per-kind", "4", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    row = summary["tiles"]["pixel_bit_flips"]
    assert row["answered_twice"] == 1 and row["lost"] == 1 and len(row["not_answered_ids"]) == 1
    assert summary["answered_twice"] == 1 and summary["lost"] == 1 and summary["runtime_exit_code"] == 0
    assert "1 tiles answered more than once" in summary["failures"] and "1 tiles lost" in summary["failures"]

"""Review 23: runtime/interface.py (the F´-style declaration), docs/protocol.md and a real runtime agree,
table by table: each event raised in runtime/ is declared with a severity and listed in the protocol's
event table with that same severity (it listed names only, so a severity changed in one place went
unnoticed in the other); each field of a live ``status`` reply is in the status table and the control
table's ``status`` row, and each documented field is reported (that row named 9 of the 14); each
rejection reason, command and port is documented, and nothing documented is undeclared."""

from __future__ import annotations

import re
import time
from pathlib import Path

import zmq

from runtime import config, interface, protocol, supervisor
from runtime.client import ControlClient
from runtime.protocol import Reason
from runtime.server import Settings
from tests.conftest import runtime_thread

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "protocol.md"
LEVELS = ("FATAL", "WARNING_HI", "WARNING_LO", "COMMAND", "ACTIVITY_HI", "ACTIVITY_LO", "DIAGNOSTIC")


def _table(doc: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the one markdown table whose header row starts with ``header``."""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert len(starts) == 1, f"{len(starts)} tables headed {header!r} in docs/protocol.md"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    """The backticked names in a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def _raised() -> set[str]:
    """Event names raised anywhere in runtime/ (the supervisor's lines are its own: test_telemetry_review.py)."""
    raised: set[str] = set()
    for path in (ROOT / "runtime").glob("*.py"):
        if path.name == "supervisor.py":
            continue
        pattern = r'(?:_event|\.event|_emit|_say)\(\s*"([a-z_]+)"(?: if \w+ else "([a-z_]+)")?'
        for pair in re.findall(pattern, path.read_text()):
            raised |= set(pair) - {""}
    return raised


def _documented_events() -> dict[str, str]:
    rows = _table(DOC.read_text(), "| event | severity |")
    assert all(len(_names(row[0])) == 1 for row in rows), rows
    return {_names(row[0])[0]: row[1] for row in rows}


def test_every_event_is_declared_and_in_the_protocol_table_with_its_severity() -> None:
    """Raised = declared = the event table's names, each with the declared severity; and where any doc says
    an event's severity in running text (``stage_dead``, WARNING_HI), it says the declared one."""
    raised, documented = _raised(), _documented_events()
    assert raised - set(interface.EVENTS) == set(), "raised, not declared"
    assert set(interface.EVENTS) - raised == set(), "declared, never raised"
    assert set(interface.EVENTS.values()) <= set(LEVELS)
    assert sorted(set(interface.EVENTS) ^ set(documented)) == [], "declared or documented, not both"
    assert {n: s for n, s in documented.items() if s != interface.EVENTS.get(n)} == {}, "another severity"
    declared = {**supervisor.EVENTS, **interface.EVENTS}
    assert all(supervisor.EVENTS[n] == s for n, s in interface.EVENTS.items() if n in supervisor.EVENTS)
    levels = "|".join(LEVELS)
    said = [(path.name, name, level) for path in sorted((ROOT / "docs").glob("*.md"))
            for name, level in re.findall(rf"`([a-z_]+)`(?: events?)?(?:,| \() ?({levels})\b", path.read_text())]
    assert said, "the scan of running text found nothing: its pattern is stale"
    assert [(f, n, s) for f, n, s in said if declared.get(n) != s] == []


def test_a_live_status_reply_and_events_are_what_the_docs_say(
    brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """On a real runtime: every field of ``status`` is in the status table and in the control table's
    ``status`` row, and every field either names is reported; each nested field is named in its own row;
    the bound endpoints are the declared ports; and each event a refused tile raises carries the
    severity the event table gives."""
    doc = DOC.read_text()
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.setsockopt(zmq.LINGER, 0)
    events.connect(ipc_endpoints["telemetry"])
    src = zmq.Context.instance().socket(zmq.DEALER)
    src.setsockopt(zmq.LINGER, 0)
    try:
        with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints), brightness_bundle):
            time.sleep(0.5)  # the subscriber reconnects to the telemetry socket bound after it connected
            src.connect(ipc_endpoints["tiles"])
            src.send_multipart([b"not json", b"x"])
            assert src.poll(10_000), "no ack"
            status = ControlClient(ipc_endpoints["control"]).status()
            said, deadline = [], time.monotonic() + 2
            while time.monotonic() < deadline:
                if events.poll(50):
                    said.append(protocol.loads(events.recv_multipart()[1]))
    finally:
        src.close()
        events.close()
    rows = {tuple(_names(row[0])): row[1] for row in _table(doc, "| field | what it says |")}
    fields = {name for names in rows for name in names}
    reported = set(status) - {"v", "ok"}
    assert sorted(reported ^ fields) == [], "reported or in the status table, not both"
    assert reported | set(status["counters"]) == set(interface.TELEMETRY)
    [control_row] = [row for row in _table(doc, "| command | frames | reply |") if row[0] == "`status`"]
    assert sorted(reported ^ (set(_names(control_row[2])) - {"connectivity"})) == [], "the control table's row"

    def row(field: str) -> set[str]:
        return {name for names, text in rows.items() if field in names for name in _names(text)}

    health = status["health"]
    nested = {"counters": [*status["counters"], *status["counters"]["queue_depth"]],
              "health": [*(k for k in health if k != "stages"), *health["stages"]["output"]],
              "device_recovery": status["device_recovery"], "delivery": status["delivery"],
              "vectorize": status["vectorize"]}
    assert {f: [k for k in keys if k not in row(f)] for f, keys in nested.items()} == {f: [] for f in nested}
    assert set(status["endpoints"]) == set(interface.PORTS)
    documented = _documented_events()
    assert "tile_rejected" in {e["event"] for e in said}, said
    assert [e for e in said if e["severity"] != documented[e["event"]]] == []


def test_every_reason_command_and_port_is_documented_and_declared() -> None:
    """The rejection table names each :class:`runtime.protocol.Reason` and no other code; the control
    table each declared command and no other; the socket table each declared port and no other."""
    doc = DOC.read_text()
    reasons = {name for row in _table(doc, "| reason | when |") for name in _names(row[0])}
    assert sorted(reasons ^ {r.value for r in Reason}) == []
    commands = {name for row in _table(doc, "| command | frames | reply |") for name in _names(row[0])}
    assert sorted(commands ^ set(interface.COMMANDS)) == []
    ports = {row[0] for row in _table(doc, "| socket | runtime side |")}
    assert sorted(ports ^ set(interface.PORTS)) == []

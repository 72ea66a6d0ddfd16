"""The ground's result collector: it acknowledges what it takes, and it can always be closed."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import zmq

from hil.collector import ResultCollector
from runtime import protocol
from runtime.security import ClientKeys, CurveServer, make_keys
from tests.conftest import wait_until_dropped


def test_a_collector_whose_ack_link_was_refused_still_closes(tmp_path: Path) -> None:
    """A CURVE handshake that the server refuses drops the client's connection, and a PUSH socket
    with no connection blocks a plain send: the collector's thread must still see close()."""
    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    (tmp_path / "nobody").mkdir()
    ground = ClientKeys.from_dir(keys, "ground")
    short = Path(tempfile.mkdtemp(prefix="col-", dir="/tmp"))
    # Two contexts, two ZAP handlers with the same server key: one admits the ground (results),
    # the other admits nobody (acks).
    contexts = [zmq.Context(), zmq.Context()]
    curves = [CurveServer(ctx, keys / "server.key_secret", authorized)
              for ctx, authorized in zip(contexts, (keys / "authorized", tmp_path / "nobody"))]
    results, acks = contexts[0].socket(zmq.PUSH), contexts[1].socket(zmq.PULL)
    for curve, sock, name in zip(curves, (results, acks), ("results", "acks")):
        curve.apply(sock)
        sock.bind(f"ipc://{short}/{name}")
    collector = ResultCollector(f"ipc://{short}/results", acks=f"ipc://{short}/acks", keys=ground)
    try:
        assert wait_until_dropped(collector._acks), "the refused ack link kept its queue"
        results.send_multipart(protocol.encode_result({"scene_id": "s", "tile_id": "t", "checksum": "c",
                                                       "status": "ok"}))
        assert collector.wait_for(1, 10)  # taken: now it has an acknowledgement it cannot send
    finally:
        closing = threading.Thread(target=collector.close, daemon=True)
        closing.start()
        closing.join(10)
        assert not closing.is_alive(), "close() hung behind an acknowledgement it could not send"
        for sock in (acks, results):
            sock.close(0)
        for curve, ctx in zip(curves, contexts):
            curve.stop()
            ctx.term()


def test_a_burst_is_taken_whole_and_a_malformed_result_in_it_is_counted_not_fatal() -> None:
    """Results sent back to back are drained without a poll each: every one is kept, in order, and a
    malformed one among them is counted and dropped without losing those after it."""
    endpoint = f"ipc://{tempfile.mkdtemp(prefix='col-', dir='/tmp')}/results"
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.bind(endpoint)
    collector = ResultCollector(endpoint)
    try:
        for i in range(40):
            if i == 17:
                push.send_multipart([b"not json"])
            push.send_multipart(protocol.encode_result({"scene_id": "s", "tile_id": f"t{i}", "checksum": "c",
                                                        "status": "ok"}))
        assert collector.wait_for(40, 10)
        assert [r["tile_id"] for _, r, _ in collector.results] == [f"t{i}" for i in range(40)]
        assert collector.malformed == 1
        assert not collector.wait_for(41, 0.2), "a wait for a result that never comes must time out"
    finally:
        collector.close()
        push.close(0)


def test_waits_for_different_counts_are_each_woken_by_the_result_that_makes_theirs() -> None:
    """Two threads waiting for 2 and for 5 results: each is answered True once its count has come,
    the first before the rest are sent."""
    endpoint = f"ipc://{tempfile.mkdtemp(prefix='col-', dir='/tmp')}/results"
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.bind(endpoint)
    collector = ResultCollector(endpoint)
    answers: dict[int, bool] = {}
    waiters = [threading.Thread(target=lambda n=n: answers.__setitem__(n, collector.wait_for(n, 10)))
               for n in (2, 5)]
    try:
        for w in waiters:
            w.start()
        for i in range(2):
            push.send_multipart(protocol.encode_result({"scene_id": "s", "tile_id": f"t{i}", "status": "ok"}))
        waiters[0].join(10)
        assert answers == {2: True}, "the wait for 2 was not answered once 2 results had come"
        for i in range(2, 5):
            push.send_multipart(protocol.encode_result({"scene_id": "s", "tile_id": f"t{i}", "status": "ok"}))
        waiters[1].join(10)
        assert answers == {2: True, 5: True}
    finally:
        collector.close()
        push.close(0)

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

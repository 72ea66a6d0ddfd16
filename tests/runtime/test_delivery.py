"""Delivery: every accepted tile is reported done once its result is out; a resend is never
processed twice."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from runtime import protocol
from runtime.client import ControlClient
from runtime.server import Runtime
from tests.conftest import COUNTS_WAKEUPS, thread_wakeups


def _tile(i: int) -> Tile:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    return Tile("s", f"s/{i}", i, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))


def _messages(sock: zmq.Socket, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        assert sock.poll(10_000), f"{len(out)} of {n} messages"
        out.append(protocol.loads(sock.recv()))
    return out


def _done(streamer: Streamer, n: int) -> set[str]:
    """The tiles ``streamer`` has heard "done" for, once it has ``n`` or after about 5 s."""
    for _ in range(50):
        if len(streamer.log.done) >= n:
            break
        if streamer._sock.poll(100):
            streamer._wait_ack(1)
    return streamer.log.done


def test_done_follows_every_result_and_a_resend_is_not_processed_twice(running_runtime: Runtime) -> None:
    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(running_runtime.endpoints["tiles"])
    frames = _tile(0).frames()
    sender.send_multipart(frames)
    ack, done = _messages(sender, 2)
    assert ack["type"] == "ack" and ack["status"] == "accepted" and not ack["duplicate"]
    assert done["type"] == "done" and done["tile_id"] == "s/0" and done["status"] == "ok"
    assert ground.wait_for(1, 5) and ground.results[0][1]["tile_id"] == "s/0"
    # The same tile again (a sender that missed the "done" and resends): acknowledged, not processed.
    sender.send_multipart(frames)
    ack, done = _messages(sender, 2)
    assert ack["duplicate"] and done["type"] == "done" and done["duplicate"]
    assert not ground.wait_for(2, 0.5), "a resent tile was processed twice"
    status = ControlClient(running_runtime.endpoints["control"]).status()
    assert status["counters"]["tiles_ok"] == 1 and status["counters"]["duplicates"] == 1
    assert status["delivery"]["results_acked"] == 1  # the "done" above followed the ground's ack
    ground.close()


def test_a_sender_that_waives_done_hears_none_and_its_tile_is_still_remembered_done(running_runtime: Runtime) -> None:
    """``"want_done": false``: the tile gets its ack and its result but no "done"; the runtime still
    counts it done, so that a resend of it is answered as a duplicate of a delivered tile."""
    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(running_runtime.endpoints["tiles"])
    waived = _tile(0).frames(want_done=False)
    sender.send_multipart(waived)
    (ack,) = _messages(sender, 1)
    assert ack["type"] == "ack" and ack["status"] == "accepted"
    assert ground.wait_for(1, 10) and ground.results[0][1]["tile_id"] == "s/0"
    # A second tile, "done" wanted, once the first's result is out: the socket keeps order, so a
    # "done" for the first would come before this one's.
    sender.send_multipart(_tile(1).frames())
    ack, done = _messages(sender, 2)
    assert ack["tile_id"] == "s/1" and done["type"] == "done" and done["tile_id"] == "s/1"
    # The first again, now wanting "done": a duplicate of a tile whose result has gone out.
    sender.send_multipart(_tile(0).frames())
    ack, done = _messages(sender, 2)
    assert ack["duplicate"] and done["type"] == "done" and done["tile_id"] == "s/0" and done["duplicate"]
    assert not ground.wait_for(3, 0.5), "a resent tile was processed twice"
    ground.close()


def test_a_stream_encoded_beforehand_and_waiving_done_delivers_every_tile(running_runtime: Runtime) -> None:
    """The benchmark's ground (``Streamer.stream_frames``, ``want_done=False``): every tile acked
    and answered, and no "done" among the acks."""
    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    streamer = Streamer(running_runtime.endpoints["tiles"], window=4, want_done=False)
    tiles = [_tile(i) for i in range(10)]
    log = streamer.stream_frames([(t.tile_id, t.frames(want_done=False)) for t in tiles])
    assert set(log.acks) == {t.tile_id for t in tiles} and log.n_acks == 10 and not log.done
    assert ground.wait_for(10, 20) and {r["tile_id"] for _, r, _ in ground.results} == set(log.acks)
    streamer.close()
    ground.close()


def test_a_resending_streamer_cannot_waive_done() -> None:
    with pytest.raises(ValueError, match="want_done"):
        Streamer("ipc:///tmp/nowhere", resend_after_s=1.0, want_done=False)


def test_streamer_hears_done_for_every_tile(running_runtime: Runtime) -> None:
    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    streamer = Streamer(running_runtime.endpoints["tiles"], window=4)
    streamer.stream([_tile(i) for i in range(12)])
    assert ground.wait_for(12, 10)
    assert _done(streamer, 12) == {f"s/{i}" for i in range(12)}
    ground.close()


def test_without_ground_ack_done_follows_the_hand_over_to_zeromq(brightness_bundle, ipc_endpoints) -> None:
    """``--no-ground-ack``, for a ground that cannot acknowledge: a reader that takes the results
    without acking still lets every tile be reported done (what "done" meant before the default)."""
    import threading

    from runtime import config
    from runtime.server import Settings

    cfg = config.defaults()
    cfg["delivery"]["ground_ack"] = False
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    assert "acks" not in runtime.endpoints
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        reader = ResultCollector(ipc_endpoints["results"])  # takes, never acks
        streamer = Streamer(ipc_endpoints["tiles"], window=4)
        streamer.stream([_tile(i) for i in range(6)])
        assert reader.wait_for(6, 10) and _done(streamer, 6) == {f"s/{i}" for i in range(6)}
        assert ControlClient(ipc_endpoints["control"]).status()["delivery"]["ground_ack"] is False
        reader.close()
        streamer.close()
    finally:
        runtime.stop()
        thread.join(30)


def test_shutdown_with_no_ground_does_not_hang(brightness_bundle, ipc_endpoints) -> None:
    """A PUSH with no peer blocks; the runtime must still stop, and its sender hears no "done"."""
    import threading

    from runtime import config
    from runtime.server import Settings

    cfg = config.defaults()
    cfg["delivery"]["shutdown_grace_s"] = 0.5
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(ipc_endpoints["tiles"])
    sender.send_multipart(_tile(0).frames())
    assert _messages(sender, 1)[0]["status"] == "accepted"
    ControlClient(ipc_endpoints["control"]).shutdown()
    thread.join(15)
    assert not thread.is_alive(), "the runtime hung at shutdown with no ground connected"
    assert not sender.poll(200), "a 'done' for a result nobody received"


@pytest.mark.slow
def test_a_reader_that_never_reads_gets_no_tile_marked_done(brightness_bundle, tmp_path) -> None:
    """Issue 13's reproduction against a runtime process in its default configuration: a results reader
    with a receive HWM of 1 that never reads. No tile is reported done and the runtime stops taking
    tiles at its bound; once that reader is gone and an acknowledging ground connects, every result
    reaches it and every tile is then reported done, each once."""
    import threading
    import time

    from hil.runtime_proc import RuntimeProcess

    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", 60)  # ground_ack is the default
    control = ControlClient(proc.endpoints["control"])
    lazy = zmq.Context.instance().socket(zmq.PULL)
    lazy.setsockopt(zmq.RCVHWM, 1)
    lazy.setsockopt(zmq.LINGER, 0)
    lazy.connect(proc.endpoints["results"])
    n = 120
    # resend_after_s: the streamer then waits for every "done" (a long one: nothing is resent here)
    streamer = Streamer(proc.endpoints["tiles"], window=16, ack_timeout_s=120, resend_after_s=120.0)
    stream = threading.Thread(target=streamer.stream, args=([_tile(i) for i in range(n)],), daemon=True)
    try:
        control.load_model(brightness_bundle)
        bound = control.status()["counters"]["queue_depth"]["max_tiles_inside"]
        stream.start()
        deadline = time.monotonic() + 30
        while control.status()["counters"]["queue_depth"]["tiles_inside"] < bound and time.monotonic() < deadline:
            time.sleep(0.05)
        status = control.status()
        assert status["counters"]["queue_depth"]["tiles_inside"] == bound, status["counters"]
        time.sleep(1.0)  # the lazy reader still acknowledges nothing
        status = control.status()
        assert not streamer.log.done, "a tile was reported done although no ground has its result"
        assert status["counters"]["tiles_accepted"] == bound  # back-pressure, not memory
        assert status["delivery"]["awaiting_ground"] >= 1
        lazy.close()
        ground = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        stream.join(90)
        assert not stream.is_alive(), "the stream did not finish"
        assert ground.wait_for_tiles({f"s/{i}" for i in range(n)}, 30)
        assert streamer.log.done == {f"s/{i}" for i in range(n)} and not streamer.log.resends
        deadline = time.monotonic() + 10
        while control.status()["delivery"]["awaiting_ground"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert control.status()["delivery"]["awaiting_ground"] == 0
        ground.close()
    finally:
        streamer.close()
        control.close()
        proc.close()


def test_the_ground_ledger_resends_the_overdue_head_in_order_and_releases_on_ack(monkeypatch) -> None:
    import runtime.delivery as delivery

    now = [100.0]
    monkeypatch.setattr(delivery.time, "monotonic", lambda: now[0])
    ledger = delivery.AwaitingGround(timeout_s=5.0)
    keys = [("s", f"s/{i}", "crc32:0") for i in range(3)]
    for i, key in enumerate(keys):
        now[0] = 100.0 + i
        assert ledger.sent(key, [b"r"], b"id", b"done")
    assert not ledger.sent(keys[0], [b"r"], b"id", b"done")  # a second result for a waiting key

    def resend_due() -> list:
        due = ledger.due()
        for key, _ in due:
            ledger.resent(key)  # as the sender does once the socket took it
        return due

    now[0] = 105.5  # s/0 is 5.5 s old, s/1 4.5 s: only the first is overdue
    assert [k for k, _ in ledger.due()] == [keys[0]] == [k for k, _ in ledger.due()]  # not marked until resent
    assert [k for k, _ in resend_due()] == [keys[0]]
    now[0] = 106.5  # s/1 now; s/0 was just resent, so it is not overdue again yet
    assert [k for k, _ in resend_due()] == [keys[1]]
    now[0] = 112.0
    overdue = resend_due()
    assert [k for k, _ in overdue] == [keys[2], keys[0], keys[1]] and overdue[1][1].sends == 3
    assert ledger.acked(keys[1]).done == b"done" and ledger.acked(keys[1]) is None and len(ledger) == 2
    assert len(ledger.give_up()) == 2 and len(ledger) == 0


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def test_an_id_that_is_not_utf8_is_refused_and_the_tiles_after_it_are_still_delivered(
        running_runtime: Runtime) -> None:
    """Review: a scene_id holding a lone surrogate (JSON ``"\\ud800"``) was accepted, and encoding its
    "done" killed the sender thread: every later tile was acked and never answered."""
    import json

    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    sender = _dealer(running_runtime.endpoints["tiles"])
    frames = _tile(0).frames()
    header = json.loads(frames[0])
    header["scene_id"] = "\ud800"
    sender.send_multipart([json.dumps(header).encode(), frames[1]])
    (ack,) = _messages(sender, 1)
    assert ack["status"] == "rejected" and ack["reason"] == "bad_header" and ack["tile_id"] == "s/0"
    for i in (1, 2):
        sender.send_multipart(_tile(i).frames())
        ack, done = _messages(sender, 2)
        assert ack["status"] == "accepted" and done["type"] == "done" and done["tile_id"] == f"s/{i}"
    assert ground.wait_for_tiles({"s/1", "s/2"}, 10)
    status = running_runtime.status()
    assert status["counters"]["internal_errors"] == 0
    ground.close()
    sender.close()


def test_a_corrupted_copy_of_an_accepted_tile_does_not_let_its_result_skip_the_grounds_ack(
        running_runtime: Runtime) -> None:
    """Review: the rejection of a corrupted copy (same header, bad_checksum) took the accepted
    tile's key in the ground-ack ledger, so the tile's own result went out unledgered and its
    sender heard "done" although no ground had acknowledged it."""
    endpoints = running_runtime.endpoints
    reader = zmq.Context.instance().socket(zmq.PULL)  # reads results, acknowledges none (yet)
    reader.setsockopt(zmq.LINGER, 0)
    reader.connect(endpoints["results"])
    sender = _dealer(endpoints["tiles"])
    frames = _tile(0).frames()
    corrupted = [frames[0], bytes([frames[1][0] ^ 1]) + frames[1][1:]]
    sender.send_multipart(frames)
    sender.send_multipart(corrupted)
    acks = _messages(sender, 2)
    assert [(a["status"], a["reason"]) for a in acks] == [("accepted", None), ("rejected", "bad_checksum")]
    results = [protocol.decode_result(reader.recv_multipart())[0] for _ in range(2) if reader.poll(10_000)]
    assert sorted(r["status"] for r in results) == ["ok", "rejected"], results
    assert not sender.poll(1000), "a 'done' before the ground acknowledged the tile's result"
    assert running_runtime.status()["delivery"]["awaiting_ground"] == 1  # the accepted tile's result
    [ok] = [r for r in results if r["status"] == "ok"]
    ground_acks = zmq.Context.instance().socket(zmq.PUSH)
    ground_acks.setsockopt(zmq.LINGER, 1000)
    ground_acks.connect(endpoints["acks"])
    ground_acks.send(protocol.dumps({"v": 1, "ack": [ok["scene_id"], ok["tile_id"], ok["checksum"]]}))
    (done,) = _messages(sender, 1)
    assert done["type"] == "done" and done["tile_id"] == "s/0" and done["status"] == "ok"
    for sock in (reader, sender, ground_acks):
        sock.close()


def test_a_resend_of_a_tile_that_failed_after_acceptance_hears_the_same_outcome(
        brightness_bundle, monkeypatch) -> None:
    """Review: a resend of a finished tile was always told "done" with status ok, even when the
    tile had been rejected after acceptance (here the device fails every request)."""
    from tests.runtime.test_device_loss import Devices, _serve
    from tests.runtime.test_server import Ground

    for runtime in _serve(brightness_bundle, Devices(fail_from=1, reopen="lost_again"), monkeypatch,
                          max_attempts=1):
        ground = Ground(runtime.endpoints)
        sender = _dealer(runtime.endpoints["tiles"])
        frames = _tile(0).frames()
        sender.send_multipart(frames)
        [result] = ground.results(1)
        assert (result["status"], result["reason"]) == ("rejected", "inference_failed")
        ack, done = _messages(sender, 2)
        assert ack["status"] == "accepted" and (done["status"], done["reason"]) == ("rejected", "inference_failed")
        sender.send_multipart(frames)  # the sender missed that "done" and resends
        ack, done = _messages(sender, 2)
        assert ack["duplicate"] and done["duplicate"] and done["type"] == "done"
        assert (done["status"], done["reason"]) == ("rejected", "inference_failed")
        sender.close()


def test_the_sender_survives_a_result_it_cannot_send_and_answers_that_tile(tmp_path) -> None:
    """An exception while handling one result is an internal_error event, its tile leaves the
    runtime and its sender is told it was rejected; the results after it are still sent. The
    sender thread with real sockets; the failing result is a frame ZeroMQ cannot send."""
    import threading

    counted, said, released = [], [], threading.Semaphore(0)
    sender, reader, notify, sockets = _sender_rig(tmp_path, counted=lambda name, n=1: counted.append(name),
                                                  say=lambda e, **f: said.append((e, f)), released=released.release)
    sender.start()
    bad_key, good_key = ("s", "s/0", "crc32:0"), ("s", "s/1", "crc32:1")
    done = [protocol.encode_done({"scene_id": k[0], "tile_id": k[1], "seq": i, "checksum": k[2], "status": "ok"})
            for i, k in enumerate((bad_key, good_key))]
    sender.put([object()], b"sender", done[0], bad_key)  # type: ignore[list-item]
    sender.put([b"result 1"], b"sender", done[1], good_key)
    assert reader.poll(5000) and reader.recv() == b"result 1"
    told = [notify.recv_multipart() for _ in range(2) if notify.poll(5000)]
    answer = protocol.loads(told[0][1])
    assert answer["tile_id"] == "s/0" and (answer["status"], answer["reason"]) == ("rejected", "internal_error")
    assert protocol.loads(told[1][1])["tile_id"] == "s/1" and protocol.loads(told[1][1])["status"] == "ok"
    assert released.acquire(timeout=5) and released.acquire(timeout=5)  # both tiles left the runtime
    assert [e for e, _ in said] == ["internal_error"] and said[0][1]["tile_id"] == "s/0"
    assert "internal_errors" in counted
    sender.stop(0.5)
    for sock in sockets:
        sock.close()


def _sender_rig(tmp_path, counted=lambda name, n=1: None, say=lambda e, **f: None, released=lambda: None):
    """A ResultSender with real sockets and no ground acknowledgement (not started), the reader of its
    results socket, the notify socket the main loop would read, and every socket to close."""
    from runtime.delivery import ResultSender

    ctx = zmq.Context.instance()
    results = ctx.socket(zmq.PUSH)
    results.setsockopt(zmq.LINGER, 0)
    results.bind(f"ipc://{tmp_path}/results")
    reader = ctx.socket(zmq.PULL)
    reader.setsockopt(zmq.LINGER, 0)
    reader.connect(f"ipc://{tmp_path}/results")
    notify = ctx.socket(zmq.PAIR)  # the main loop's end
    notify.bind(f"inproc://notify-rig-{id(tmp_path)}")
    sender = ResultSender(ctx, results, None, f"inproc://notify-rig-{id(tmp_path)}", 1.0, counted=counted, say=say,
                          released=released)
    return sender, reader, notify, (results, reader, notify)


def test_results_put_without_a_wake_up_are_still_sent(tmp_path) -> None:
    """``put(wake=False)`` leaves the sender thread asleep for a worker's batch; a wake-up that never
    comes (a worker restarted mid-batch) delays the result by LOOK_S, never loses it, with or without
    ground acknowledgement (without, the thread used to sleep until the next put)."""
    sender, reader, _, sockets = _sender_rig(tmp_path)
    sender.start()
    try:
        sender.put([b"result 0"], b"", b"", None, wake=False)
        assert reader.poll(5000) and reader.recv() == b"result 0"
    finally:
        sender.stop(0.5)
        for sock in sockets:
            sock.close()


@pytest.mark.skipif(not COUNTS_WAKEUPS, reason="counts a thread's wake-ups in Linux's /proc")
def test_a_batch_of_results_wakes_the_sender_once(tmp_path) -> None:
    """A vectorise worker's batch of results is put without waking the sender thread, then one wake()
    sends them all, in order: a wake-up per result was a context switch and a turn of the GIL each."""
    import threading
    import time

    from runtime.delivery import LOOK_S

    sender, reader, _, sockets = _sender_rig(tmp_path)
    sender.start()
    try:
        thread = next(t for t in threading.enumerate() if t.name == "sender")
        time.sleep(0.1)
        before, start = thread_wakeups(thread), time.monotonic()
        for i in range(6):
            sender.put([f"result {i}".encode()], b"", b"", None, wake=False)
            time.sleep(0.002)
        woken, spent = thread_wakeups(thread) - before, time.monotonic() - start
        # Its own looks, one every LOOK_S, fall in that time too: one in the 12 ms this usually takes,
        # more on a host too busy to keep the sleeps short. A look may count twice: woken from its timed
        # wait, it can find the condition's lock or the GIL taken by a put and sleep once more for it
        # (CI saw 2 in 14 ms). A wake-up per result would be six or more.
        looks = 1 + int(spent / LOOK_S)
        sender.wake()
        got = [reader.recv() for _ in range(6) if reader.poll(5000)]
        assert got == [f"result {i}".encode() for i in range(6)]
        assert woken <= 2 * looks, (f"the sender thread was woken {woken} times in {spent * 1e3:.0f} ms by six "
                                    f"results put without a wake-up (its own looks: {looks}, each up to twice)")
    finally:
        sender.stop(0.5)
        for sock in sockets:
            sock.close()

def test_a_tile_awaiting_the_ground_is_not_forgotten_by_the_duplicate_memory(brightness_bundle, ipc_endpoints) -> None:
    """``remember_tiles`` bounds the memory of tiles already taken, oldest first; a tile whose
    result still waits for the ground's ack must not fall out of it. Otherwise its resend is
    processed a second time, and that second result's "done" goes to the sender before the ground
    has acknowledged either (the ledger already holds the first), so a runtime lost just then
    would lose the tile."""
    from runtime import config
    from runtime.settings import Settings
    from tests.conftest import runtime_thread

    # The smallest memory the settings allow beside two tiles inside (it must hold every tile in flight).
    settings = Settings.from_config(config.defaults(), device="CPU", remember_tiles=3, max_tiles_inside=2,
                                    ground_ack_timeout_s=60.0, **ipc_endpoints)
    ctx = zmq.Context.instance()
    with runtime_thread(settings, brightness_bundle):
        ground = ctx.socket(zmq.PULL)
        acks = ctx.socket(zmq.PUSH)
        sender = ctx.socket(zmq.DEALER)
        for sock, name in ((ground, "results"), (acks, "acks"), (sender, "tiles")):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(ipc_endpoints[name])
        try:
            def result() -> dict:
                assert ground.poll(10_000), "no result"
                return protocol.decode_result(ground.recv_multipart())[0]

            def ack(res: dict) -> None:
                acks.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION,
                                          "ack": [res["scene_id"], res["tile_id"], res["checksum"]]}))

            held = _tile(0).frames()
            sender.send_multipart(held)
            (accepted,) = _messages(sender, 1)
            first = result()  # read, not acknowledged: tile 0 stays awaiting the ground
            assert accepted["status"] == "accepted" and first["tile_id"] == "s/0"
            for i in (1, 2, 3, 4):  # more tiles than remember_tiles, each acknowledged
                sender.send_multipart(_tile(i).frames())
                ack(result())
                assert [m["type"] for m in _messages(sender, 2)] == ["ack", "done"]
            sender.send_multipart(held)  # tile 0 again: its sender heard no "done" and resends it
            (again,) = _messages(sender, 1)
            assert again["type"] == "ack" and again["duplicate"], "a tile awaiting the ground was processed again"
            assert not sender.poll(500), "a 'done' came before the ground acknowledged the tile"
            assert not ground.poll(200), "the resent tile's result was sent a second time"
            ack(first)
            (done,) = _messages(sender, 1)
            assert done["type"] == "done" and done["tile_id"] == "s/0"
        finally:
            for sock in (ground, acks, sender):
                sock.close()

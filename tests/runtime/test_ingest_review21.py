"""Adversarial review 21 of tile ingest and the control channel: well-formed messages that say odd
things, sent through the real sockets of a real runtime serving a real IR on the CPU."""

from __future__ import annotations

import pytest

from runtime import config
from runtime.client import ControlClient, ControlError
from runtime.server import Runtime
# the same real runtime serving red, green, blue, its tile messages and one ground per test (a
# rejection is sent once: a ground closed early could miss it)
from tests.runtime.test_unusual_tiles import _close_grounds, _frames, _send, _ship, rgb_runtime  # noqa: F401

#: The shipped [limits] max_header_bytes (checked against defaults.toml by the tests that use it).
HEADER_LIMIT = 65536


@pytest.mark.parametrize("names", [["blue", "green", "red", "nir"], ["blue", "green"]])
def test_a_tile_naming_another_number_of_bands_than_it_carries_is_refused(rgb_runtime: Runtime,
                                                                            names: list[str]) -> None:
    """A 3-band tile whose header names 4 (or 2) bands: which name is which band is unknown, and the
    band-order check compared equal-length lists only, so blue, green, red, nir went to the red,
    green, blue model as they were (its blue into the model's red): served ok, silently wrong.
    Unnamed bands (an empty list) are still served."""
    ack, result = _send(rgb_runtime, _frames(_ship(), tile_id=f"named-{len(names)}", bands=names))
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), (ack, result)
    assert f"bands names {len(names)} bands" in result["detail"] and "has 3" in result["detail"]
    ack, result = _send(rgb_runtime, _frames(_ship(), tile_id="unnamed", bands=[]))
    assert (ack["status"], result["status"]) == ("accepted", "ok"), result


def test_a_header_over_the_limit_is_refused_unparsed_and_the_payload_serves_on(
        rgb_runtime: Runtime) -> None:
    """A well-formed header padded past [limits] max_header_bytes: parsing JSON takes up to 23 bytes of
    memory per byte ([{},{},...]: 30 MB became 700 MB), and an accepted tile keeps its header until its
    result leaves, so 64 tiles inside of 256 MiB headers could take the payload's memory many times
    over. It was accepted; it is now refused as bad_header, counted, and the next tile is served."""
    runtime = rgb_runtime
    limit = HEADER_LIMIT
    header, pixels = _frames(_ship(), tile_id="padded", pad=[{}] * (limit // 3))
    assert len(header) > limit
    ack, result = _send(rgb_runtime, [header, pixels])
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), (ack, result)
    assert "max_header_bytes" in result["detail"] and result["tile_id"] is None  # never parsed
    just_under = _frames(_ship(), tile_id="under", pad="x" * (limit - 400))
    assert len(just_under[0]) <= limit
    ack, result = _send(rgb_runtime, just_under)
    assert (ack["status"], result["status"]) == ("accepted", "ok"), result
    counters = runtime.status()["counters"]
    assert counters["rejected_by_reason"] == {"bad_header": 1} and counters["tiles_ok"] == 1, counters
    assert runtime.settings.max_header_bytes == config.defaults()["limits"]["max_header_bytes"] == HEADER_LIMIT


def test_a_command_over_the_header_limit_is_refused_and_control_serves_on(
        rgb_runtime: Runtime) -> None:
    """A status command whose JSON frame is padded past [limits] max_header_bytes: parsed, it cost the
    main loop (tiles, control, telemetry) the same 23 bytes of memory per byte as a tile's header.
    It is refused with an error naming the limit, and the next command is answered."""
    runtime = rgb_runtime
    client = ControlClient(runtime.endpoints["control"], timeout_s=20)
    try:
        with pytest.raises(ControlError, match="max_header_bytes") as err:
            client.request("status", pad=[{}] * (HEADER_LIMIT // 3))
        assert err.value.reply is not None and err.value.reply["ok"] is False
        assert client.status()["state"] == "serving"
    finally:
        client.close()

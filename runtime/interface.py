"""The runtime component's interface in one place, after NASA F´: its ports, commands, events with
their severity, and telemetry channels (docs/protocol.md describes each). The implementation is
:mod:`runtime.server`; tools and tests read the declaration from here.
"""

from __future__ import annotations

from runtime.recovery import EVENTS as RECOVERY_EVENTS

#: The component's interface in one place, after NASA F´: ports, commands, events with their
#: severity, and telemetry channels. docs/protocol.md describes each.
PORTS = {
    "tiles": "ROUTER. In: [header, pixels] per tile. Out: an ack per tile to its sender.",
    "results": "PUSH. Out: one result per tile, ok or rejected; blocks rather than drops.",
    "control": "ROUTER. In: a command [json, *frames]. Out: one JSON reply.",
    "telemetry": "PUB. Out: [b'telemetry', json] every period and [b'event', json] as they happen.",
    "acks": "PULL, bound while [delivery] ground_ack (the default). In: {'v': 1, 'ack': [scene_id, tile_id, checksum]} "
            "per result the ground has taken (runtime/delivery.py).",
}
COMMANDS = {
    "status": "Every channel in TELEMETRY: state, serving model, device, health, device recovery, delivery, "
              "counters, host CPU by thread.",
    "load_model": "Frames: manifest, model.xml, model.bin, golden.npz if listed, then (record, blob) per compiled "
                  "artefact; the request "
                  "may carry the ground's signature. Verified (checksums, signature when a key is configured), "
                  "compiled or imported, and run once before it serves.",
    "shutdown": "Stop taking tiles, finish those accepted, send their results, then exit; meanwhile status "
                "is answered (state: stopping) and other commands get an error reply.",
}
EVENTS = {
    "started": "ACTIVITY_HI",
    "model_loaded": "ACTIVITY_HI",
    "model_not_persisted": "WARNING_LO",
    "model_refused": "WARNING_HI",
    # At start-up the store's current model could not be read or failed its acceptance test, and
    # the previous one serves instead (runtime.server.Runtime._load_stored).
    "model_rolled_back": "WARNING_HI",
    "tile_rejected": "WARNING_LO",
    "scene_does_not_fit": "WARNING_LO",  # once per scene; its tiles are served unless strict_fit
    "inference_failed": "WARNING_HI",
    "stage_hung": "WARNING_HI",
    # A stage's thread died (a vectorise worker): restarted as a hung one is (stage_restarted).
    "stage_dead": "WARNING_HI",
    # A hung or dead stage's restart raised (a bug in it): it stays hung, is restarted again at the next
    # check, and the watchdog is not fed meanwhile (runtime.health.Health._restart).
    "stage_restart_failed": "WARNING_HI",
    # The watchdog file could not be touched: an external watchdog will starve and restart the payload.
    "watchdog_unwritable": "WARNING_HI",
    # A bug met on one tile, message or result: that item is refused (reason internal_error) and the
    # payload serves on, so not FATAL, which in F´ says the component cannot go on (until 2026-12-05 it
    # was declared FATAL; tests/runtime/test_severity_review19.py). No runtime event is FATAL.
    "internal_error": "WARNING_HI",
    "results_undeliverable": "WARNING_HI",
    "stage_restarted": "ACTIVITY_HI",
    "stopping": "ACTIVITY_HI",
    **RECOVERY_EVENTS,  # device_error, device_reopened, device_replaced, device_reopen_failed, device_recovery_error
}
TELEMETRY = (
    # status()'s fields (docs/protocol.md, "Telemetry", describes each)
    "protocol", "state", "device", "numerics", "latency_estimate", "model", "endpoints", "curve_channels",
    "health", "device_recovery", "host_cpu_s", "vectorize", "delivery", "counters",
    # status()["counters"]
    "tiles_received", "tiles_accepted", "tiles_ok", "tiles_rejected", "results_sent", "in_flight",
    "duplicates", "internal_errors", "tiles_unfit", "queue_depth", "rejected_by_reason",
    "latency_ms_p50", "latency_ms_p99",
)
#: The most frames one command may carry: load_model's manifest, three files and compiled blobs.
MAX_COMMAND_FRAMES = 32
#: Pipeline stages the Health component watches; the vectorise workers can be restarted safely
#: (their item is re-queued), the others only reported (and the watchdog left unfed).
STAGES = ("ingest", "inference", "device", "vectorise", "output")

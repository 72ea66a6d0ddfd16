"""``hil.run``: one flight model, one scene, one runtime; every tile accounted for and scored."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from shapely.geometry import shape

from flightsim.streamer import Streamer
from flightsim.tiles import tile_grid, tile_scene
from hil.collector import ResultCollector
from hil.overview import draw_overview
from hil.runtime_proc import RuntimeProcess, remote_endpoints
from hil.score import match_objects, percentiles, pixel_scores
from hil.truth import Truth, read_truth
from runtime.bundle import read_bundle
from runtime.client import ControlClient
from runtime.config import load_defaults
from runtime.merge import merge_detections

DEFAULTS = load_defaults(Path(__file__).with_name("defaults.toml"))


@dataclass
class RigResult:
    report: dict[str, Any]
    report_dir: Path


def prepare_scene(scene: str | Path, seed: int | None, out_dir: Path, truth: str | Path | None) -> tuple[Path, Truth | None, dict[str, Any]]:
    """Resolve ``--scene``: ``synthetic`` generates one (with its truth), anything else is a GeoTIFF."""
    if str(scene) == "synthetic":
        from flightsim.synthetic import generate_scene, write_scene

        seed = DEFAULTS["run"]["synthetic_seed"] if seed is None else seed
        generated = generate_scene(seed)
        paths = write_scene(generated, out_dir / "scene")
        info = {"source": "synthetic", "seed": seed, "path": str(paths["scene"]), "gsd_m": generated.gsd_m}
        return paths["scene"], read_truth(paths["vessels"], paths["scene"]), info
    path = Path(scene)
    if not path.is_file():
        raise ValueError(f"--scene {scene!r}: no such file; give a GeoTIFF path or 'synthetic'")
    return path, read_truth(truth, path) if truth else None, {"source": "geotiff", "path": str(path), "truth": str(truth) if truth else None}


def run(
    scene: str | Path,
    model: str | Path,
    report_dir: str | Path,
    device: str | None = None,
    seed: int | None = None,
    truth: str | Path | None = None,
    runtime: str | None = None,
    rate_hz: float | None = None,
    window: int | None = None,
    progress: bool = False,
) -> RigResult:
    """Run a flight model on a scene through a runtime and write report.json, detections.geojson
    and overview.png into ``report_dir``.

    Args:
        scene: ``"synthetic"`` (generated with ``seed``, truth included) or a GeoTIFF path.
        model: bundle directory; uplinked over the control channel, as in flight.
        device: device of a runtime started here (ignored with ``runtime``).
        truth: mask GeoTIFF or vessel GeoJSON for a GeoTIFF scene; without it nothing is scored.
        runtime: control endpoint of a runtime already running; by default one is started.
    """
    cfg = DEFAULTS["run"]
    device = device or cfg["device"]
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    bundle = read_bundle(model)
    tile_size = bundle.manifest["input"]["shape"][2]
    scene_path, scene_truth, scene_info = prepare_scene(scene, seed, report_dir, truth)
    t0 = time.monotonic()
    proc = None if runtime else RuntimeProcess(device, report_dir / "runtime.log", cfg["startup_timeout_s"])
    try:
        endpoints = remote_endpoints(runtime) if runtime else proc.endpoints  # type: ignore[union-attr]
        control = ControlClient(endpoints["control"])
        uplink = control.load_model(bundle)
        status = control.status()
        collector = ResultCollector(endpoints["results"])
        streamer = Streamer(endpoints["tiles"], window=window or cfg["window"],
                            rate_hz=(rate_hz if rate_hz is not None else cfg["rate_hz"]) or None)
        with rasterio.open(scene_path) as src:
            height, width, transform, crs = src.height, src.width, src.transform, src.crs
        n_tiles = len(tile_grid(height, width, tile_size))
        t_stream = time.monotonic()
        log = streamer.stream(tile_scene(scene_path, tile_size), want_mask=True, total=n_tiles, progress=progress)
        answered = len(log.acks) + len(log.anonymous_acks)
        complete = collector.wait_for(answered, cfg["result_timeout_s"])
        collector.close()
        streamer.close()
        control.close()
    finally:
        if proc is not None:
            proc.close()
    report = _score(log, collector, scene_truth, (height, width), transform, crs, t_stream)
    report.update(
        device=status["numerics"]["device"], profile=status["numerics"].get("profile"),
        numerics=status["numerics"], model=uplink["model"],
        estimated_latency_ms=(status.get("latency_estimate") or {}).get("estimated_latency_ms"),
        latency_estimate=status.get("latency_estimate"),
        model_manifest={k: bundle.manifest.get(k) for k in ("name", "parameters", "numerics", "metrics")},
        scene=scene_info, tile_size=tile_size, results_complete=complete, wall_s=time.monotonic() - t0,
    )
    detections = report.pop("_detections")
    report.pop("_pred_mask")
    out_geojson = report_dir / "detections.geojson"
    out_geojson.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}} if crs else None,
        "features": detections,
    }))
    draw_overview(scene_path, [shape(f["geometry"]) for f in detections],
                  scene_truth.vessels if scene_truth else [], report_dir / "overview.png",
                  DEFAULTS["overview"]["max_side_px"])
    report["outputs"] = {name: str(report_dir / name) for name in ("report.json", "detections.geojson", "overview.png")}
    (report_dir / "report.json").write_text(json.dumps(report, indent=2))
    return RigResult(report, report_dir)


def _score(log: Any, collector: ResultCollector, truth: Truth | None, shape_hw: tuple[int, int],
           transform: Any, crs: CRS | None, t_stream: float) -> dict[str, Any]:
    """Account for every tile, stitch the masks, merge border pieces, and score against the truth."""
    sent = set(log.sent_at)
    pred_mask = np.zeros(shape_hw, dtype=np.uint8)
    processed, rejected, duplicates, unknown = set(), {}, 0, 0
    rejected_anonymous: list[str] = []
    features: list[dict[str, Any]] = []
    latencies, runtime_latencies = [], []
    last = t_stream
    for received_at, result, mask in collector.results:
        tile_id = result.get("tile_id")
        last = max(last, received_at)
        if tile_id is None:
            if result.get("status") == "rejected":
                rejected_anonymous.append(result.get("reason"))
            continue
        if tile_id not in sent:
            unknown += 1
            continue
        if tile_id in processed or tile_id in rejected:
            duplicates += 1
            continue
        latencies.append(1e3 * (received_at - log.sent_at[tile_id]))
        if result["status"] == "ok":
            processed.add(tile_id)
            runtime_latencies.append(result["timings_ms"]["total"])
            features += result["detections"]["features"]
            if mask is not None and result.get("window"):
                row, col, h, w = result["window"]
                pred_mask[row:row + h, col:col + w] = mask
        else:
            rejected[tile_id] = result.get("reason")
    reasons: dict[str, int] = {}
    for reason in [*rejected.values(), *rejected_anonymous]:
        reasons[reason] = reasons.get(reason, 0) + 1
    n_rejected = len(rejected) + len(rejected_anonymous)
    detections = merge_detections(features, crs, tolerance=DEFAULTS["score"]["merge_tolerance_px"] * abs(transform.a))
    report: dict[str, Any] = {
        "tiles_sent": len(sent),
        "tiles_processed": len(processed),
        "tiles_rejected": n_rejected,
        "tiles_lost": max(0, len(sent) - len(processed) - n_rejected),
        "rejected_by_reason": reasons,
        "duplicate_results": duplicates,
        "unknown_results": unknown,
        "latency_ms": percentiles(latencies),
        "runtime_latency_ms": percentiles(runtime_latencies),
        "throughput_tiles_per_s": len(processed) / (last - t_stream) if last > t_stream else None,
        "n_detections": len(detections),
        "_detections": detections,
        "_pred_mask": pred_mask,
    }
    if truth is not None:
        report.update(pixel_scores(pred_mask, truth.mask))
        objects = match_objects([shape(f["geometry"]) for f in detections], truth.vessels,
                                DEFAULTS["score"]["match_iou"])
        objects.pop("matched_indices")
        report.update(objects)
    else:
        report.update(miou=None, vessel_iou=None, precision=None, recall=None, f1=None)
    return report

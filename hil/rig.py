"""``hil.run``: one flight model, one scene source, one runtime; every tile accounted for and scored.

A source (``flightsim.sources``) may hold one scene (a GeoTIFF, a synthetic scene) or a data set of
many images; all their tiles go down one stream, each image is scored on its own, and the report
gives the set's figures pooled over all images (pixel IoU over all pixels, P/R/F1 over all vessels)
beside each image's.

Length: one run of the rig, in order: the checks made before a runtime starts (so that no
input found wrong only at scoring loses a run), sources into tiles, the stream, the collection, the
accounting of every tile, the scoring of each image and of the set, and the report. Scoring
itself lives in hil/score.py, border merging in hil/merge.py and the pictures in hil/overview.py.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
from affine import Affine
from shapely.geometry import shape

from flightsim.faults import FaultInjector, FaultSpec, fault_outcomes
from flightsim.sources import Georef, Sample, Source, adapt_bands, open_source
from flightsim.streamer import Streamer
from flightsim.tiles import owned_windows, tile_grid, tile_sample
from flightsim.timing import Timing
from hil.coastline import COASTLINES, check_coastline, coastline_sea_mask, placed_on_the_earth
from hil.collector import ResultCollector
from hil.fit import model_fit, sample_modalities
from hil.geojson import detections_collection
from hil.merge import owned_box, tile_pieces, whole_vessels
from hil.overview import Panel, draw_overview
from hil.runtime_proc import RuntimeExited, RuntimeProcess, remote_endpoints
from hil.score import (as_matched, boxes_only, ious, match_objects, percentiles, pixel_counts, pixel_scores,
                        pooled_scores, scored_truth, summed_counts)
from runtime.bands import model_band_names, palette_table
from runtime.bundle import read_bundle
from runtime.client import ControlClient
from runtime.fit import tile_gsd_m
from runtime.security import ClientKeys
from hil.settings import DEFAULTS, ScoreSettings, Settings
_RUNS = itertools.count()


@dataclass
class RigResult:
    report: dict[str, Any]
    report_dir: Path


@dataclass
class _Scene:
    """What the rig keeps of a sample once its tiles are out: grid, truth, and how it was adapted."""

    sample: Sample
    windows: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = field(default_factory=dict)
    bands_note: str = ""
    band_index: list[int] | None = None
    preview: tuple[np.ndarray, int] | None = None


def run(
    scene: str | Path | Source,
    model: str | Path,
    report_dir: str | Path,
    device: str | None = None,
    seed: int | None = None,
    truth: str | Path | None = None,
    runtime: str | None = None,
    rate_hz: float | None = None,
    window: int | None = None,
    progress: bool = False,
    *,
    georef: Georef | None = None,
    bands: list[int] | None = None,
    overlap: int | None = None,
    timing: Timing | None = None,
    faults: FaultSpec | str | None = None,
    limit: int | None = None,
    modality: str | None = None,
    strict_fit: bool = False,
    land_masks: str | Path | None = None,
    profile: str | None = None,
    signing_key: str | Path | None = None,
    keys: ClientKeys | None = None,
    ground_ack: bool | None = None,
    config: Settings | None = None,
    runtime_config: Path | None = None,
) -> RigResult:
    """Run a flight model on a scene source through a runtime and write report.json,
    detections.geojson and overview.png into ``report_dir``.

    Args:
        scene: a :class:`flightsim.sources.Source`, or a spec for ``open_source``: ``"synthetic"``
            (with ``seed``), a GeoTIFF path, or ``KIND:PATH`` (``hrsid-mini:/data/hrsid-mini``...).
        model: bundle directory; uplinked over the control channel, as in flight.
        device: device of a runtime started here (ignored with ``runtime``).
        truth: mask GeoTIFF or vessel GeoJSON for a GeoTIFF scene; without truth nothing is scored.
            ``truth``, ``georef`` and ``limit`` open a spec; with an opened ``Source`` they are refused.
        runtime: control endpoint of a runtime already running; by default one is started.
        rate_hz: tiles per second (a ``rate`` timing); ``timing`` says more.
        georef: gsd/origin/crs for images without a georeference.
        bands: 1-based source bands feeding the model's bands (default: the rules of
            ``runtime.bands``).
        overlap: pixels shared by neighbouring tiles.
        faults: a fault spec (``flightsim.faults``); the report then has a ``faults`` section.
        limit: at most this many samples of the source.
        modality: ``optical`` or ``sar``: what the scene is, where its format does not say.
        strict_fit: refuse (ValueError) a scene that does not suit the model (:mod:`hil.fit`)
            instead of warning in the report.
        land_masks: a folder of ``<sample stem>.png`` sea/land masks (0 = land, as SSDD's
            ``sealand/``; black in a colour or palette PNG: :func:`sea_mask`), or a coastline data
            set (:data:`hil.coastline.COASTLINES`) for
            georeferenced samples: detections whose centroid is on land are dropped on the ground,
            and land pixels cleared from the mask, before scoring (samples without a mask, or
            without a CRS or with an assumed position (``Sample.position_assumed``) for a coastline,
            are left as they are). Each mask file is read and
            checked before the runtime starts.
        profile: the twin's target profile (e.g. a hypothesis profile; ``runtime/profiles.toml``)
            for a runtime started here; default the model's ``numerics.profile``, else the twin's.
        signing_key: the ground's Ed25519 private key: the uplink carries the bundle signed with it
            (for a runtime that takes only signed models; ``runtime.signing``).
        keys: the ground's CURVE keys (``ClientKeys.from_dir``) for a ``runtime`` whose sockets are
            under CURVE: control, tiles and results (with its acks) are opened with them.
        ground_ack: override the started runtime's ``[delivery] ground_ack`` (on by default: each
            result counts as delivered only once this rig acknowledges it; docs/protocol.md).
        config: the rig's settings (``hil/defaults.toml`` merged with a user TOML:
            ``Settings.load(path)``, as ``hil run --config`` does); default the shipped ones.
            ``[run] synthetic_seed`` is the seed of a synthetic scene given without one.
        runtime_config: a TOML overriding runtime/defaults.toml for the runtime started here
            (``hil run --runtime-config``; ignored with ``runtime``).

    Raises:
        ValueError: before a runtime starts, on a model whose input is not square, a source with
            no samples, ``truth``/``georef``/``limit`` given with an opened source, a land mask
            that is unreadable or of another size than its image, or a scene unfit for the model
            with ``strict_fit``.
    """
    config = config or DEFAULTS
    cfg = config.run
    device = device or cfg.device
    if runtime is None:
        _check_runtime_options(profile, runtime_config, device)
        if keys is not None:  # a runtime started here has no CURVE: a CURVE client never gets through to it
            raise ValueError("CURVE keys are for a runtime already running under CURVE (--runtime): the runtime "
                             "hil starts has none")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    bundle = read_bundle(model)
    tile_size = _tile_size(bundle.manifest, model)
    model_bands = model_band_names(bundle.manifest["input"])
    overlap = cfg.overlap_px if overlap is None else overlap
    if timing is None:
        rate = rate_hz if rate_hz is not None else cfg.rate_hz
        timing = Timing("rate", rate_hz=rate) if rate else Timing(cfg.timing)
    spec = FaultSpec.parse(faults) if isinstance(faults, str) else faults
    if isinstance(scene, Source):
        # An opened source has its truth, georeference and samples already: these would be ignored.
        ignored = [name for name, given in (("truth", truth is not None), ("limit", limit is not None),
                                            ("georef", georef is not None and georef.given)) if given]
        if ignored:
            raise ValueError(f"{', '.join(ignored)} cannot be given with an opened source ({scene.kind}); "
                             "give them to the source, or pass a spec to open")
        source = scene
    elif isinstance(scene, Path) and not scene.exists():
        raise ValueError(f"--scene {str(scene)!r}: no such file; give a GeoTIFF path, 'synthetic' or KIND:PATH")
    else:
        source = open_source(str(scene), truth=truth, georef=georef,
                             seed=cfg.synthetic_seed if seed is None else seed, limit=limit)
    if land_masks is not None and str(land_masks) not in COASTLINES and not Path(land_masks).is_dir():
        raise ValueError(f"--land-masks {str(land_masks)!r}: no such folder of sea/land masks, and not a "
                         f"coastline data set; valid: a folder or one of {list(COASTLINES)}")
    scenes = []
    for sample in source:
        if _rereadable(sample):
            sample.image = None  # read again when its tiles go: one image in memory at a time, not the set
        scenes.append(_Scene(sample))
    if not scenes:  # else a run of no tiles, "accounted for", exit 0
        raise ValueError(f"{source.describe().get('path') or source.kind}: the scene source has no samples "
                         "(an empty data set or split role, or a limit of 0); nothing to run")
    if land_masks is not None and str(land_masks) not in COASTLINES:
        # a mask that cannot be used must not cost the run it would come after
        check_mask_files((s.sample for s in scenes), Path(land_masks))
        masked = sum(sea_mask(s.sample, Path(land_masks)) is not None for s in scenes)
        if not masked:  # the wrong folder (SSDD's parent of sealand/, say): scores unmasked, silently
            raise ValueError(f"--land-masks {str(land_masks)!r}: none of the {len(scenes)} samples has a mask there "
                             f"(<sample>.png, e.g. {mask_file(scenes[0].sample, Path(land_masks)).name})")
    elif land_masks is not None and any(placed_on_the_earth(s.sample) for s in scenes):
        check_coastline(str(land_masks))  # the optional package, before the run, not at its scoring
    fit = model_fit(bundle.manifest, source, [g for g in map(_gsd, (s.sample for s in scenes)) if g is not None],
                    modality, [s.sample.dtype for s in scenes])
    if fit["warnings"] and strict_fit:
        raise ValueError("the scene does not suit the model: " + "; ".join(fit["warnings"]))
    # what each sample's tiles tell the runtime they are: the user's word, else the sample's own data set's
    modalities = [modality] * len(scenes) if modality else sample_modalities(source)
    # Scene ids unique to this run: a runtime that has seen (scene_id, tile_id) takes it as a resend.
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_RUNS)}"
    for s in scenes:
        s.band_index, s.bands_note = adapt_bands(s.sample.bands, model_bands, bands, strict=bands is not None)
        grid = tile_grid(s.sample.height, s.sample.width, tile_size, overlap)
        for w, o in zip(grid, owned_windows(grid)):
            s.windows[f"{run_id}/{s.sample.name}/r{w[0]}c{w[1]}"] = (w, o)
    if len({s.sample.name for s in scenes}) != len(scenes):
        raise ValueError(f"{source.describe().get('path')}: two samples share a name; tile ids would clash")
    all_tiles = {t: s for s in scenes for t in s.windows}
    max_panels = config.overview.max_panels

    def tiles() -> Any:
        seq = 0
        for k, s in enumerate(scenes):
            if _rereadable(s.sample):
                s.sample.load()  # one decode for the preview and every window (a JPEG or PNG has no cheap windows)
            if k < max_panels:
                s.preview = s.sample.preview(max(1, config.overview.max_side_px // (1 if len(scenes) == 1 else 4)))
            yield (tile_sample(s.sample, tile_size, overlap, s.band_index, seq0=seq,
                               scene_id=f"{run_id}/{s.sample.name}",
                               modality=modalities[k] if fit.get("checked") else None,
                               # --bands: the user's word that these source bands are the model's
                               band_names=list(model_bands) if bands is not None else None),
                   s.sample.height, _gsd(s.sample))
            seq += len(s.windows)
            if _rereadable(s.sample):
                s.sample.image = None  # the truth is what scoring needs

    # The checks passed: the folder's outputs are this run's from here on, none of a run before it
    # (a failed run must not leave the last one's report beside its own runtime.log, nor a run on a
    # runtime already running the log of a runtime an earlier run started)
    for name in ("report.json", "detections.geojson", "overview.png") + (("runtime.log",) if runtime else ()):
        (report_dir / name).unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = None if runtime else RuntimeProcess(device, report_dir / "runtime.log", cfg.startup_timeout_s, profile,
                                                ground_ack, config=runtime_config)
    injector = control = collector = streamer = None
    try:
        endpoints = remote_endpoints(runtime, keys=keys) if runtime else proc.endpoints  # type: ignore[union-attr]
        control = ControlClient(endpoints["control"], keys=keys)
        if signing_key is not None:
            from runtime.signing import sign

            bundle = replace(bundle, signature=sign(bundle, signing_key))
        uplink = control.load_model(bundle)
        status = control.status()
        curve = set(status.get("curve_channels", [])) if keys is not None else set()  # the others take no keys
        collector = ResultCollector(endpoints["results"], acks=endpoints.get("acks"),  # acks: ground_ack runtimes
                                    keys=keys if "results" in curve else None)
        streamer = Streamer(endpoints["tiles"], window=window or cfg.window,
                            resend_after_s=cfg.resend_after_s or None, keys=keys if "tiles" in curve else None,
                            check=proc.check if proc is not None else None)
        sender: Streamer | FaultInjector = streamer
        if spec is not None:
            sender = injector = FaultInjector(streamer, spec)
        t_stream = time.monotonic()
        log = sender.stream(timing.apply(tiles()), want_mask=True, total=len(all_tiles), progress=progress)
        # A tile refused before it was accepted is answered by its rejected ack: its rejection result
        # is sent once and held for no ground, so it may never come here (_told_rejected).
        expected = set(log.sent_at) - (injector.ledger.dropped if injector else set()) - set(_told_rejected(log))
        # A copy the runtime acknowledged as a duplicate gets no result of its own: counted per copy,
        # as n_acks is (a tile resent twice has two such acks; by tiles, the collector waited out its
        # grace for a result that was never to come).
        deduplicated = {t for t, a in log.acks.items() if a.get("duplicate")}
        complete = collector.wait_for_tiles(expected, cfg.result_timeout_s,
                                            messages=log.n_acks - log.n_duplicate_acks,
                                            grace_s=cfg.duplicate_grace_s,
                                            check=proc.check if proc is not None else None)
        # With ground_ack: what the ground acknowledged, once the last acks have been taken.
        final = control.status()
        delivery = final.get("delivery")
        deadline = time.monotonic() + 5
        while delivery and delivery["ground_ack"] and delivery["awaiting_ground"] and time.monotonic() < deadline:
            time.sleep(0.05)
            final = control.status()
            delivery = final["delivery"]
        # the runtime's own judgement of the scene (its tiles carry the modality the rig knows)
        # a counter over the runtime's life: this run's tiles are what it added since the uplink
        unfit, before = final.get("counters", {}).get("tiles_unfit"), status.get("counters", {}).get("tiles_unfit")
        fit["runtime_tiles_unfit"] = None if unfit is None else _since(before, unfit)
        if delivery:
            # its counts are over the runtime's life too: a runtime already running (--runtime) had the
            # results of every earlier run in them (results_acked 8 for a run of 4 tiles, the second run)
            start = status.get("delivery") or {}
            delivery = {**delivery, **{k: _since(start.get(k), delivery[k]) for k in _DELIVERY_COUNTS
                                       if isinstance(delivery.get(k), int)}}
            if delivery.get("ground_ack") and isinstance(delivery.get("results_acked"), int):
                # ... and during the run too: results the runtime held from before it (a bare `flightsim
                # stream`'s, which no ground took) come to this run's collector, which acknowledges them
                # (or the runtime would hold them for ever), and were counted as its own (results_acked
                # 32 for 16 tiles). A runtime counts an ack once per result: so does acked_keys.
                earlier = sum(1 for key in collector.acked_keys() if key[1] not in all_tiles)
                delivery["results_acked"] = max(0, delivery["results_acked"] - earlier)
                delivery["earlier_results_acked"] = earlier
    except RuntimeError as exc:  # LinkError, ControlError: when the runtime started here died, say so
        if proc is None or isinstance(exc, RuntimeExited) or proc.proc.poll() is None:
            raise
        raise RuntimeError(f"the runtime exited with code {proc.proc.poll()} during the run ({exc}); "
                           f"see {report_dir / 'runtime.log'}") from exc
    finally:
        # On every way out, a failed run included: the collector's thread and every socket stop
        # here, or each failed run would leave them running in the caller's process.
        for link in (collector, streamer, control, proc):
            if link is not None:
                link.close()
    report, detections = _score(log, collector, scenes, all_tiles, injector, t_stream, deduplicated, config.score,
                                land_masks, connectivity=status.get("vectorize", {}).get("connectivity", 8))
    report.update(
        device=status["numerics"]["device"], profile=status["numerics"].get("profile"),
        numerics=status["numerics"], model=uplink["model"], delivery=delivery,
        estimated_latency_ms=(status.get("latency_estimate") or {}).get("estimated_latency_ms"),
        latency_estimate=status.get("latency_estimate"),
        model_manifest={k: bundle.manifest.get(k) for k in ("name", "parameters", "numerics", "metrics")},
        run_id=run_id, scene=_scene_info(source, scenes), model_fit=fit, tile_size=tile_size, overlap_px=overlap,
        timing=timing.describe(),
        results_complete=complete, wall_s=time.monotonic() - t0,
        # results that could not be read (dropped, and their tiles counted lost unless answered again)
        malformed_results=collector.malformed,
    )
    collection, report["detections_crs"] = detections_collection(
        detections, {s.sample.name: s.sample.crs for s in scenes})
    (report_dir / "detections.geojson").write_text(json.dumps(collection))
    panels = [Panel(s.sample.name, s.preview[0], (s.sample.height, s.sample.width), s.sample.transform,
                    s.sample.vessels or [],
                    [shape(f["geometry"]) for f in detections if f["properties"]["scene"] == s.sample.name])
              for s in scenes if s.preview is not None]
    draw_overview(panels, report_dir / "overview.png", config.overview.max_side_px,
                  title=f"{report['scene'].get('source')}: {report.get('n_truth', 0)} true vessels (green), "
                        f"{len(detections)} detected (red)")
    report["outputs"] = {name: str(report_dir / name) for name in ("report.json", "detections.geojson", "overview.png")}
    (report_dir / "report.json").write_text(json.dumps(report, indent=2))
    return RigResult(report, report_dir)


#: The counts of a runtime's ``status()["delivery"]`` (docs/protocol.md), over its life; the rest are its state now.
_DELIVERY_COUNTS = ("results_acked", "results_resent", "results_undeliverable", "bad_acks")


def _since(before: int | None, after: int) -> int:
    """What a runtime's counter added during the run: ``after`` less its value at the uplink, or
    ``after`` itself where it went down (the runtime restarted mid-run and began counting again: the
    count since that restart, the least the run added)."""
    return after - (before or 0) if after >= (before or 0) else after


def _tile_size(manifest: dict[str, Any], model: str | Path) -> int:
    """The side of the model's square input: the rig's tiles are square (tile_grid, the owned
    windows and the stitching take one size), and so are the runtime's models."""
    height, width = manifest["input"]["shape"][2:4]
    if height != width:
        raise ValueError(f"{model}: the model's input is {height}x{width} (HxW); the rig streams square tiles "
                         "only, valid: an input of shape [1, bands, N, N]")
    return int(height)


def _gsd(sample: Sample) -> float | None:
    """Metres per pixel as the runtime reads them from a tile (its CRS's unit, either axis of a
    turned grid, degrees at the scene's latitude); None where the CRS cannot say (none)."""
    return tile_gsd_m(tuple(sample.transform)[:6], sample.crs)


def _rereadable(sample: Sample) -> bool:
    """Whether ``sample``'s pixels are held in memory but can be read again from its file: a
    GeoTIFF sample reads its windows from the file anyway, and a synthetic one has no file."""
    return sample.path is not None and sample.path.suffix.lower() not in (".tif", ".tiff")


def _scene_info(source: Source, scenes: list[_Scene]) -> dict[str, Any]:
    info = source.describe()
    if len(scenes) == 1:
        s = scenes[0].sample
        info.update(name=s.name, height=s.height, width=s.width, crs=s.crs.to_string() if s.crs else None,
                    units=s.units, bands=s.bands, band_adaptation=scenes[0].bands_note, notes=s.notes)
        if info.get("source") == "synthetic":
            info.update(seed=info["seeds"][0], gsd_m=abs(s.transform.a))
        if s.path is not None:
            info["path"] = str(s.path)
    else:
        notes = Counter(s.bands_note for s in scenes)
        info.update(units=sorted({s.sample.units for s in scenes}), band_adaptation=dict(notes))
    return info


def _check_runtime_options(profile: str | None, runtime_config: Path | None, device: str | None = None) -> None:
    """What the runtime started here would refuse, refused here with its own words: else the
    operator reads only "the runtime exited before it was ready" and looks for why in its log.

    Raises:
        ValueError: an unknown profile (listing the valid ones), a profile for a device that is no
            twin (it would be ignored: `runtime.device_names.check_profile_device`), a runtime config that is missing,
            names an unknown setting or holds one out of its range.
    """
    from runtime.config import defaults as runtime_defaults
    from runtime.profiles import get_profile
    from runtime.settings import Settings as RuntimeSettings

    if profile:
        get_profile(profile)
        if device:
            from runtime.device_names import check_profile_device

            try:
                check_profile_device(device, profile)
            except ValueError as exc:
                raise ValueError(f"--profile {str(exc).removeprefix('profile ')}") from None
    if runtime_config is not None:
        try:
            RuntimeSettings.from_config(runtime_defaults(Path(runtime_config)))
        except ValueError as exc:  # worded for `runtime serve --config`; here the option has another name
            said = str(exc)
            raise ValueError(said.replace("--config", "--runtime-config", 1) if said.startswith("--config ")
                             else f"--runtime-config {runtime_config}: {said}") from None


def mask_file(sample: Any, folder: Path) -> Path:
    """Where ``folder`` holds the sample's sea/land mask: ``<stem>.png``, as SSDD's ``sealand/``."""
    return folder / f"{str(sample.name).split('/')[-1]}.png"


def check_mask_files(samples: Any, folder: Path) -> None:
    """Refuse a folder of masks that two samples of different images would share: it is matched by
    the stem of each sample's name (``coco.1/0001`` and ``coco.2/0001``, two data sets of one list,
    both take ``0001.png``), and which of them it was drawn for cannot be told.

    Raises:
        ValueError: naming the mask file and the samples.
    """
    takers: dict[Path, dict[Any, str]] = {}
    for sample in samples:
        path = mask_file(sample, folder)
        if sample.path is not None and path.is_file() and path.resolve() == sample.path.resolve():
            # the images' own folder given as the masks: every bright pixel would be called sea
            raise ValueError(f"{path}: the sea/land mask of {sample.name} is the image itself; --land-masks is a "
                             f"folder of <stem>.png masks (0 = land, as SSDD's sealand/), not the images' folder")
        image = sample.path.resolve() if sample.path is not None else sample.name  # one chip listed twice is one
        takers.setdefault(path, {})[image] = sample.name
    for path, names in takers.items():
        if len(names) > 1 and path.is_file():
            raise ValueError(f"{path}: the sea/land mask of which sample? {sorted(names.values())} are different "
                             f"images that share its stem; give each data set its own folder of masks, or run "
                             f"them apart")


def sea_mask(sample: Any, folder: Path) -> np.ndarray | None:
    """The sample's sea mask (True = sea) from ``folder/<stem>.png`` (0 = land), or None.

    Land is black: 0 in a grey mask, (0, 0, 0) in a colour one, alpha aside. A palette PNG's values
    are indices into its colour table, read through it: PIL's palette conversion may put white at
    index 0, and the index taken for the grey made its sea land and its land sea, without a word.

    Raises:
        ValueError: naming the file: unreadable, or of another size than the image.
    """
    path = mask_file(sample, folder)
    if not path.is_file():
        return None
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            if src.colorinterp[0] == ColorInterp.palette:  # the colours its indices stand for, as images are read
                sea = (palette_table(src)[0][:, src.read(1)] > 0).any(axis=0)
            else:
                bands = [i for i, ci in enumerate(src.colorinterp, 1) if ci != ColorInterp.alpha] or [1]
                sea = (src.read(bands) > 0).any(axis=0)
    except RasterioError as exc:
        raise ValueError(f"{path}: not a readable sea/land mask: {exc}") from None
    if sea.shape != (sample.height, sample.width):
        raise ValueError(f"{path}: sea/land mask is {sea.shape}, the image is {(sample.height, sample.width)}")
    return sea


def centroids_in(vessels: list[dict[str, Any]], sample: Any, allowed: np.ndarray) -> list[dict[str, Any]]:
    """The detections whose centroid lies on an ``allowed`` pixel of the sample (True: at sea, or
    image rather than no data); for a detection whose centroid lies outside it (a crescent, a C
    around a pier's tip), a point inside it instead."""
    inv = ~sample.transform
    return [v for v in vessels if _centred_in(shape(v["geometry"]), inv, allowed)]


def _centred_in(geom: Any, inv: Affine, allowed: np.ndarray) -> bool:
    """Whether the pixel under ``geom``'s centre (through ``inv``, map to pixel) is ``allowed``."""
    c = geom.centroid
    if not geom.contains(c):
        # the centroid of a bent outline can fall in the water or on the land it wraps around,
        # which judges the detection by a pixel that is none of its own
        c = geom.representative_point()
    col, row = inv * (c.x, c.y)
    return bool(allowed[int(np.clip(row, 0, allowed.shape[0] - 1)), int(np.clip(col, 0, allowed.shape[1] - 1))])


def unreachable_truth(truth: list[Any], sample: Any, no_data: np.ndarray | None,
                      sea: np.ndarray | None) -> tuple[set[int], set[int]]:
    """The indices of the true vessels ``truth`` (map outlines) centred on no data, and of the rest
    centred on land (``sea`` False), by the rule that drops a detection there (:func:`centroids_in`).

    A detection there is dropped before scoring, so such a vessel is all but bound to be a miss, yet
    it stays in ``n_truth`` (the object scores are left as published); the report counts them apart,
    so that a reader can tell how much of the recall they cost. Either set is empty without its mask."""
    inv = ~sample.transform
    on_no_data = set() if no_data is None else {i for i, g in enumerate(truth) if _centred_in(g, inv, no_data)}
    on_land = set() if sea is None else {i for i, g in enumerate(truth)
                                         if i not in on_no_data and not _centred_in(g, inv, sea)}
    return on_no_data, on_land


def _score(log: Any, collector: ResultCollector, scenes: list[_Scene], all_tiles: dict[str, _Scene],
           injector: FaultInjector | None, t_stream: float, deduplicated: set[str], score_cfg: ScoreSettings,
           land_masks: str | Path | None = None, connectivity: int = 8) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Account for every tile, stitch the masks, merge border pieces (joined as the runtime's
    ``connectivity`` joins pixels), and score each image and the set."""
    land_dropped = land_samples = no_data_dropped = 0
    first: dict[str, dict[str, Any]] = {}
    first_held: dict[str, bool] = {}
    masks: dict[str, np.ndarray | None] = {}
    answers: Counter[str] = Counter()
    unknown, anonymous = 0, []
    latencies: dict[str, float] = {}  # of the result that answers each tile (one held over one not)
    runtime_latencies = []
    last = t_stream
    for received_at, result, mask in collector.results:
        tile_id = result.get("tile_id")
        last = max(last, received_at)
        if tile_id is None:
            anonymous.append(result.get("reason"))
            continue
        if tile_id not in all_tiles:
            unknown += 1
            continue
        answers[tile_id] += 1
        # A result the runtime holds for the ground's ack answers the tile over one it does not (a
        # rejection of a corrupted copy, "acknowledge": false, which may come first).
        held = result.get("acknowledge") is not False
        if tile_id in first and (first_held[tile_id] or not held):
            continue  # a second result for a tile (a duplicate, a resend): never counted twice
        if tile_id in log.sent_at:
            latencies[tile_id] = 1e3 * (received_at - log.sent_at[tile_id])
        first[tile_id], masks[tile_id], first_held[tile_id] = result, mask, held
        if result["status"] == "ok":
            runtime_latencies.append(result["timings_ms"]["total"])
    processed = {t for t, r in first.items() if r["status"] == "ok"}
    told = {t: reason for t, reason in _told_rejected(log).items() if t in all_tiles and t not in first}
    rejected = {**{t: r.get("reason") for t, r in first.items() if r["status"] != "ok"}, **told}
    dropped = injector.ledger.dropped if injector else set()
    unanswered = set(all_tiles) - set(first) - set(told)
    lost_by_link = {t for t in unanswered if t in dropped}
    lost_by_fault = Counter(injector.ledger.faults[t] for t in lost_by_link) if injector else Counter()
    # An anonymous rejection (a header too garbled to name its tile) may stand for a tile that has
    # no answer of its own, but for no more of them than there are: one of a tile the link dropped
    # (it never reached the runtime), or beyond the tiles left, is a stray message, reported apart,
    # so that sent == processed + rejected + lost always holds.
    counted = anonymous[:len(unanswered - lost_by_link)]
    reasons = Counter([*rejected.values(), *counted])
    n_rejected = len(rejected) + len(counted)
    n_lost = len(all_tiles) - len(processed) - n_rejected

    per_scene, detections, counts, objects, outline_counts = [], [], [], [], []
    tolerance = score_cfg.merge_tolerance_px
    for s in scenes:
        sample = s.sample
        pred = np.zeros((sample.height, sample.width), np.uint8)
        pixel_area = abs(sample.transform.a * sample.transform.e - sample.transform.b * sample.transform.d)
        answered: list[tuple[list[dict[str, Any]], Any, Any]] = []
        for tile_id, (window, owned) in s.windows.items():
            result = first.get(tile_id)
            if result is None or result["status"] != "ok":
                continue
            mask = masks[tile_id]
            row, col, h, w = window
            r0, c0, oh, ow = owned
            if mask is not None:
                pred[r0:r0 + oh, c0:c0 + ow] = mask[r0 - row:r0 - row + oh, c0 - col:c0 - col + ow]
            answered.append((result["detections"]["features"], owned_box(sample.transform, window),
                             owned_box(sample.transform, owned)))
        pieces = tile_pieces(answered, owned_box(sample.transform, (0, 0, sample.height, sample.width)),
                             sample.crs, pixel_area)
        # the pixel size from the whole grid: ``a`` alone is 0 on a grid turned by 90 degrees
        vessels = whole_vessels(pieces, sample.crs, tolerance * math.sqrt(pixel_area), connectivity,
                                score_cfg.border_rule)
        no_data = sample.no_data()
        if no_data is not None:
            # What the file marks as no data (a nodata value, an alpha band, a mask) holds no vessel: a scene's black
            # border was scored as false alarms and vessel pixels. Not runtime infer's rule, which zeroes the
            # probabilities there before vectorising: the payload sees only counts (no tile says where its no data
            # is), so the rig can only keep or drop each vessel the payload sent, by the pixel under its centre, not
            # trim it (its score, the mean over its pixels, could not be recomputed). A vessel partly on no data
            # thus comes out whole (or not at all) here and trimmed to its image part there (README).
            kept = centroids_in(vessels, sample, ~no_data)
            no_data_dropped += len(vessels) - len(kept)
            vessels = kept
            pred[no_data] = 0
        sea = None if land_masks is None else (coastline_sea_mask(sample, str(land_masks))
                                               if str(land_masks) in COASTLINES else sea_mask(sample, Path(land_masks)))
        if sea is not None:
            land_samples += 1
            kept = centroids_in(vessels, sample, sea)
            land_dropped += len(vessels) - len(kept)
            vessels = kept
            pred &= sea  # land pixels are never vessel pixels once masked
        for v in vessels:
            v["properties"]["scene"] = sample.name
        detections += vessels
        entry: dict[str, Any] = {"name": sample.name, "tiles": len(s.windows), "n_detections": len(vessels),
                                 "units": sample.units}
        if sample.has_truth:
            counts.append(pixel_counts(pred, sample.mask))  # type: ignore[arg-type]
            outline_counts.append(pixel_counts(_burn(vessels, sample), sample.mask))  # type: ignore[arg-type]
            entry["outline_vessel_iou"] = ious(outline_counts[-1])["vessel_iou"]
            # kept, so that a subset of the images (one data set of several) can be pooled again
            entry["pixel_counts"], entry["outline_pixel_counts"] = counts[-1], outline_counts[-1]
            truth = scored_truth(sample)
            entry["truth_boxes_only"] = boxes_only(truth)
            obj = match_objects(as_matched([shape(f["geometry"]) for f in vessels], score_cfg.match_shape),
                                as_matched(truth, score_cfg.match_shape), score_cfg.match_iou)
            on_no_data, on_land = unreachable_truth(truth, sample, no_data, sea)
            found = {j for _, j in obj["matched_pairs"]}
            entry.update(truth_on_nodata=len(on_no_data), truth_on_nodata_missed=len(on_no_data - found),
                         truth_on_land=None if land_masks is None else len(on_land),
                         truth_on_land_missed=None if land_masks is None else len(on_land - found))
            entry.update(pixel_scores(pred, sample.mask))  # type: ignore[arg-type]
            entry["length_rel_error"] = _length_errors(obj.pop("matched_pairs"), vessels, truth, sample)
            obj.pop("matched_indices")
            objects.append(obj)
            entry.update(obj)
        per_scene.append(entry)

    report: dict[str, Any] = {
        "tiles_sent": len(all_tiles),
        "tiles_processed": len(processed),
        "tiles_rejected": n_rejected,
        "tiles_lost": n_lost,
        "tiles_lost_by_link": dict(lost_by_fault),
        "tiles_unaccounted": n_lost - len(lost_by_link),
        "rejected_by_reason": dict(reasons),
        "duplicate_results": sum(answers.values()) - len(answers),
        "duplicates_dropped_by_runtime": len(deduplicated),
        "unknown_results": unknown,
        "anonymous_results": len(anonymous) - len(counted),
        # over the tiles processed, the set runtime_latency_ms is over: a rejection is answered without
        # inference (a bad checksum in a couple of ms), and counted in, made the ground's figure the
        # shorter of the two (a mean of 40 ms beside the runtime's 68 ms with half the tiles rejected)
        "latency_ms": percentiles([latencies[t] for t in processed if t in latencies]),
        "runtime_latency_ms": percentiles(runtime_latencies),
        "throughput_tiles_per_s": len(processed) / (last - t_stream) if last > t_stream else None,
        "n_detections": len(detections),
        "land_masked": None if land_masks is None else {"source": str(land_masks), "samples_with_a_mask": land_samples,
                                                        "detections_dropped": land_dropped},
        "no_data_dropped": no_data_dropped,  # detections on what the files mark as no data (Sample.no_data)
        "units": sorted({s.sample.units for s in scenes})[0] if len({s.sample.units for s in scenes}) == 1 else "mixed",
    }
    if injector is not None:
        first_status = {t: "processed" if r["status"] == "ok" else f"rejected:{r.get('reason')}"
                        for t, r in first.items()}
        first_status.update({t: f"rejected:{reason}" for t, reason in told.items()})
        report["faults"] = {"spec": str(injector.spec), **fault_outcomes(injector.ledger, first_status, dict(answers),
                                                                       deduplicated)}
        # A fault asked for and never injected (a restart scheduled past the last tile, a rate too low for so
        # few tiles) is said, not left to be read from what the section lacks.
        spec, restarts = injector.spec, len(injector.ledger.restarts)
        missing = [f"{kind}={p:g}: no tile of {len(all_tiles)}" for kind, p in spec.rates.items()
                   if p > 0 and kind not in report["faults"]]
        if restarts < spec.restarts:
            missing.append(f"restart={spec.restarts}@{spec.restart_every}: {restarts} of {spec.restarts} "
                           f"({len(all_tiles)} tiles sent, one restart after every {spec.restart_every})")
        if missing:
            report["faults"]["not_injected"] = missing
    if counts:
        report.update(pooled_scores(counts, objects))
        # What the payload reports, rather than the network's mask: its outlines burnt back into
        # pixels (small and low-score components it dropped are not in them).
        report["outline_vessel_iou"] = ious(summed_counts(outline_counts))["vessel_iou"]
        errors = [e for p in per_scene for e in p.get("length_rel_error", {}).get("values", [])]
        report["length_rel_error"] = _summary(errors)
        # Outlines matched against box-only truth miss thin ships drawn at an angle (hil.score.MATCH_SHAPES):
        # how many scored samples look that way, for the summary to say so
        report["match_shape"] = score_cfg.match_shape
        report["truth_boxes_only_samples"] = sum(1 for p in per_scene if p.get("truth_boxes_only"))
        report.update(_unreachable_summary([p for p in per_scene if "truth_on_nodata" in p],
                                           report["false_negatives"], land_masks is not None))
    else:
        report.update(miou=None, vessel_iou=None, outline_vessel_iou=None, precision=None, recall=None, f1=None,
                      truth_on_nodata=None, truth_on_nodata_missed=None, truth_on_land=None,
                      truth_on_land_missed=None, misses_on_nodata_or_land_share=None)
    for p in per_scene:
        p.get("length_rel_error", {}).pop("values", None)
    report["per_scene"] = per_scene
    return report, detections


def _unreachable_summary(scored: list[dict[str, Any]], misses: int, land: bool) -> dict[str, Any]:
    """The set's counts of true vessels centred on no data or on masked land (:func:`unreachable_truth`),
    summed over the ``scored`` images, and the share of the set's ``misses`` (false negatives) that
    they are: 1.0 says every miss was one the payload's detection could not have been kept for."""
    out: dict[str, Any] = {}
    for key in ("truth_on_nodata", "truth_on_nodata_missed", "truth_on_land", "truth_on_land_missed"):
        out[key] = sum(p[key] for p in scored) if land or "land" not in key else None
    unreachable_missed = out["truth_on_nodata_missed"] + (out["truth_on_land_missed"] or 0)
    out["misses_on_nodata_or_land_share"] = unreachable_missed / misses if misses else None
    return out


def _told_rejected(log: Any) -> dict[str, str | None]:
    """Tiles the runtime refused before accepting them, by their rejected acks on the tile link, with
    the reason: the runtime's answer for such a tile (runtime/delivery.py). Its rejection result is
    sent once, held for no ground, and a collector can miss it (another ground on the same PUSH
    socket takes every other result, a reconnect): the tile is rejected, not lost. A rejected copy
    of a tile accepted before is not in ``log.acks`` (``log.rejected_copies``): that tile's own
    result is still to come."""
    return {t: a.get("reason") for t, a in log.acks.items() if a.get("status") == "rejected"}


def _burn(vessels: list[dict[str, Any]], sample: Sample) -> np.ndarray:
    """The pixels of ``sample`` inside the outlines of ``vessels`` (map coordinates of its grid)."""
    if not vessels:
        return np.zeros((sample.height, sample.width), bool)
    return rasterio.features.rasterize([(v["geometry"], 1) for v in vessels], out_shape=(sample.height, sample.width),
                                       transform=sample.transform, dtype="uint8").astype(bool)


def _length_errors(pairs: list[tuple[int, int]], vessels: list[dict[str, Any]], truth: list[Any],
                   sample: Sample) -> dict[str, Any]:
    """Relative error of the detected length of each matched vessel (the truth measured the same way)."""
    from runtime.measure import describe

    values = []
    for i, j in pairs:
        true_len = describe(truth[j], sample.crs)["length_m"]
        if true_len > 0:
            values.append(abs(vessels[i]["properties"]["length_m"] - true_len) / true_len)
    return {**_summary(values), "values": values}


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    return {"n": len(values), "median": float(np.median(values)), "p90": float(np.percentile(values, 90))}


__all__ = ["DEFAULTS", "RigResult", "Settings", "run"]

"""search.discriminate: the ground's training rows are the rows the payload computed (a vessel cut
by a tile border scored by its own piece, the bands the rig sent, each set's own detections), and
what the fit writes and compares is what the runtime does (the cuts it replaces, its own opened cuts,
the figures measured before it, 100 trees)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box as shapely_box
from shapely.geometry import shape

import search.discriminate as sd
from flightsim.tiles import owned_windows, tile_grid
from hil.merge import whole_vessels
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.candidate_features import FEATURES, RING_PX
from runtime.vectorize import vectorize
from tests.conftest import make_brightness_bundle


class _Recorder:
    """A second stage that keeps every component and records the row the payload computed for it."""

    ring_px = RING_PX
    cut = 1e-9

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def probability(self, rows: np.ndarray) -> np.ndarray:
        self.rows += [np.array(row) for row in rows]  # the tile's candidates, in one call
        return np.full(len(rows), 0.5)


def _board(prob: np.ndarray, image: np.ndarray, tile: int) -> list[tuple[dict[str, Any], np.ndarray, tuple]]:
    """Each tile vectorised on its own as the payload does it: (piece, its row, its tile window)."""
    out = []
    for window in tile_grid(*prob.shape, tile, 0):
        r, c, h, w = window
        recorder = _Recorder()
        pieces = vectorize(prob[r:r + h, c:c + w], 0.3, Affine.translation(c, r), None, min_area_px=4,
                           image=image[:, r:r + h, c:c + w], discriminator=recorder)
        out += [(p, row, window) for p, row in zip(pieces, recorder.rows)]
    return out


def test_a_vessel_cut_by_a_tile_border_gives_the_row_the_board_computed_for_its_piece(monkeypatch: Any) -> None:
    """The merged outline's score is the pieces' area-weighted mean and its max_score the largest of
    any piece; the row must carry the score of the piece on the tile owning the centroid, as judged."""
    rng = np.random.default_rng(0)
    size, tile = 300, 256
    image = rng.integers(0, 60, (3, size, size), dtype=np.uint8)
    prob = np.zeros((size, size), np.float32)
    for r0, r1, c0, c1 in ((20, 30, 40, 60), (270, 280, 270, 290), (150, 160, 246, 262), (250, 276, 100, 110)):
        prob[r0:r1, c0:c1] = 0.9 + rng.uniform(-0.05, 0.05, (r1 - r0, c1 - c0))
        image[:, r0:r1, c0:c1] = 200
    board = _board(prob, image, tile)
    vessels = whole_vessels([p for p, _, _ in board], None, 0.01)
    assert sorted(v["properties"]["pieces"] for v in vessels) == [1, 1, 2, 2]  # two cut by a border
    sample = SimpleNamespace(name="set/x", height=size, width=size, transform=Affine.identity(), image=image,
                             bands=["b", "b", "b"], vessels=[], mask=None)
    monkeypatch.setattr(sd, "matched_detections", lambda *_: iter([(sample, [(v, 1.0) for v in vessels])]))
    asked: list[tuple] = []

    def probability(pixels: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        r, c, h, w = window
        assert np.array_equal(pixels, image[:, r:r + h, c:c + w])  # the tile's counts, as sent
        asked.append(window)
        return prob[r:r + h, c:c + w]

    rows = sd.candidates(Path("split.json"), "train", Path("detections.geojson"), tile, 0, probability=probability).rows
    grid = tile_grid(size, size, tile, 0)
    for vessel, row in zip(vessels, rows):
        outline = shape(vessel["geometry"])
        burnt = np.zeros((size, size), bool)
        x0, y0, x1, y1 = (int(round(v)) for v in outline.bounds)
        burnt[y0:y1, x0:x1] = True  # the test's vessels are rectangles
        owner = sd._tile_view(burnt, grid, owned_windows(grid))
        (expected,) = [r for p, r, window in board
                       if window == owner and shape(p["geometry"]).intersection(outline).area > 0]
        assert np.array_equal(row, expected), dict(zip(FEATURES, zip(row, expected)))
    assert sorted(asked) == [(0, 0, 256, 256), (256, 0, 44, 256)]  # only tiles of merged vessels, once each
    merged = [v for v in vessels if v["properties"]["pieces"] > 1]
    monkeypatch.setattr(sd, "matched_detections", lambda *_: iter([(sample, [(merged[0], 1.0)])]))
    with pytest.raises(ValueError, match="merged from 2 tile pieces needs the tiles' probabilities"):
        sd.candidates(Path("split.json"), "train", Path("detections.geojson"), tile, 0)


def test_the_features_are_measured_on_the_bands_the_rig_sent(monkeypatch: Any) -> None:
    """A (VV, VH) scene into a one-band "VV" model: the rig sends VV only, so the ground measures VV only."""
    from runtime.bands import adapt_bands

    rng = np.random.default_rng(0)
    image = np.stack([rng.integers(0, 60, (128, 128)), rng.integers(100, 200, (128, 128))]).astype(np.uint8)
    image[0, 40:50, 40:60] = 220
    prob = np.zeros((128, 128), np.float32)
    prob[40:50, 40:60] = 0.9
    index, _ = adapt_bands(["VV", "VH"], ["VV"], None, strict=False)
    assert index == [0]
    recorder = _Recorder()
    found = vectorize(prob, 0.3, Affine.identity(), None, image=image[index], discriminator=recorder)
    sample = SimpleNamespace(name="s/x", height=128, width=128, transform=Affine.identity(), image=image,
                             bands=["VV", "VH"], vessels=[], mask=None)
    monkeypatch.setattr(sd, "matched_detections", lambda *_: iter([(sample, [(found[0], 1.0)])]))
    rows = sd.candidates(Path("split.json"), "train", Path("detections.geojson"), 256, 0, model_bands=["VV"]).rows
    assert np.array_equal(rows[0], recorder.rows[0])


def test_each_set_gets_its_own_detections_though_two_share_a_stem(tmp_path: Path, monkeypatch: Any) -> None:
    """hil writes each sample's full name into properties.scene; matching on the stem gave
    ``ssdd/000001`` the detections of ``hrsid/000001`` as well."""
    import hil.__main__

    samples = [SimpleNamespace(name=name, vessels=[shapely_box(0, 0, 4, 4)], load=lambda: None, height=16, width=16,
                               transform=Affine.identity()) for name in ("ssdd/000001", "hrsid/000001")]
    features = [{"type": "Feature", "geometry": shapely_box(0, 0, 4, 4).__geo_interface__,
                 "properties": {"scene": "ssdd/000001", "score": 0.9, "max_score": 0.95}},
                {"type": "Feature", "geometry": shapely_box(10, 10, 12, 12).__geo_interface__,
                 "properties": {"scene": "hrsid/000001", "score": 0.9, "max_score": 0.95}}]
    (tmp_path / "detections.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    monkeypatch.setattr(hil.__main__, "split_source", lambda spec: iter(samples))
    got = {s.name: [(f["properties"]["scene"], iou) for f, iou in found]
           for s, found in sd.matched_detections(tmp_path / "split.json", "val", tmp_path / "detections.geojson")}
    assert got == {"ssdd/000001": [("ssdd/000001", 1.0)], "hrsid/000001": [("hrsid/000001", 0.0)]}


def _bundle_with_cuts(tmp_path: Path, min_area_px: int | None, metrics: dict[str, Any] | None = None) -> Path:
    make_brightness_bundle(tmp_path / "bright", size=64, threshold=0.3)
    bundle = read_bundle(tmp_path / "bright")
    manifest = rewritable_manifest(bundle)
    manifest["output"].update(min_score=0.85)
    if min_area_px is not None:
        manifest["output"]["min_area_px"] = min_area_px
    if metrics is not None:
        manifest["metrics"] = metrics
    rewrite_bundle(bundle, tmp_path / "model", manifest)
    return tmp_path / "model"


@pytest.mark.parametrize(("before", "opened"), [(0, 0), (2, 2), (80, 4), (None, 4)])
def test_opening_the_cuts_never_raises_the_smallest_vessel(tmp_path: Path, before: int | None, opened: int) -> None:
    """A model keeping every component (min_area_px 0) was opened to 4 px, hiding 1-3 px candidates."""
    model = _bundle_with_cuts(tmp_path, before)
    assert sd.open_cuts(model, tmp_path / "opened", floor_px=4)["min_area_px"] == before
    assert read_bundle(tmp_path / "opened").manifest["output"]["min_area_px"] == opened


def _rows(rng: np.random.Generator, n: int, area: float, score: float) -> np.ndarray:
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, FEATURES.index("log_area")] = np.log(area)
    x[:, FEATURES.index("score")] = score
    return x


def test_the_replaced_cuts_keep_what_the_runtime_keeps_and_their_figures_move_aside(tmp_path: Path,
                                                                                     monkeypatch: Any) -> None:
    """One validation ship of exactly 80 px at score 0.9 passes the replaced cuts (80 px, 0.85) on
    board; exp(log(80)) < 80 dropped it. And the input's val_f1, fitness and runtime p50, measured
    with those cuts and no second stage, leave the top of metrics for ``before_second_stage``."""
    rng = np.random.default_rng(0)
    x_train = np.r_[_rows(rng, 20, 120, 0.95), _rows(rng, 20, 10, 0.4)]
    y_train = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    parts = {"train": sd.Candidates(x_train, y_train, 20, np.zeros((40, 2), np.int64), 0),
             "val": sd.Candidates(_rows(rng, 1, 80, 0.9), np.array([True]), 1, np.array([[80, 80]]), 80)}
    monkeypatch.setattr(sd, "split_candidates", lambda opened, split, which, work, device="": parts[which])
    searched = {"val_f1": 0.69, "fitness": 0.72, "runtime_latency_p50_ms": 108.0, "val_miou": 0.79,
                "val_vessel_iou": 0.59, "device": "myriadx-emu", "test": {"f1": 0.8}}
    model = _bundle_with_cuts(tmp_path, 80, searched)
    (tmp_path / "split.json").write_text("{}")
    record = sd.discriminate(model, tmp_path / "split.json", tmp_path / "out", tmp_path / "work")
    assert record["cuts_replaced"] == {"min_area_px": 80, "min_score": 0.85}
    assert record["val_f1_cuts_replaced"] == 1.0
    metrics = read_bundle(tmp_path / "out").manifest["metrics"]
    assert metrics["before_second_stage"] == {"val_f1": 0.69, "fitness": 0.72, "runtime_latency_p50_ms": 108.0}
    assert not {"val_f1", "fitness", "runtime_latency_p50_ms", "test"} & set(metrics)
    # the network's mask figures are the shipped bundle's still: neither the cuts nor the stage touch them
    assert (metrics["val_miou"], metrics["val_vessel_iou"], metrics["discriminator"]) == (0.79, 0.59, record)
    # fitted again (its cuts already opened): what was moved stays, nothing is lost
    sd.discriminate(tmp_path / "out", tmp_path / "split.json", tmp_path / "again", tmp_path / "work2")
    again = read_bundle(tmp_path / "again").manifest["metrics"]
    assert again["before_second_stage"] == metrics["before_second_stage"]


def test_trees_never_stop_early_whatever_the_number_of_candidates(monkeypatch: Any) -> None:
    """scikit-learn's early_stopping="auto" turns on above 10,000 rows (a tenth held back, fewer
    than 100 trees): the fit is asked for none. (A fit that large takes minutes on a busy 2-core
    host, so the settings the model is made with are checked, and the fit itself is not run.)"""
    import sklearn.ensemble

    made: list[dict[str, Any]] = []

    class Recorded(sklearn.ensemble.HistGradientBoostingClassifier):
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            made.append(self.get_params())
            raise InterruptedError("not fitted: only its settings are checked")

    monkeypatch.setattr(sklearn.ensemble, "HistGradientBoostingClassifier", Recorded)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12000, len(FEATURES)))
    with pytest.raises(InterruptedError):
        sd.fit_trees(x, x[:, 0] > 1)
    assert made[0]["early_stopping"] is False
    assert (made[0]["max_iter"], made[0]["max_leaf_nodes"], made[0]["learning_rate"]) == (100, 31, 0.1)

"""search.discriminate: fitting the runtime's second stage on a split's train and val, never its test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.candidate_features import FEATURES
from flightsim.tiles import owned_windows, tile_grid
from search.discriminate import ROWS_VERSION, _tile_view, discriminate, fit_logistic, fit_trees, object_f1
from tests.conftest import make_brightness_bundle

SSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ssdd" / "images"


def test_the_fit_separates_what_a_feature_separates_and_needs_both_kinds() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, len(FEATURES)))
    labels = rows[:, FEATURES.index("contrast")] + 0.3 * rng.normal(size=400) > 0.5
    fitted = fit_logistic(rows, labels)
    weights = dict(zip(fitted.features, fitted.weights))
    assert weights["contrast"] > 5 * max(abs(w) for f, w in weights.items() if f != "contrast")
    assert ((fitted.probability(rows) >= 0.5) == labels).mean() > 0.9
    with pytest.raises(ValueError, match="both kinds"):
        fit_logistic(rows, np.zeros(400, bool))


def test_fitted_trees_combine_features_that_no_linear_score_separates() -> None:
    """Ships are bright AND filled (an interaction): the trees learn it, and the arrays the runtime
    walks reproduce scikit-learn's own probabilities (fit_trees checks that itself as well)."""
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(2000, len(FEATURES)))
    contrast, fill = rows[:, FEATURES.index("contrast")], rows[:, FEATURES.index("fill")]
    labels = (contrast > 0) == (fill > 0)  # XOR-like: no line separates it
    trees = fit_trees(rows, labels)
    assert ((trees.probability(rows) >= 0.5) == labels).mean() > 0.9
    assert ((fit_logistic(rows, labels).probability(rows) >= 0.5) == labels).mean() < 0.7
    with pytest.raises(ValueError, match="both kinds"):
        fit_trees(rows, np.ones(2000, bool))


def test_object_f1_counts_each_kept_match_once() -> None:
    kept = np.array([True, True, False, True])
    ships = np.array([True, False, True, True])
    assert object_f1(kept, ships, n_truth=4) == pytest.approx(2 * 2 / (3 + 4))


def test_a_candidate_is_measured_on_the_tile_that_owns_its_centroid() -> None:
    """As the payload saw it: a vessel across a tile border is judged on the tile holding most of it."""
    burnt = np.zeros((128, 200), bool)
    burnt[60:72, 10:20] = True  # rows 60-63 in the first tile row, 64-71 in the second
    grid = tile_grid(128, 200, 64)
    assert _tile_view(burnt, grid, owned_windows(grid)) == (64, 0, 64, 64)
    burnt[:] = False
    burnt[10:14, 190:198] = True  # the short last column of a grid without overlap
    assert _tile_view(burnt, grid, owned_windows(grid)) == (0, 192, 64, 8)
    # with overlap, each tile answers for up to half-way into the shared pixels
    grid = tile_grid(128, 200, 64, overlap=16)
    burnt[:] = False
    burnt[58:62, 10:20] = True  # rows 48-111 hold it, and that tile owns rows 56-87
    assert _tile_view(burnt, grid, owned_windows(grid)) == (48, 0, 64, 64)


@pytest.mark.skipif(not SSDD.is_dir(), reason="../shared/data/ssdd is not beside the project")
@pytest.mark.slow
def test_discriminate_fits_on_train_chooses_on_val_and_never_reads_test(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "bright", size=64, threshold=0.3)
    # test names chips that do not exist: reading them would fail
    split = {"source": [f"coco:{SSDD}"], "train": [0, 1, 2, 3, 4, 5], "val": [6, 7, 8], "test": [10**6]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    record = discriminate(tmp_path / "bright", tmp_path / "split.json", tmp_path / "out", tmp_path / "work")
    bundle = read_bundle(tmp_path / "out")
    assert bundle.discriminator is not None and bundle.discriminator.cut == record["cut"]
    assert bundle.min_score == 0.0 and bundle.min_area_px == 4
    assert record["train_candidates"] > record["train_ships"] > 0
    assert record["val_f1"] == max(record["val_f1_by_cut"].values())
    assert bundle.manifest["metrics"]["discriminator"]["fitted_on"].endswith(":train")
    trees = discriminate(tmp_path / "bright", tmp_path / "split.json", tmp_path / "out-trees", tmp_path / "work-trees",
                         kind="trees")
    stage = read_bundle(tmp_path / "out-trees").discriminator
    assert trees["kind"] == "trees" and stage is not None and stage.to_manifest()["kind"] == "trees"
    with pytest.raises(ValueError, match="kind must be one of"):
        discriminate(tmp_path / "bright", tmp_path / "split.json", tmp_path / "out-x", tmp_path / "work-x", kind="forest")


@pytest.mark.skipif(not SSDD.is_dir(), reason="../shared/data/ssdd is not beside the project")
@pytest.mark.slow
def test_a_network_fitted_once_is_not_run_through_hil_again(tmp_path: Path) -> None:
    """With ``fits``: the same network on the same split and device, under another name and other
    figures (a search's flight model is its candidate renamed), reuses the fit; a network that
    detects differently, or another split, is fitted anew."""
    make_brightness_bundle(tmp_path / "bright", size=64, threshold=0.3)
    split = {"source": [f"coco:{SSDD}"], "train": [0, 1, 2, 3, 4, 5], "val": [6, 7, 8], "test": [10**6]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    fits = tmp_path / "fits"

    def fit(model: str, tag: str) -> tuple[dict, bool]:
        record = discriminate(tmp_path / model, tmp_path / "split.json", tmp_path / f"{tag}-out",
                              tmp_path / f"{tag}-work", fits=fits)
        return record, (tmp_path / f"{tag}-work" / "train").exists()  # hil ran on the training samples

    first, ran = fit("bright", "first")
    assert ran and len(list(fits.iterdir())) == 1
    bundle = read_bundle(tmp_path / "bright")
    manifest = rewritable_manifest(bundle)
    manifest.update(name="renamed", metrics={"val_f1": 0.5})
    rewrite_bundle(bundle, tmp_path / "renamed", manifest)
    again, ran = fit("renamed", "again")
    assert not ran and again == first
    shipped = read_bundle(tmp_path / "again-out")
    assert shipped.discriminator == read_bundle(tmp_path / "first-out").discriminator
    # the input's val_f1 was measured without the stage: kept, under what it was measured with
    assert shipped.name == "renamed" and shipped.manifest["metrics"]["before_second_stage"]["val_f1"] == 0.5
    # a fresh fit without the store gives the same record: reuse changes nothing but the time
    assert discriminate(tmp_path / "bright", tmp_path / "split.json", tmp_path / "plain-out",
                        tmp_path / "plain-work") == first
    manifest["output"]["threshold"] = 0.4
    rewrite_bundle(bundle, tmp_path / "other", manifest)
    assert fit("other", "other")[1]
    (tmp_path / "split.json").write_text(json.dumps({**split, "train": [0, 1, 2, 3, 4]}))
    assert fit("bright", "resplit")[1]
    assert len(list(fits.iterdir())) == 3


@pytest.mark.skipif(not SSDD.is_dir(), reason="../shared/data/ssdd is not beside the project")
@pytest.mark.slow
def test_a_search_gives_its_flight_model_the_second_stage_on_its_own_split(tmp_path: Path) -> None:
    """[export] discriminate: OUT/flight_model is replaced by the same bundle with its discriminator."""
    from search.final import add_second_stage

    make_brightness_bundle(tmp_path / "out" / "flight_model", size=64, threshold=0.3)
    (tmp_path / "out" / "data").mkdir()
    split = {"source": [f"coco:{SSDD}"], "train": [0, 1, 2, 3, 4, 5], "val": [6, 7, 8], "test": [10**6]}
    (tmp_path / "out" / "data" / "split.json").write_text(json.dumps(split))
    before = read_bundle(tmp_path / "out" / "flight_model")
    said: list[str] = []
    add_second_stage(tmp_path / "out", "myriadx-emu", "trees", said.append)
    after = read_bundle(tmp_path / "out" / "flight_model")
    assert after.discriminator is not None and before.discriminator is None
    assert after.manifest["output"]["discriminator"]["kind"] == "trees"  # the kind the config asks for
    assert after.files == before.files  # the same network, only the manifest changes
    assert not (tmp_path / "out" / "flight_model.discriminated").exists()
    assert said and said[0].startswith("second stage: validation F1")


def test_a_search_without_a_real_split_refuses_the_second_stage_before_training(tmp_path: Path) -> None:
    from search.config import load_config
    from search.evolution import run_search

    cfg = load_config()
    cfg["export"]["discriminate"] = True
    with pytest.raises(ValueError, match="discriminate needs a real \\[data\\] source"):
        run_search(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything is recorded or trained


def test_feature_ranking_auc_is_the_share_of_ship_and_non_ship_pairs_ranked_right() -> None:
    from scripts.feature_ranking import auc

    ships = np.array([True, True, False, False])
    assert auc(np.array([3.0, 4.0, 1.0, 2.0]), ships) == 1.0
    assert auc(np.array([1.0, 2.0, 3.0, 4.0]), ships) == 0.0
    assert auc(np.array([1.0, 4.0, 2.0, 3.0]), ships) == 0.5
    assert auc(np.array([5.0, 5.0, 5.0, 5.0]), ships) == 0.5  # ties count half
    with pytest.raises(ValueError, match="both kinds"):
        auc(np.ones(3), np.zeros(3, bool))


@pytest.mark.skipif(not SSDD.is_dir(), reason="../shared/data/ssdd is not beside the project")
@pytest.mark.slow
def test_a_final_training_is_judged_with_its_own_second_stage(tmp_path: Path) -> None:
    """[final] with [export] discriminate: the searched and the final bundle each get a second stage
    fitted on the split, and their validation F1 with it decides (not the cuts it replaces)."""
    from search.config import load_config
    from search.final import add_second_stage, compare_final

    split = {"source": [f"coco:{SSDD}"], "train": [0, 1, 2, 3, 4, 5], "val": [6, 7, 8], "test": [10**6]}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "split.json").write_text(json.dumps(split))
    records = {}
    for tag, threshold in (("searched", 0.3), ("final", 0.6)):
        make_brightness_bundle(tmp_path / tag, size=64, threshold=threshold)
        records[tag] = {"bundle": str(tmp_path / tag), "fitness": 0.5, "device_metrics": {"device": "myriadx-emu"}}
    cfg = load_config()
    cfg["export"]["discriminate"] = True
    compared = compare_final(records["searched"], records["final"], cfg, tmp_path)
    alone = {tag: discriminate(tmp_path / tag, tmp_path / "data" / "split.json", tmp_path / f"{tag}-2",
                               tmp_path / f"{tag}-work")["val_f1"] for tag in records}
    assert compared == {"by": "validation F1 with its own second stage", "kind": "logistic", "rows": ROWS_VERSION,
                        **alone}
    # the flight model (the final bundle renamed, with the search's figures) takes the stage the
    # comparison fitted for that network, without running it through hil again
    bundle = read_bundle(tmp_path / "final")
    manifest = rewritable_manifest(bundle)
    manifest.update(name="nas-final", metrics={"fitness": 0.5})
    rewrite_bundle(bundle, tmp_path / "flight_model", manifest)
    add_second_stage(tmp_path, "myriadx-emu", "logistic", lambda *_: None)
    assert not (tmp_path / "discriminate" / "train").exists()
    flown = read_bundle(tmp_path / "flight_model")
    assert flown.discriminator == read_bundle(tmp_path / "final" / "second_stage" / "final" / "bundle").discriminator
    assert flown.manifest["metrics"]["discriminator"]["val_f1"] == compared["final"]
    assert compare_final(records["searched"], {**records["final"], "fitness": None}, cfg, tmp_path)["final"] is None
    # a resumed search whose final training was judged without a second stage (or with another kind)
    # judges it again when [export] discriminate is now on, and trains nothing
    from search.final import _compared_as_configured, final_config, final_training

    searched = {**records["searched"], "key": "k", "name": "nas-k", "training": {"trained_under": "fp32"}}
    stale = {**records["final"], "key": "k", "name": "nas-k", "final_budget": final_config(cfg)[1],
             "compared": {"by": "validation fitness", "searched": 0.5, "final": 0.5}}
    (tmp_path / "final" / "record.json").write_text(json.dumps(stale))
    said: list[str] = []
    final_training(searched, cfg, None, tmp_path, said.append)  # type: ignore[arg-type]
    rejudged = json.loads((tmp_path / "final" / "record.json").read_text())["compared"]
    assert rejudged == compared and any("judged again" in line for line in said)
    said.clear()
    final_training(searched, cfg, None, tmp_path, said.append)  # type: ignore[arg-type]
    assert not any("judged again" in line for line in said)  # now as configured: reused
    cfg["export"]["discriminator_kind"] = "trees"
    assert not _compared_as_configured(rejudged, cfg)
    cfg["export"]["discriminate"] = False
    assert not _compared_as_configured(rejudged, cfg)


def test_vessel_iou_bounds_split_the_gap_into_rejection_and_segmentation() -> None:
    """scripts/vessel_iou_bounds.py: the oracle keeps exactly the components touching a vessel, the
    mask keeps all, and a hysteresis level grows a component only from a seed above the threshold."""
    from scripts.vessel_iou_bounds import pixel_counts

    truth = np.zeros((64, 64), bool)
    truth[10:14, 10:30] = True                 # one ship, 80 px
    prob = np.zeros((64, 64), np.float32)
    prob[10:14, 12:30] = 0.9                   # found, 8 px short
    prob[40:60, 40:60] = 0.85                  # a land blob, 400 px
    prob[2:6, 40:60] = 0.6                     # lukewarm, never above the threshold: no seed
    prob[10:14, 30:34] = 0.6                   # beyond the bow, only above the grow level
    image = np.zeros((64, 64), np.uint8)
    counts = pixel_counts(prob, truth, image, 0.8, None, 4, None)
    assert counts["oracle"] == (72, 80) and counts["mask"] == (72, 480)
    grown = pixel_counts(prob, truth, image, 0.8, 0.5, 4, None)
    assert grown["oracle"] == (72, 96)        # 16 px past the ship join it; the lukewarm blob has no seed
    assert grown["mask"] == (72, 496)
    # the ship is matched whole (72/96 at grow 0.5); cut in two, neither piece matches it
    assert grown["ships"] == (1, 1, 0, 0)
    prob[10:14, 20] = 0.0
    assert pixel_counts(prob, truth, image, 0.8, None, 4, None)["ships"] == (1, 0, 1, 80)


def test_recall_by_size_pools_each_size_of_ship_apart() -> None:
    """--by-size: a large ship half found and two small ones, one found whole, one missed."""
    from scripts.vessel_iou_bounds import recall_by_size

    truth = np.zeros((80, 80), bool)
    truth[0:40, 0:30] = True      # 1,200 px
    truth[50:55, 50:60] = True    # 50 px, found
    truth[70:75, 70:80] = True    # 50 px, missed
    mask = np.zeros_like(truth)
    mask[0:20, 0:30] = True
    mask[50:55, 50:60] = True
    mask[60:65, 0:10] = True      # clutter: not a ship's pixel
    rows = recall_by_size([mask], [truth], bins=(0, 150, 1000))
    assert rows == [(0, 2, 100, 0.5), (150, 0, 0, rows[1][3]), (1000, 1, 1200, 0.5)]
    assert np.isnan(rows[1][3])
    assert recall_by_size([mask[:0]], [truth[:0]], bins=(0,))[0][:3] == (0, 0, 0)


def test_edge_errors_sort_a_masks_errors_by_distance_from_the_true_outline() -> None:
    """--edges: a ship outlined one pixel thin on one side, a far false blob, a missed ship, and land
    cleared by a sea mask; growing a too-thin outline by a pixel raises its IoU."""
    from scripts.vessel_iou_bounds import edge_errors

    truth = np.zeros((60, 60), bool)
    truth[10:20, 10:30] = True                # 200 px, found but its top row missed
    truth[50:55, 50:55] = True                # 25 px, missed whole
    mask = np.zeros_like(truth)
    mask[11:20, 10:30] = True
    mask[30:34, 40:44] = True                 # 16 px far from any ship
    e = edge_errors([mask], [truth])
    assert e["missed_near"] == pytest.approx(20 / 225) and e["missed_whole"] == pytest.approx(25 / 225)
    assert e["missed_mid"] == e["missed_deep"] == e["extra_near"] == e["extra_mid"] == 0
    assert e["extra_far"] == pytest.approx(16 / 225)
    assert e["iou"] == pytest.approx(180 / (225 + 16))
    thin = np.zeros_like(truth)
    thin[11:19, 11:29] = True                 # the first ship a pixel thin all round
    grown = edge_errors([thin], [truth & (np.arange(60) < 40)[:, None]])
    assert grown["iou"] == pytest.approx(144 / 200) and grown["iou_grown"] == pytest.approx(196 / 200)
    # the 10 x 20 ship one pixel thinner (8 x 18) and wider (12 x 22 less its four corners)
    assert grown["truth_thinner_iou"] == pytest.approx(144 / 200) and grown["truth_wider_iou"] == pytest.approx(200 / 260)
    sea = np.ones_like(truth)
    sea[25:40, 35:50] = False                 # the far blob is on land
    assert edge_errors([mask], [truth], [sea])["extra_far"] == 0
    assert edge_errors([mask[:0]], [truth[:0]])["iou"] == 0.0
    # a chip without ships: its mask pixels are all far from any ship, wherever they lie
    corner = np.zeros_like(truth)
    corner[0, 0] = True
    alone = edge_errors([corner, mask], [np.zeros_like(truth), truth])
    assert alone["extra_near"] == 0 and alone["extra_far"] == pytest.approx(17 / 225)

"""Review: land masks (a folder, a coastline) and the fit check, on the real data beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_sen2ships = pytest.mark.skipif(not (SHARED / "sen2ships").is_dir(),
                                     reason="../shared/data/sen2ships is not beside the project")


@needs_sen2ships
def test_a_coastline_is_not_looked_up_on_a_local_metric_plane() -> None:
    """sen2ships' PNGs have no georeference: their 10 m default puts them on ``[sources] local_crs``,
    a plane whose origin is (0 N, 0 E). Their pixels are nowhere on the Earth, so there is no
    coastline to look up (as for a pixel grid); looked up all the same, Busan's harbour lies in the
    Gulf of Guinea, every pixel is "sea", and the report counts the sample as land-masked."""
    pytest.importorskip("roaring_landmask")
    from flightsim.sources import open_source
    from hil.coastline import coastline_sea_mask

    busan = open_source(f"sen2ships:{SHARED / 'sen2ships' / 'busan'}")[0]
    assert busan.crs is not None  # the local plane: lengths in metres, positions meaningless
    assert coastline_sea_mask(busan, "gshhg") is None


def _sar_bundle(tmp_path: Path) -> Path:
    """The brightness model (64 px tiles) with a SAR model's ``trained_for``."""
    from runtime.bundle import write_bundle
    from tests.conftest import make_brightness_bundle

    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    trained = {"trained_for": {"modality": "sar", "gsd_m": [0.5, 15.0], "counts": ["uint8"]}}
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"} | trained
    write_bundle(tmp_path / "sar", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    return tmp_path / "sar"


def test_the_runtime_s_unfit_tiles_are_this_run_s_on_a_runtime_already_running(tmp_path: Path) -> None:
    """``model_fit.runtime_tiles_unfit`` sits beside the rig's own warnings for this scene: on a
    runtime that served runs before (``hil run --runtime``), its counter holds their tiles too."""
    import hil
    from tests.conftest import make_brightness_bundle, serving_process

    make_brightness_bundle(tmp_path / "plain", size=64)
    sar = _sar_bundle(tmp_path)
    with serving_process("CPU", tmp_path / "plain", tmp_path / "runtime.log") as proc:
        control = proc.endpoints["control"]
        for k in range(2):  # an optical scene to a SAR model: every tile unfit, in each run
            report = hil.run("synthetic:size=128", sar, tmp_path / f"out{k}", runtime=control).report
            assert report["model_fit"]["warnings"] and report["tiles_sent"] == 4
            assert report["model_fit"]["runtime_tiles_unfit"] == report["tiles_sent"], k


needs_sar_sets = pytest.mark.skipif(not ((SHARED / "ssdd" / "images").is_dir() and (SHARED / "hrsid-mini").is_dir()),
                                    reason="../shared/data/ssdd and hrsid-mini are not beside the project")


@needs_sar_sets
def test_a_data_set_of_a_known_modality_is_named_though_another_part_is_unknown(tmp_path: Path) -> None:
    """configs/sar.toml's source list (SSDD through the ``coco`` loader, which cannot say what it
    holds, then HRSID, SAR by its format): an optical model on that split must hear that the HRSID
    tiles are SAR, from the rig and from the runtime; one part of unknown modality made the whole
    list unknown, and both stayed silent."""
    import hil
    from flightsim.sources import open_source
    from hil.fit import model_fit
    from runtime.bundle import write_bundle
    from tests.conftest import make_brightness_bundle

    optical = {"trained_for": {"modality": "optical", "gsd_m": [10.0, 10.0], "counts": ["uint8"]}}
    specs = [f"coco:{SHARED / 'ssdd' / 'images'}", f"hrsid-mini:{SHARED / 'hrsid-mini'}"]
    [warning] = model_fit(optical, open_source(specs), [], counts=["uint8"])["warnings"]
    assert "sar" in warning
    bundle = make_brightness_bundle(tmp_path / "b", size=256)
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"} | optical
    write_bundle(tmp_path / "optical", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    report = hil.run(open_source(specs, limit=1), tmp_path / "optical", tmp_path / "out", device="CPU").report
    hrsid_tiles = next(p["tiles"] for p in report["per_scene"] if p["name"].startswith("hrsid-mini/"))
    assert report["model_fit"]["warnings"] and report["model_fit"]["runtime_tiles_unfit"] == hrsid_tiles
    with pytest.raises(ValueError, match="sar"):
        hil.run(open_source(specs, limit=1), tmp_path / "optical", tmp_path / "out2", device="CPU", strict_fit=True)


def _one_chip_set(folder: Path, chip: str, name: str) -> str:
    """A COCO data set of one real SSDD chip, ``chip``, filed as ``name``.jpg (another data set's
    numbering): its image and its ships, unchanged."""
    import json
    import shutil

    coco = json.loads((SHARED / "ssdd" / "images" / "ssdd_coco.json").read_text())
    [image] = [im for im in coco["images"] if im["file_name"] == f"{chip}.jpg"]
    folder.mkdir(parents=True)
    shutil.copy(SHARED / "ssdd" / "images" / f"{chip}.jpg", folder / f"{name}.jpg")
    coco["images"] = [{**image, "file_name": f"{name}.jpg"}]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    (folder / "coco.json").write_text(json.dumps(coco))
    return f"coco:{folder}"


needs_ssdd = pytest.mark.skipif(not (SHARED / "ssdd" / "sealand").is_dir(),
                                reason="../shared/data/ssdd is not beside the project")


@needs_ssdd
def test_one_folder_of_masks_is_not_matched_by_stem_across_two_data_sets(tmp_path: Path) -> None:
    """Two COCO sets of one list both number a chip 0001 (``coco.1/0001``, ``coco.2/0001``: the
    names Concat keeps apart), and the folder of masks holds 0001.png, the first set's. Matched by
    stem alone, the second set's chip, an open-sea SSDD chip of the same size (000415), takes the
    first's coast (SSDD 000224, 37 % land): its land pixels cleared, its ships on that land dropped
    (the rig) or taught as land (the search's land head). Which chip the mask is of cannot be
    told: the rig must refuse it before a runtime starts, and so must the search's data."""
    import shutil

    import rasterio

    import hil
    from flightsim.sources import open_source
    from hil.rig import sea_mask
    from search.dataset import _prepare_source
    from tests.conftest import make_brightness_bundle

    coast = _one_chip_set(tmp_path / "a", "000224", "0001")
    open_sea = _one_chip_set(tmp_path / "b", "000415", "0001")
    masks = tmp_path / "sealand"
    masks.mkdir()
    shutil.copy(SHARED / "ssdd" / "sealand" / "000224.png", masks / "0001.png")
    source = open_source([coast, open_sea])
    assert [s.name for s in source] == ["coco.1/0001", "coco.2/0001"]
    assert (~sea_mask(source[1], masks)).mean() > 0.3  # the coast of another chip, on an open-sea chip
    with rasterio.open(SHARED / "ssdd" / "sealand" / "000415.png") as own:
        assert (own.read(1) == 255).all()  # its own mask: all sea
    make_brightness_bundle(tmp_path / "m", size=256)
    with pytest.raises(ValueError, match="0001.png"):
        hil.run(open_source([coast, open_sea]), tmp_path / "m", tmp_path / "out", device="CPU", land_masks=masks)
    cfg = {"data": {"source": [coast, open_sea], "source_roles": ["train", "val"], "split_seed": 0,
                    "test_fraction": 0.1, "val_fraction": 0.1, "min_seed": 100, "land_masks": str(masks),
                    "normalization_scale": "linear"},
           "model": {"in_channels": 3}}
    with pytest.raises(ValueError, match="0001.png"):
        _prepare_source(cfg, tmp_path / "data")


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_a_shipped_config_labels_its_models_with_the_modality_of_its_data(config: Path) -> None:
    """Every model a search writes carries ``trained_for.modality = [data] modality``; a config
    that trains on SAR (HRSID by its format, synthetic scenes with ``scene_mode = "sar"``) but
    keeps the default "optical" ships models that hil and the runtime call unfit for their own kind
    of scene (and refuse with --strict-fit), and fit for optical ones."""
    from flightsim.sources import parse_spec
    from hil.fit import MODALITY_OF_KIND
    from search.config import load_config

    cfg = load_config(config)
    data = cfg["data"]
    specs = [data["source"]] if isinstance(data["source"], str) else data["source"]
    implied = set()
    for spec in specs:
        kind, rest = parse_spec(spec)
        if kind == "synthetic":
            opts = dict(o.split("=", 1) for o in rest.split(",") if "=" in o)
            implied.add(opts.get("mode", data["scene_mode"] if spec == "synthetic" else "optical"))
        elif kind in MODALITY_OF_KIND:
            implied.add(MODALITY_OF_KIND[kind])
    assert implied <= {data["modality"]}, f"{config.name}: data is {implied}, labelled {data['modality']}"


def test_a_config_whose_modality_contradicts_its_data_is_refused() -> None:
    from search.config import check_values, load_config

    cfg = load_config()
    cfg["data"].update(source="hrsid-mini:../shared/data/hrsid-mini", modality="optical")
    with pytest.raises(ValueError, match="modality"):
        check_values(cfg)
    cfg["data"].update(source="synthetic", scene_mode="sar", modality="optical")
    with pytest.raises(ValueError, match="modality"):
        check_values(cfg)
    cfg["data"].update(modality="sar")
    check_values(cfg)

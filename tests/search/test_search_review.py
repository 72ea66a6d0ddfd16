"""Review fixes: clear CLI errors, values checked at load, data and cache guards in OUT, checks up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.__main__ import main

# -- 1. the command line: mistakes print ``error: ...`` and exit 2, no traceback ---------------------


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_cli_missing_config_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.toml")
    for argv in (["run", "--config", missing, "--out", str(tmp_path / "o")],
                 ["train-baseline", "--config", missing, "--out", str(tmp_path / "o")],
                 ["retype", "--model", str(tmp_path), "--config", missing, "--out", str(tmp_path / "o")]):
        rc, err = _cli(argv, capsys)
        assert rc == 2 and err.startswith("error: ") and "missing.toml" in err, (argv, err)
        assert "Traceback" not in err


def test_cli_unknown_config_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nepoch = 3\n")
    rc, err = _cli(["run", "--config", str(typo), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.startswith("error: ") and "epoch" in err


def test_cli_out_that_is_a_file_is_refused_before_any_work(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for command in (["run"], ["train-baseline"], ["ablate"]):
        rc, err = _cli([*command, "--out", str(afile)], capsys)
        assert rc == 2 and err.startswith("error: ") and "afile" in err, (command, err)
    assert afile.read_text() == ""


def test_cli_bad_genome_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    for genome in ('{"blocks": [oops', str(tmp_path / "nogenome.json"), '{"upsample": "nearest"}'):
        rc, err = _cli(["ablate", "--out", str(out), "--genome", genome], capsys)
        assert rc == 2 and err.startswith("error: "), (genome, err)
    assert not (out / "data").exists()


def test_cli_model_that_is_not_a_bundle_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "split.json"
    split.write_text("{}")
    rc, err = _cli(["discriminate", "--model", str(tmp_path), "--split", str(split),
                    "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.startswith("error: ")


# -- 2. values refused at load: tests/search/test_config_values.py; a config built in code -------

def test_run_search_checks_values_of_a_config_built_in_code(tmp_path: Path, tiny_cfg: dict) -> None:
    from search.evolution import run_search

    tiny_cfg["evolution"]["tournament"] = 0
    with pytest.raises(ValueError, match="tournament"):
        run_search(tiny_cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "search.json").exists()


# -- 3. a real data set that changed under a search with records is refused, not re-split ------------

def _copy_samples(src: Path, dst: Path, ids: range) -> None:
    import shutil

    for sub, ext in (("images", "jpg"), ("masks", "png")):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for i in ids:
            shutil.copy(src / sub / f"p{i}.{ext}", dst / sub / f"p{i}.{ext}")


def _five_of_six(tmp_path: Path, tiny_cfg: dict) -> Path:
    """A real set of 5 of 6 hrsid-mini samples (the sixth kept aside to add later) as the config's
    source, prepared under the returned ``out``."""
    from search.dataset import prepare_data
    from tests.search.test_real_data import _hrsid_mini

    _hrsid_mini(tmp_path / "big", 6, size=64)
    _copy_samples(tmp_path / "big", tmp_path / "set", range(5))
    tiny_cfg["data"]["source"] = f"hrsid-mini:{tmp_path / 'set'}"
    out = tmp_path / "out"
    prepare_data(tiny_cfg, out / "data")
    return out


def test_changed_data_set_under_a_search_with_records_is_refused(tmp_path: Path, tiny_cfg: dict) -> None:
    import json

    from search.dataset import prepare_data

    out = _five_of_six(tmp_path, tiny_cfg)
    split = (out / "data" / "split.json").read_text()
    prepare_data(tiny_cfg, out / "data")  # unchanged data: reused
    (out / "records").mkdir()
    (out / "records" / "abc.json").write_text(json.dumps({"key": "abc"}))
    _copy_samples(tmp_path / "big", tmp_path / "set", range(5, 6))  # the data set gains a sample
    with pytest.raises(ValueError, match=r"(?s)split\.json.*--out.*samples added.*p5"):
        prepare_data(tiny_cfg, out / "data")
    assert (out / "data" / "split.json").read_text() == split


def test_changed_data_set_before_any_record_is_split_again(tmp_path: Path, tiny_cfg: dict) -> None:
    import json

    from search.dataset import prepare_data

    out = _five_of_six(tmp_path, tiny_cfg)
    (out / "records").mkdir()  # a search that trained nothing yet
    _copy_samples(tmp_path / "big", tmp_path / "set", range(5, 6))
    prepare_data(tiny_cfg, out / "data")
    assert len(json.loads((out / "data" / "split.json").read_text())["names"]) == 6


# -- 4. the synthetic cache is keyed by every generator setting, scene_mode included ----------------

def test_synthetic_cache_regenerates_when_the_generator_settings_change(tmp_path: Path, tiny_cfg: dict) -> None:
    import numpy as np

    from flightsim.synthetic import generate_scene
    from search.dataset import prepare_data, read_split

    prepare_data(tiny_cfg, tmp_path)
    optical = read_split(tmp_path, "train")[0].image.copy()
    tiny_cfg["data"]["scene_mode"] = "sar"
    prepare_data(tiny_cfg, tmp_path)
    now = read_split(tmp_path, "train")[0]
    size = tiny_cfg["data"]["train_scene_size"]
    sar = np.asarray(generate_scene(now.seed, size=size, dtype=tiny_cfg["data"]["scene_dtype"], mode="sar").image)
    assert not np.array_equal(now.image, optical)
    np.testing.assert_array_equal(now.image, sar)
    val = read_split(tmp_path, "val")[0]
    sar_val = generate_scene(val.seed, size=tiny_cfg["data"]["val_scene_size"], dtype=tiny_cfg["data"]["scene_dtype"],
                             mode="sar")
    np.testing.assert_array_equal(val.image, np.asarray(sar_val.image))
    prepare_data(tiny_cfg, tmp_path)  # the same settings again: the cache is reused
    assert read_split(tmp_path, "train")[0].image.tobytes() == now.image.tobytes()


# -- 5. a config refused by validation does not leave its search.json behind -----------------------

def test_a_refused_config_does_not_poison_out(tmp_path: Path, tiny_cfg: dict) -> None:
    import copy

    from search.evolution import run_search
    from search.state import check_resumable

    bad = copy.deepcopy(tiny_cfg)
    bad["space"]["kinds"] = ["conv", "depthwise"]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="depthwise"):
        run_search(bad, out, progress=False)
    assert not (out / "search.json").exists()
    check_resumable(out, tiny_cfg)  # the corrected config is the search's own


# -- 6. settings every candidate would fail on after training are refused before any training -------

@pytest.mark.parametrize("table, key, value, match", [
    ("fitness", "accuracy", "iou", r"\[fitness\] accuracy 'iou'"),
    ("fitness", "latency", "p50", r"\[fitness\] latency 'p50'"),
    ("export", "threshold", 1.5, r"\[export\] threshold"),
    ("export", "threshold", 0.0, r"\[export\] threshold"),
    ("candidate", "profile", "fp16-myriad", r"\[candidate\] profile.*fp16-myriad"),
    ("candidate", "robust_profiles", ["fp32", "nope"], r"\[candidate\] robust_profiles.*nope"),
    ("export", "sea_shift", 1.0, r"sea_shift.*land gate"),
    ("export", "input_dtype", "int8", r"\[export\] input_dtype 'int8'; valid: \['float32', 'uint8', 'uint16'\]"),
])
def test_run_search_refuses_late_failures_up_front(tmp_path: Path, tiny_cfg: dict, table: str, key: str,
                                                   value: object, match: str) -> None:
    from search.evolution import run_search

    tiny_cfg[table][key] = value
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        run_search(tiny_cfg, out, progress=False)
    assert not (out / "search.json").exists() and not (out / "records").exists()


def test_an_input_type_that_cannot_hold_the_scenes_counts_is_refused_before_training(tmp_path: Path, tiny_cfg: dict,
                                                                                     tiny_config_path: Path) -> None:
    """uint16 scenes and a uint8 input: train-baseline trained, then died on its own golden tile
    (TileRejected unsupported_dtype) and left a bundle that refused every tile of its data."""
    from search.baseline import train_baseline
    from search.evolution import run_search

    tiny_cfg["data"]["scene_dtype"] = "uint16"
    tiny_cfg["export"]["input_dtype"] = "uint8"
    says = r"\[export\] input_dtype 'uint8' cannot hold the uint16 counts of \[data\] scene_dtype"
    with pytest.raises(ValueError, match=says):
        run_search(tiny_cfg, tmp_path / "out", progress=False)
    config = tmp_path / "u16.toml"
    config.write_text(tiny_config_path.read_text().replace("[data]", '[data]\nscene_dtype = "uint16"', 1))
    with pytest.raises(ValueError, match=says):
        train_baseline(tmp_path / "b", config_path=config, input_dtype="uint8", progress=False)
    assert not (tmp_path / "b").exists()


def test_run_search_refuses_a_final_recipe_that_would_fail(tmp_path: Path, tiny_cfg: dict) -> None:
    from search.evolution import run_search

    tiny_cfg["final"].update(fp32_epochs=1, export={"threshold": 2.0})
    with pytest.raises(ValueError, match=r"\[final.export\] threshold"):
        run_search(tiny_cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "records").exists()


def test_the_same_data_set_moved_under_a_search_with_records_is_prepared_again(tmp_path: Path, tiny_cfg: dict) -> None:
    """Only a change of which samples fall in which part is refused: the same files read from another
    folder (the source spec differs) split the same way, and the search goes on."""
    import json

    from search.dataset import prepare_data
    from tests.search.test_real_data import _hrsid_mini

    _hrsid_mini(tmp_path / "big", 5, size=64)
    _copy_samples(tmp_path / "big", tmp_path / "set", range(5))
    tiny_cfg["data"]["source"] = f"hrsid-mini:{tmp_path / 'set'}"
    out = tmp_path / "out"
    before = prepare_data(tiny_cfg, out / "data")
    (out / "records").mkdir()
    (out / "records" / "abc.json").write_text(json.dumps({"key": "abc"}))
    (tmp_path / "set").rename(tmp_path / "moved")
    tiny_cfg["data"]["source"] = f"hrsid-mini:{tmp_path / 'moved'}"
    after = prepare_data(tiny_cfg, out / "data")
    assert (after.train_seeds, after.val_seeds) == (before.train_seeds, before.val_seeds)
    assert json.loads((out / "data" / "split.json").read_text())["source"].endswith("moved")


@pytest.mark.parametrize("table,key,value,instead", [
    ("train", "epochs", "60", r"\[final\] fp32_epochs"),
    ("train", "seed", "3", r"\[evolution\] seed"),
    ("export", "discriminate", "true", r"\[export\] discriminate"),
])
def test_a_final_setting_the_final_training_does_not_read_is_refused(tmp_path: Path, table: str, key: str,
                                                                       value: str, instead: str) -> None:
    from search.config import load_config

    path = tmp_path / "f.toml"
    path.write_text(f"[final.{table}]\n{key} = {value}\n")
    with pytest.raises(ValueError, match=rf"\[final\.{table}\] {key} has no effect.*{instead}"):
        load_config(path)

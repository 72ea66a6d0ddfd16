"""Values of a search TOML that TOML accepts and the search would only fail on (or silently mistrain
with) after candidates had trained, refused when the config is loaded (:func:`search.config.check_values`),
and the command-line arguments of ``search run``, ``ablate`` and ``discriminate`` that gave a
traceback or a misleading message."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from search.__main__ import main
from search.config import load_config
from search.evolution import check_up_front

MODELS = Path(__file__).parents[2] / "models"


@pytest.mark.parametrize("toml,says", [
    # counts and rates
    ("[evolution]\ntournament = 0", r"\[evolution\] tournament must be an integer >= 1; got 0"),
    ("[evolution]\npopulation = 0", r"\[evolution\] population"),
    ("[evolution]\ngenerations = 0", r"\[evolution\] generations"),
    ("[evolution]\nelite = -1", r"\[evolution\] elite"),
    ("[evolution]\npopulation = 4\nelite = 5", r"\[evolution\] elite"),
    ("[evolution]\ncrossover_rate = 1.5", r"\[evolution\] crossover_rate"),
    ("[evolution]\nmutation_rate = -0.1", r"\[evolution\] mutation_rate"),
    ("[candidate]\nfp32_epochs = 0", r"\[candidate\] fp32_epochs"),
    ("[candidate]\naligned_epochs = -1", r"\[candidate\] aligned_epochs"),
    ("[train]\nepochs = 0", r"\[train\] epochs"),
    ("[train]\nsteps_per_epoch = 0", r"\[train\] steps_per_epoch"),
    ("[train]\nbatch = 0", r"\[train\] batch"),
    ("[train]\npatch = 0", r"\[train\] patch"),
    ("[train]\nbatch = 2.5", r"\[train\] batch"),
    ("[export]\ntile = 0", r"\[export\] tile"),
    ("[final]\nfp32_epochs = -5", r"\[final\] fp32_epochs"),
    ("[final]\nfp32_epochs = 3\n[final.train]\nsteps_per_epoch = 0", r"\[final.train\] steps_per_epoch"),
    # number settings: wrong type, or out of range
    ("[train]\nlr = -0.001", r"\[train\] lr must be a finite number > 0; got -0.001"),
    ("[train]\nlr = '3e-3'", r"\[train\] lr must be a finite number > 0; got '3e-3'"),
    ("[candidate]\naligned_lr_scale = -1.0", r"\[candidate\] aligned_lr_scale must be a finite number > 0"),
    ("[fitness]\nlatency_target_ms = 0.0", r"\[fitness\] latency_target_ms must be a finite number > 0"),
    ("[fitness]\nlatency_weight = -1.0", r"\[fitness\] latency_weight must be a finite number >= 0"),
    ("[data]\nval_fraction = 0.0", r"\[data\] val_fraction must be > 0 where a data set is split \(source_roles \['split'\]\); got 0"),
    ("[export]\nsea_shift = nan", r"\[export\] sea_shift must be a finite number; got nan"),
    ("[space]\nmax_blocks = 2.7", r"\[space\] max_blocks must be an integer >= 1; got 2.7"),
    ("[data]\nval_fraction = 1.5", r"\[data\] val_fraction must be a number in \[0, 1\]; got 1.5"),
    ("[data]\ntest_fraction = -0.1", r"\[data\] test_fraction must be a number in \[0, 1\]; got -0.1"),
    ("[data]\ngsd_m = 3.0", r"\[data\] gsd_m must be \[lo, hi\]: two positive finite metres per pixel"),
    ("[data]\nsource_weights = [1.0, -1.0]", r"\[data\] source_weights\[1\] must be a finite number >= 0"),
    ("[data]\nsource_weights = [0.0, 0.0]", r"\[data\] source_weights must not all be 0"),
    # lists: a string where a list is meant was read character by character
    ("[train]\naugment = 'flip'", r"\[train\] augment must be a list \(e.g. \['flip'\]\); got 'flip'"),
    ("[candidate]\nrobust_profiles = 'fp16-myriadx'", r"\[candidate\] robust_profiles must be a list"),
    # the post-processing choices, checked before training rather than after each candidate's
    ("[export]\nthresholds = []", r"\[export\] thresholds must not be empty"),
    ("[export]\nthresholds = [0.5, 1.0]", r"\[export\] thresholds\[1\] must be a number in \(0, 1\); got 1.0"),
    ("[export]\nmin_areas_px = []", r"\[export\] min_areas_px must not be empty"),
    ("[export]\nmin_scores = [0.0, 1.0]", r"\[export\] min_scores\[1\] must be a number in \[0, 1\); got 1.0"),
    ("[export]\nmin_scores = [1.5]", r"\[export\] min_scores\[0\] must be a number in \[0, 1\); got 1.5"),
    # the final recipe's own tables, named as such: a bad one failed only after the search, exit 0
    ("[final]\nfp32_epochs = 1\n[final.export]\nmin_scores = [1.5]", r"\[final.export\] min_scores\[0\]"),
    ("[final]\nfp32_epochs = 1\n[final.train]\nlr = 'x'", r"\[final.train\] lr must be a finite number > 0"),
    # a land loss without masks was silently left out
    ("[train]\nland_weight = 1.0", r"\[train\] land_weight = 1.0 needs \[data\] land_masks"),
    # names and switches of the wrong type: a TypeError deep in the search, or "no" taken for true
    ("[space]\nwidths = 8", r"\[space\] widths must be a list \(e.g. \[8\]\); got 8"),
    ("[space]\nkinds = 'conv'", r"\[space\] kinds must be a list"),
    ("[space]\nmax_parameters = -1", r"\[space\] max_parameters must be an integer >= 1; got -1"),
    ("[model]\nwidths = [16, -1]", r"\[model\] widths\[1\] must be an integer >= 1; got -1"),
    ("[candidate]\nhil_device = 3", r"\[candidate\] hil_device must be a string; got 3"),
    ("[export]\ndiscriminate = 'no'", r"\[export\] discriminate must be true or false; got 'no'"),
    ("[data]\nsource = []", r"\[data\] source must be \"synthetic\", a data set as KIND:PATH, or a non-empty list"),
    ("[data]\ntrain_scenes = 0", r"\[data\] train_scenes must be an integer >= 1; got 0"),
    # a manifest naming one band of a three-channel input: the runtime matches tiles' bands by these names
    ("[export]\nbands = ['red']", r"\[export\] bands names 1 bands \(\['red'\]\) but \[model\] in_channels is 3"),
    ("[final]\nfp32_epochs = 1\n[final.export]\nbands = ['hh', 'hv']", r"\[final.export\] bands names 2 bands"),
])
def test_a_value_the_search_would_fail_on_later_is_refused_when_loaded(tmp_path: Path, toml: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ValueError, match=says):
        load_config(path)


@pytest.mark.parametrize("toml,says", [
    ("[train]\nland_gate = 'x'", r"\[train\] land_gate 'x'; valid: \['none', 'local'"),
    ("[final]\nfp32_epochs = 1\n[final.train]\ngate_loss = 'x'", r"\[final.train\] gate_loss 'x'; valid: \['vessel', 'flown'\]"),
    ("[data]\nnormalization_scale = 'sqrt'", r"\[data\] normalization_scale 'sqrt'; valid: \['linear', 'log'\]"),
    ("[data]\nscene_mode = 'x'", r"\[data\] scene_mode 'x'; valid: \['optical', 'sar'\]"),
    ("[data]\nscene_dtype = 'int8'", r"\[data\] scene_dtype 'int8'; valid: \['uint8', 'uint16'\]"),
])
def test_a_choice_the_search_would_fail_on_later_is_refused_before_training(tmp_path: Path, toml: str,
                                                                            says: str) -> None:
    """Choices whose valid values live with the code that applies them (the final recipe's gate
    was read only when the final training began, after the whole search)."""
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ValueError, match=says):
        check_up_front(load_config(path))


def test_values_at_the_edges_of_their_ranges_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "edges.toml"
    path.write_text("[data]\ntest_fraction = 0.0\nval_fraction = 1.0\n[export]\nmin_areas_px = [0]\nmin_scores = [0.0]\n"
                    "sea_shift = -2.0\n[fitness]\nlatency_weight = 0.0\n"
                    # the values that mean "skip": no aligned epochs, no final training, no elite
                    "[candidate]\naligned_epochs = 0\n[final]\nfp32_epochs = 0\n[evolution]\nelite = 0\n"
                    "population = 2\ncrossover_rate = 0.0\nmutation_rate = 1.0\n")
    cfg = load_config(path)
    assert cfg["export"]["min_areas_px"] == [0] and cfg["export"]["sea_shift"] == -2.0
    assert cfg["candidate"]["aligned_epochs"] == 0 and cfg["evolution"]["elite"] == 0
    # no set split: a whole set validates, and val_fraction is not read
    path.write_text('[data]\nsource = ["hrsid-mini:a", "hrsid-official:b"]\nsource_roles = ["train", "val"]\n'
                    'val_fraction = 0.0\nmodality = "sar"\n')
    assert load_config(path)["data"]["val_fraction"] == 0.0


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_a_ray_address_without_ray_is_one_error_line_before_any_data(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _exit(["run", "--out", str(tmp_path / "s"), "--ray-address", "localhost:6379", "--quiet"], capsys)
    assert rc == 2 and err.startswith("error: [run] ray_address (--ray-address) 'localhost:6379' needs Ray")
    assert not (tmp_path / "s" / "data").exists()  # refused before the data was prepared


@pytest.mark.parametrize("genome,says", [
    ("[1, 2, 3]", "--genome: expected a JSON object (a genome or a manifest holding one); got list"),
    ('{"blocks": []}', "no blocks; a network needs at least one"),
    ("no-such-genome.json", "--genome no-such-genome.json: no such file"),
])
def test_ablate_names_what_is_wrong_with_the_genome(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     genome: str, says: str) -> None:
    rc, err = _exit(["ablate", "--out", str(tmp_path / "a"), "--genome", genome, "--quiet"], capsys)
    assert rc == 2 and says in err


def test_ablate_reads_the_genome_of_a_bundle_folder() -> None:
    from search.ablate import parse_genome

    genome = parse_genome(str(MODELS / "sar"), load_config())
    assert genome.to_dict() == parse_genome(str(MODELS / "sar" / "manifest.json"), load_config()).to_dict()
    assert genome.blocks


def test_discriminate_refuses_a_role_and_an_unknown_device_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "split.json"
    split.write_text("{}")
    base = ["discriminate", "--model", str(MODELS / "sar"), "--out", str(tmp_path / "o")]
    rc, err = _exit([*base, "--split", f"{split}:val"], capsys)
    assert rc == 2 and f"give the split file itself ({split})" in err and "not one role ('val')" in err
    rc, err = _exit([*base, "--split", str(tmp_path / "missing.json")], capsys)
    assert rc == 2 and "no such split file" in err
    rc, err = _exit([*base, "--split", str(split), "--device", "GPU7"], capsys)
    assert rc == 2 and err.startswith("error: --device: ") and "valid" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("toml,says", [
    ("[candidate]\nhil_device = 'GPU7'", "error: [candidate] hil_device: "),
    ("[candidate]\nprofile = 'fp16-myriad'", "error: [candidate] profile: unknown target profile 'fp16-myriad'"),
    ("[export]\nthreshold = 1.5", "error: [export] threshold must be a probability in (0, 1); got 1.5"),
])
def test_ablate_refuses_what_its_branches_would_fail_on_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, says: str) -> None:
    """The ablation trained every branch, then died on the hil run's device (a traceback), or on a
    misspelt profile after the shared FP32 training."""
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    rc, err = _exit(["ablate", "--out", str(tmp_path / "a"), "--config", str(path), "--quiet"], capsys)
    assert rc == 2 and err.startswith(says)
    assert not (tmp_path / "a" / "data").exists()  # before the data was prepared

"""runtime.bundle: the manifest writer (what it writes reads back the same, number lists stay on one
line), the manifest schema (``trained_for`` and the golden table refused when malformed, at load,
not on the first tile), and the store (a re-installed bundle keeps what it was last given)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime import config
from runtime.bundle import (SIGNATURE_FILE, BundleError, manifest_json, read_bundle, rewritable_manifest,
                            rewrite_bundle)
from runtime.compiled import compile_bundle
from runtime.discriminate import TreeDiscriminator
from runtime.golden import with_golden
from runtime.server import Runtime, Settings
from runtime.store import BundleStore
from runtime.signing import make_signing_keys, sign_bundle_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", [
    {}, [], {"a": []}, {"a": {}}, [[1, 2], {"b": 1}], {"z": 1, "a": [1.5, "x", None, True]}, "\u00e9",
    {"genome": {"blocks": [{"kind": "dwsep", "width": 12}], "upsampling": "nearest"}, "n": 0.1 + 0.2},
])
def test_manifest_json_reads_back_as_written(value: object) -> None:
    assert json.loads(manifest_json(value)) == value


def test_manifest_json_keeps_number_lists_on_one_line_and_tables_indented() -> None:
    text = manifest_json({"trees": [{"value": [0.1, -2.5e-7, 3.0], "left": [1, -1, -1]}], "b": {"c": 1}})
    assert text.splitlines() == [
        "{",
        '  "b": {',
        '    "c": 1',
        "  },",
        '  "trees": [',
        "    {",
        '      "left": [1, -1, -1],',
        '      "value": [0.1, -2.5e-07, 3.0]',
        "    }",
        "  ]",
        "}",
    ]


def test_a_trees_bundle_reads_back_exactly_and_smaller_than_one_number_per_line(tmp_path: Path) -> None:
    """A second stage of boosted trees in a manifest: the bundle written reads back with the same
    trees (every float exact), and its manifest is far smaller than one number per line."""
    rng = np.random.default_rng(0)
    n = 61  # nodes of one tree of 31 leaves
    inner = np.arange(n) < 30
    tree = {"feature": np.where(inner, rng.integers(0, 2, n), 0), "threshold": np.where(inner, rng.normal(size=n), 0.0),
            "left": np.where(inner, 2 * np.arange(n) + 1, -1), "right": np.where(inner, 2 * np.arange(n) + 2, -1),
            "value": np.where(inner, 0.0, rng.normal(size=n) / 10)}
    stage = TreeDiscriminator(("score", "log_area"), -1.25, (tree,) * 50, 0.4)
    bundle = read_bundle(ROOT / "models" / "default")
    manifest = rewritable_manifest(bundle)
    manifest["output"]["discriminator"] = stage.to_manifest()
    written = rewrite_bundle(bundle, tmp_path, manifest)
    again = read_bundle(tmp_path)
    assert again.id == written.id
    assert again.discriminator is not None and again.discriminator.to_manifest() == stage.to_manifest()
    one_per_line = len(json.dumps(json.loads(written.manifest_bytes), indent=2, sort_keys=True))
    assert len(written.manifest_bytes) < one_per_line / 2


@pytest.mark.parametrize(("trained_for", "says"), [
    ({"modality": "sar"}, "gsd_m"),
    ("sar", "object"),
    ({}, "modality"),
    ({"modality": "lidar", "gsd_m": [1.0, 3.0]}, r"\['optical', 'sar'\]"),
    ({"modality": "sar", "gsd_m": 3}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [1, "x"]}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [3.0, 1.0]}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [0.0, 1.0]}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [1.0, float("inf")]}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [True, 3.0]}, "gsd_m"),
    ({"modality": "optical", "gsd_m": [1.0, 3.0], "counts": "float32"}, r"\['uint8', 'uint16'\]"),
    ({"modality": "optical", "gsd_m": [1.0, 3.0], "counts": ["uint8", 8]}, "counts"),
    ({"modality": "optical", "gsd_m": [1.0, 3.0], "counts": []}, "counts"),
    ({"modality": "optical", "gsd_m": [1.0, 3.0], "count": ["uint8"]}, r"valid: \['counts', 'data', 'gsd_m', 'modality'\]"),
])
def test_a_malformed_trained_for_is_refused_when_the_bundle_is_read(tmp_path: Path, brightness_bundle: Path,
                                                                   trained_for: object, says: str) -> None:
    """What the runtime checks every tile against is checked when the bundle is read or uplinked:
    a bad one used to load and then fail every tile (internal_error, or bad_header)."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["trained_for"] = trained_for
    with pytest.raises(BundleError, match=f"trained_for.*{says}"):
        rewrite_bundle(bundle, tmp_path / "m", manifest)
    # and a bundle written by something else is refused when it is read
    (tmp_path / "m").mkdir(exist_ok=True)
    good = rewrite_bundle(bundle, tmp_path / "m", rewritable_manifest(bundle))
    raw = json.loads(good.manifest_bytes)
    raw["trained_for"] = trained_for
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=f"trained_for.*{says}"):
        read_bundle(tmp_path / "m")


@pytest.mark.parametrize("trained_for", [
    {"modality": "sar", "gsd_m": [0.5, 15.0]},
    {"modality": "optical", "gsd_m": [3, 3], "counts": "uint16", "data": "synthetic"},
    {"modality": "sar", "gsd_m": [0.5, 1.0], "counts": ["uint8", "uint16"], "data": ["coco:x", "hrsid:y"]},
])
def test_a_well_formed_trained_for_is_taken(tmp_path: Path, brightness_bundle: Path, trained_for: dict) -> None:
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["trained_for"] = trained_for
    rewrite_bundle(bundle, tmp_path / "m", manifest)
    assert read_bundle(tmp_path / "m").manifest["trained_for"] == trained_for


@pytest.mark.parametrize(("change", "says"), [
    ({"max_mean_abs": None}, "golden.max_mean_abs"),
    ({"min_mask_iou": None}, "golden.min_mask_iou"),
    ({"max_mean_abs": -0.1}, "golden.max_mean_abs"),
    ({"max_mean_abs": "0.02"}, "golden.max_mean_abs"),
    ({"min_mask_iou": 1.5}, "golden.min_mask_iou"),
    ({"dtype": "float32"}, r"golden.dtype.*\['uint8', 'uint16'\]"),
])
def test_a_golden_table_without_valid_tolerances_is_refused_saying_which(tmp_path: Path, brightness_bundle: Path,
                                                                        change: dict, says: str) -> None:
    """The tolerances the golden tile is judged by: a table without one was refused on uplink with a
    bare KeyError ("model refused: 'max_mean_abs'")."""
    golden = with_golden(brightness_bundle, np.full((3, 64, 64), 200, np.uint8), tmp_path / "g")
    manifest = rewritable_manifest(golden)
    for key, value in change.items():
        if value is None:
            del manifest["golden"][key]
        else:
            manifest["golden"][key] = value
    with pytest.raises(BundleError, match=says):
        rewrite_bundle(golden, tmp_path / "bad", manifest)
    raw = json.loads(golden.manifest_bytes)  # a manifest written by something else: refused when read
    raw["golden"] = manifest["golden"]
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=says):
        read_bundle(tmp_path / "g")


def test_a_bundle_installed_again_keeps_its_new_compiled_blobs(tmp_path: Path, brightness_bundle: Path) -> None:
    """The same model uplinked again with a blob compiled since: the store holds the blob (it used to
    keep the first install's folder as it was), and what it held before stays."""
    store = BundleStore(tmp_path / "store")
    bundle = read_bundle(brightness_bundle)
    store.install(bundle)
    store.install(compile_bundle(bundle, "CPU"))
    stored = read_bundle(store.current_path())  # type: ignore[arg-type]
    assert stored.id == bundle.id and set(stored.compiled) == {"CPU"}
    store.install(bundle)  # given again without it: the blob is still an accelerator of this IR
    assert set(read_bundle(store.current_path()).compiled) == {"CPU"}  # type: ignore[arg-type]


def test_a_model_re_signed_with_a_rotated_key_is_served_after_a_restart(tmp_path: Path, brightness_bundle: Path,
                                                                       ipc_endpoints: dict[str, str]) -> None:
    """Key rotation: the ground re-signs the serving model with its new key and uplinks it to a
    payload that now checks that key. The store must keep the new signature, or the next start
    (no --model) refuses the stored bundle and the runtime does not come up."""
    old_key, old_public = make_signing_keys(tmp_path / "k1")
    new_key, new_public = make_signing_keys(tmp_path / "k2")
    signed = {"old": tmp_path / "old", "new": tmp_path / "new"}
    # one rewrite, copied: two would stamp their own creation times (a second apart now and then:
    # a flaky test), and the point is one bundle under two signatures
    rewrite_bundle(read_bundle(brightness_bundle), signed["old"], rewritable_manifest(read_bundle(brightness_bundle)))
    shutil.copytree(signed["old"], signed["new"])
    for name, key in (("old", old_key), ("new", new_key)):
        sign_bundle_dir(signed[name], key)
    assert read_bundle(signed["old"]).id == read_bundle(signed["new"]).id  # the signature is not the bundle's id

    def start(public: Path, model: Path | None = None) -> Runtime:
        return Runtime(Settings.from_config(config.defaults(), device="CPU", store=str(tmp_path / "store"),
                                            uplink_public_key=str(public), **ipc_endpoints), model=model)

    start(old_public, signed["old"]).close()
    start(new_public, signed["new"]).close()
    stored = Path(tmp_path / "store" / "current" / SIGNATURE_FILE).read_bytes()
    assert stored == (signed["new"] / SIGNATURE_FILE).read_bytes()
    runtime = start(new_public)  # refused the stored bundle before ("signed by another key")
    try:
        assert runtime.serving is not None and runtime.serving.bundle.id == read_bundle(signed["new"]).id
    finally:
        runtime.close()


@pytest.mark.parametrize(("change", "says"), [
    ({"std": [float("nan"), 1.0, 1.0]}, "std must list one finite number"),
    ({"std": [float("inf"), 1.0, 1.0]}, "std must list one finite number"),
    ({"std": [-50.0, 1.0, 1.0]}, "std must be > 0"),
    ({"std": [None, 1.0, 1.0]}, "std must list one finite number"),
    ({"mean": ["a", 0.0, 0.0]}, "mean must list one finite number"),
    ({"mean": [True, 0.0, 0.0]}, "mean must list one finite number"),
    ({"pad": [0.0, float("nan"), 0.0]}, "pad must list one finite number"),
])
def test_host_normalisation_values_are_finite_numbers_and_every_std_positive(tmp_path: Path, brightness_bundle: Path,
                                                                           change: dict, says: str) -> None:
    """A NaN, infinite or negative std loaded and fed the model NaN, zeros or sign-flipped input
    without a word; a None std raised a TypeError out of the check itself."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    assert manifest["input"]["normalization"]["where"] == "host"
    manifest["input"]["normalization"].update(change)
    with pytest.raises(BundleError, match=f"input.normalization.{says}"):
        rewrite_bundle(bundle, tmp_path / "m", manifest)


@pytest.mark.parametrize(("pad", "says"), [([-1, 0, 0], "whole uint8 counts"), ([300, 0, 0], "whole uint8 counts"),
                                           ([3.7, 0, 0], "whole uint8 counts"), ([0, 0], "one finite number per band")])
def test_an_integer_input_pads_with_counts_its_type_holds(tmp_path: Path, pad: list, says: str) -> None:
    """An edge tile's margin is filled with ``pad`` in the input type: 300 for uint8 failed only
    when the model was loaded (OverflowError), 3.7 was silently cut to 3."""
    from search.input_types import retype_bundle

    retyped = retype_bundle(Path(__file__).resolve().parents[2] / "models" / "default", tmp_path / "u8", "uint8")
    manifest = rewritable_manifest(retyped)
    manifest["input"]["normalization"]["pad"] = pad
    with pytest.raises(BundleError, match=says):
        rewrite_bundle(retyped, tmp_path / "m", manifest)


def test_an_integer_input_must_hold_the_counts_the_model_was_trained_for(tmp_path: Path) -> None:
    """A uint8 model of a network trained on uint16 counts (or with a uint16 golden tile) refused
    every tile of its own data, its golden tile first; it is refused when written or read."""
    from search.input_types import retype_bundle

    retyped = retype_bundle(Path(__file__).resolve().parents[2] / "models" / "default", tmp_path / "u8", "uint8")
    manifest = rewritable_manifest(retyped)
    manifest["trained_for"] = {"modality": "optical", "gsd_m": [3.0, 3.0], "counts": ["uint8", "uint16"]}
    with pytest.raises(BundleError, match=r"'uint8' cannot hold the uint16 counts of trained_for.counts; "
                                          r"valid for them: \['float32', 'uint16'\]"):
        rewrite_bundle(retyped, tmp_path / "m", manifest)
    golden = with_golden(tmp_path / "u8", np.full((3, 256, 256), 30, np.uint8), tmp_path / "u8g",
                         require_vessels=False)  # the tile's type is under test, not its vessels
    manifest = rewritable_manifest(golden)
    manifest["golden"]["dtype"] = "uint16"
    with pytest.raises(BundleError, match="uint16 counts of golden.dtype"):
        rewrite_bundle(golden, tmp_path / "m", manifest)
    with_u16_golden = with_golden(Path(__file__).resolve().parents[2] / "models" / "default",
                                  np.full((3, 256, 256), 300, np.uint16), tmp_path / "g16", require_vessels=False)
    with pytest.raises(BundleError, match="uint16 counts of golden.dtype"):
        retype_bundle(with_u16_golden, tmp_path / "g8", "uint8")


def test_a_bundle_written_over_another_drops_its_stale_blobs_and_signature(tmp_path: Path, brightness_bundle: Path) -> None:
    """A retype into a folder holding another IR's compiled blob printed "wrote" and left a bundle
    that read_bundle refused ("compiled from another IR"); a signature of the old manifest stayed too.
    A blob of the same IR stays: it still accelerates this model."""
    from runtime.bundle import write_compiled
    from search.input_types import retype_bundle

    private, _ = make_signing_keys(tmp_path / "keys")
    out = tmp_path / "out"
    bundle = read_bundle(brightness_bundle)
    rewrite_bundle(bundle, out, rewritable_manifest(bundle))
    write_compiled(out, compile_bundle(read_bundle(out), "CPU"))
    sign_bundle_dir(out, private)
    manifest = rewritable_manifest(read_bundle(out))
    manifest["name"] = "renamed"
    rewrite_bundle(read_bundle(out), out, manifest)  # the same IR: its blob is kept, the signature is not
    again = read_bundle(out)
    assert set(again.compiled) == {"CPU"} and again.signature is None and not (out / SIGNATURE_FILE).exists()
    retype_bundle(Path(__file__).resolve().parents[2] / "models" / "default", out, "uint8")
    assert read_bundle(out).compiled == {} and not list((out / "compiled").glob("*"))


@pytest.mark.parametrize("key", ["mean", "std"])
@pytest.mark.parametrize("where", ["ir", "host"])
def test_a_null_normalisation_value_is_absent_or_refused_never_a_type_error(tmp_path: Path, brightness_bundle: Path,
                                                                            key: str, where: str) -> None:
    """A null ``std`` raised a TypeError out of the check (``v <= 0`` over None). Null is "not
    recorded", as an absent key: allowed where the IR normalises, a BundleError where the host must."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["input"]["normalization"].update({"where": where, key: None})
    if where == "ir":
        assert rewrite_bundle(bundle, tmp_path / "m", manifest).manifest["input"]["normalization"][key] is None
    else:
        with pytest.raises(BundleError, match=f"input.normalization.{key} must list one finite number per band"):
            rewrite_bundle(bundle, tmp_path / "m", manifest)


@pytest.mark.parametrize("bands", [["red"], ["red", "green", "blue", "nir"], "rgb", ["red", "", "blue"], ["r", 2, "b"]])
def test_input_bands_name_each_channel_of_the_input(tmp_path: Path, brightness_bundle: Path, bands: object) -> None:
    """The runtime matches a tile's bands to ``input.bands`` by name and feeds them in that order: a
    list of another length than the input's channels was loaded, and a tile naming three bands then
    fitted no model band or one."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    assert manifest["input"]["shape"][1] == 3
    manifest["input"]["bands"] = bands
    with pytest.raises(BundleError, match=r"input.bands must name each of the input's 3 bands"):
        rewrite_bundle(bundle, tmp_path / "m", manifest)

"""runtime.bundle's manifest writer: what it writes reads back the same, and number lists stay on one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import manifest_json, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.discriminate import TreeDiscriminator

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

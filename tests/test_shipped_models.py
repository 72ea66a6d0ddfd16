"""Every flight model the project ships (models/*) is a bundle the payload would accept: its files
match their checksums, the IR passes the Myriad X target check, it says what it was trained for,
and on the Myriad X twin it passes the runtime's acceptance test (its golden tile reproduced: every
model but the demo's ``models/default``, which has none, must carry one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.acceptance import acceptance_test
from runtime.bundle import read_bundle
from runtime.check import check_bundle_dir
from runtime.device import open_device
from runtime.fit import MODALITIES, manifest_trained_for
from runtime.golden import check_golden

SHIPPED = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "models").glob("*/manifest.json"))


def test_the_project_ships_its_models() -> None:
    assert {p.name for p in SHIPPED} >= {"default", "sar", "optical"}


@pytest.mark.parametrize("bundle_dir", SHIPPED, ids=[p.name for p in SHIPPED])
def test_a_shipped_model_is_accepted_on_the_twin(bundle_dir: Path) -> None:
    bundle = read_bundle(bundle_dir)  # verifies every file against the manifest's sha256
    errors = [f for f in check_bundle_dir(bundle_dir, "MYRIAD") if f.severity == "error"]
    assert not errors, errors
    trained = bundle.manifest.get("trained_for")
    assert trained and trained["modality"] in MODALITIES and trained["gsd_m"][0] <= trained["gsd_m"][1]
    if "golden" in bundle.manifest:  # the count type the rig and the runtime check scenes against
        assert manifest_trained_for(bundle.manifest)["counts"] in (["uint8"], ["uint16"], "uint8", "uint16")
    adapter = open_device(bundle, "myriadx-emu", lambda *_: None)
    preprocess = acceptance_test(bundle, adapter)  # raises BundleError when the golden tile does not reproduce
    if bundle_dir.name != "default":  # acceptance passes a bundle without a golden tile: require one
        assert check_golden(bundle, adapter, preprocess) is not None, f"{bundle_dir} has no golden tile"

"""``hil run --land-masks gshhg`` on images with no place on the Earth (a chip set placed by --gsd
alone) masked nothing and said nothing on the terminal: the summary read as a land-masked run. The
summary now says what the masks did, and warns when they masked no image."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def test_land_masks_that_mask_no_image_are_warned_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an image without a georeference: a coastline has nowhere to look it up
    import numpy as np
    from PIL import Image

    pytest.importorskip("roaring_landmask")
    img = np.zeros((256, 256, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "chip.png")
    assert main(["run", "--scene", str(tmp_path / "chip.png"), "--gsd", "3", "--model", str(REPO / "models/default"),
                 "--device", "CPU", "--land-masks", "gshhg", "--quiet", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "land masks gshhg: 0 of 1 image(s) masked, 0 detection(s) dropped" in out
    assert "warning: --land-masks gshhg masked no image" in out


def test_the_images_own_folder_given_as_land_masks_is_refused(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of PNG chips given as --land-masks matched each chip to itself: every pixel brighter
    than 0 was called sea, and the run read as a land-masked one."""
    import numpy as np
    from PIL import Image

    img = np.full((64, 64, 3), 40, np.uint8)
    Image.fromarray(img).save(tmp_path / "chip.png")
    assert main(["run", "--scene", str(tmp_path / "chip.png"), "--model", str(REPO / "models/default"),
                 "--device", "CPU", "--land-masks", str(tmp_path), "--quiet", "--report", str(tmp_path / "r")]) == 2
    assert "is the image itself" in capsys.readouterr().err

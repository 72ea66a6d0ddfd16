"""Reviewed defect of flightsim/sources/__init__.py and base.py: ``hil run --scene DIR`` for a data set
folder that exists (SSDD's ``images/``, the ``coco:`` prefix forgotten) was answered "no such file", and
``flightsim stream --scene DIR`` "no such image file", which send the user looking for a missing path.
``hil run`` now says the folder is a data set's and needs its KIND, and the image reader that the
folder is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightsim.sources import Georef, open_source
from flightsim.sources.base import read_image


def test_a_folder_without_its_kind_is_named_a_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"is a folder, not an image file: a data set needs its KIND, e.g. "
                                         r"coco:.*images; KIND one of \['airbus', 'coco'"):
        open_source(str(tmp_path / "images"))


def test_a_missing_path_is_still_no_such_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no such file; give a GeoTIFF path"):
        open_source(str(tmp_path / "nothing.tif"))


def test_the_image_reader_names_a_folder_a_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"images: a folder, not an image file"):
        read_image(tmp_path / "images", Georef())
    with pytest.raises(ValueError, match=r"missing.tif: no such image file"):
        read_image(tmp_path / "missing.tif", Georef())

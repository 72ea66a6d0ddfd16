"""The HRSC2016 layout: images, one XML per image with rotated boxes, and segmentation masks.

``AllImages/<id>.bmp`` (or any extension GDAL reads), ``Annotations/<id>.xml`` (``HRSC_Image`` with
``HRSC_Objects/HRSC_Object`` holding ``mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang``: centre, sides
in pixels and angle in radians), and, for part of the images, ``Segmentations/<id>.png`` whose
nonzero pixels are ships. The vessels are the rotated boxes; the mask is the segmentation where it
exists, else the rasterized boxes (the note says which). ``Img_Resolution`` (metres per pixel),
when the XML has it and neither the user (``--gsd``) nor the image's own georeference gives the gsd,
is the image's: with no CRS either, on a local metric plane.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon

from flightsim.sources.base import Georef, Sample, Source, _open, read_image, with_truth_from_pixels

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff")


def rotated_box(cx: float, cy: float, w: float, h: float, angle_rad: float) -> Polygon:
    """The rectangle of sides ``w`` (along ``angle_rad`` from the +x/column axis) and ``h``, in pixels."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return Polygon([(cx + dx * c - dy * s, cy + dx * s + dy * c) for dx, dy in corners])


def parse_hrsc_xml(path: Path) -> tuple[list[Polygon], dict[str, str]]:
    """The rotated boxes of an HRSC2016 annotation file and its image fields (``Img_*``).

    Raises:
        ValueError: naming the file, if it is not XML, not an ``HRSC_Image``, or an object lacks a
            rotated-box field or has one that is not a number.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not XML: {exc}") from None
    if root.tag != "HRSC_Image":
        raise ValueError(f"{path}: root element is <{root.tag}>, an HRSC2016 annotation has <HRSC_Image>")
    fields = {child.tag: (child.text or "").strip() for child in root if child.tag.startswith("Img_")}
    boxes = []
    for i, obj in enumerate(root.iter("HRSC_Object")):
        try:
            values = [float(obj.findtext(k)) for k in ("mbox_cx", "mbox_cy", "mbox_w", "mbox_h", "mbox_ang")]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: object {i} lacks a numeric mbox_cx, mbox_cy, mbox_w, mbox_h or mbox_ang") from None
        boxes.append(rotated_box(*values))
    return boxes, fields


class HRSC2016Source(Source):
    """An HRSC2016 folder (``AllImages``, ``Annotations``, ``Segmentations``), or one holding them."""

    kind = "hrsc2016"

    def __init__(self, root: str | Path, georef: Georef | None = None, limit: int | None = None):
        super().__init__(root, georef, limit)
        base = self.root
        found = list(base.rglob("Annotations"))
        if not (base / "Annotations").is_dir() and found:
            base = found[0].parent
        self.annotations = sorted((base / "Annotations").glob("*.xml"))
        if not self.annotations:
            raise ValueError(f"{self.root}: no Annotations/*.xml (HRSC2016 layout: AllImages/, Annotations/, "
                             "Segmentations/)")
        self.base = base

    def __len__(self) -> int:
        return self._limited(len(self.annotations))

    def _image_for(self, xml: Path, fields: dict[str, str]) -> Path:
        stem = fields.get("Img_FileName") or xml.stem
        fmt = fields.get("Img_FileFmt")
        candidates = ([self.base / "AllImages" / f"{stem}.{fmt}"] if fmt else []) + [
            self.base / "AllImages" / f"{stem}{s}" for s in IMAGE_SUFFIXES]
        for c in candidates:
            if c.is_file():
                return c
        raise ValueError(f"{xml}: its image {stem!r} is not in {self.base / 'AllImages'}")

    def _load(self, index: int) -> Sample:
        xml = self.annotations[index]
        boxes, fields = parse_hrsc_xml(xml)
        # Img_Resolution fills in only what neither the user nor the image's own georeference gives;
        # one that is not a positive number is ignored, as a missing one is.
        try:
            resolution: float | None = float(fields.get("Img_Resolution") or "nan")
        except ValueError:
            resolution = None
        if resolution is not None and not (math.isfinite(resolution) and resolution > 0):
            resolution = None
        sample = read_image(self._image_for(xml, fields), self.georef, gsd=resolution,
                            gsd_from=f"Img_Resolution in {xml.name}")
        for key, size in (("Img_SizeWidth", sample.width), ("Img_SizeHeight", sample.height)):
            if fields.get(key) and fields[key].isdigit() and int(fields[key]) != size:
                raise ValueError(f"{xml}: {key} is {fields[key]}, the image is {size}")
        seg = self.base / "Segmentations" / f"{xml.stem}.png"
        mask = None
        if seg.is_file():
            with _open(seg) as src:
                if (src.height, src.width) != (sample.height, sample.width):
                    raise ValueError(f"{seg}: mask is {src.height}x{src.width}, image is {sample.height}x{sample.width}")
                mask = (src.read().max(axis=0) > 0).astype(np.uint8)
            sample.notes.append(f"truth: {len(boxes)} rotated boxes; mask from {seg.name}")
        else:
            sample.notes.append(f"truth: {len(boxes)} rotated boxes; mask rasterized from them (no segmentation)")
        return with_truth_from_pixels(sample, boxes, mask)

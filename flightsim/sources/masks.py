"""Folders of image + mask pairs: the hrsid-mini and hrsid-official layouts, or one of your own.

A layout says where the images are, how a mask file is named after its image, and which band of
the mask and which threshold mark a ship. Vessel outlines are the connected components of the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flightsim.sources.base import Georef, Sample, Source, _open, mask_to_vessels, read_image, read_mask_file


@dataclass(frozen=True)
class Layout:
    """Where a folder keeps images and masks, and what in a mask is a ship (``band > threshold``)."""

    images: str            # sub-folder of the images ("" for the root)
    image_glob: str        # which files are images
    mask_dir: str          # sub-folder of the masks
    mask_name: str         # mask file name, formatted with the image's ``stem``
    channel: int           # 0-based band of the mask
    threshold: int
    exclude: tuple[str, ...] = ()   # image stems ending so are annotation files, not images
    instances: str = ""    # per-instance colour file (formatted with ``stem``): one vessel per colour


LAYOUTS: dict[str, Layout] = {
    # images/<stem>.jpg (SAR, R=G=B) with masks/<stem>.png: ship = green > 127.
    "hrsid-mini": Layout("images", "*.jpg", "masks", "{stem}.png", channel=1, threshold=127),
    # data/<stem>.png with data/<stem>_instance_color_RGB.png: ship = red > 0.
    "hrsid-official": Layout("data", "*.png", "data", "{stem}_instance_color_RGB.png", channel=0, threshold=0,
                             exclude=("_instance_color_RGB", "_instance_id_RGB"),
                             instances="{stem}_instance_id_RGB.png"),
}


class MaskFolderSource(Source):
    """Images and binary masks in a folder, paired by file name as ``layout`` says."""

    kind = "masks"

    def __init__(self, root: str | Path, layout: str | Layout = "hrsid-mini", georef: Georef | None = None,
                 limit: int | None = None):
        super().__init__(root, georef, limit)
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"unknown mask-folder layout {layout!r}; valid: {sorted(LAYOUTS)}")
            self.kind, layout = layout, LAYOUTS[layout]
        self.layout = layout
        # The root may be the data set's folder or the image folder itself; in the latter case the
        # mask folder is its sibling (hrsid-mini's images/ beside masks/), so look in its parent too.
        image_dir = self.root / layout.images
        self.image_dir = image_dir if image_dir.is_dir() else self.root
        bases = [self.root] if image_dir.is_dir() else [self.root, self.root.parent]
        self.mask_dir = next((b / layout.mask_dir for b in bases if (b / layout.mask_dir).is_dir()), self.image_dir)
        # Where no mask folder was found the masks are looked for beside the images: a missing one says so.
        self.mask_dir_missing = [b / layout.mask_dir for b in bases] if self.mask_dir == self.image_dir \
            and self.image_dir.name != layout.mask_dir else []
        self.images = sorted(p for p in self.image_dir.glob(layout.image_glob)
                             if not p.stem.endswith(layout.exclude or ("\0",)))
        if not self.images:
            raise ValueError(f"{self.image_dir}: no images matching {layout.image_glob!r} for layout {self.kind!r}")

    def __len__(self) -> int:
        return self._limited(len(self.images))

    def _load(self, index: int) -> Sample:
        image = self.images[index]
        sample = read_image(image, self.georef)
        mask_path = self.mask_dir / self.layout.mask_name.format(stem=image.stem)
        if not mask_path.is_file():
            where = (f"; there is no {self.layout.mask_dir}/ folder ({', '.join(map(str, self.mask_dir_missing))}), "
                     "so the masks were looked for beside the images" if self.mask_dir_missing else "")
            raise ValueError(f"{image}: its mask {mask_path} does not exist (layout {self.kind!r}: "
                             f"{self.layout.images or '.'}/{self.layout.image_glob} with {self.layout.mask_dir}/"
                             f"{self.layout.mask_name.format(stem='<stem>')}{where})")
        mask = read_mask_file(mask_path, self.layout.channel, self.layout.threshold, (sample.height, sample.width))
        ids_path = self.mask_dir / self.layout.instances.format(stem=image.stem) if self.layout.instances else None
        labels = None
        if ids_path is not None and ids_path.is_file():
            # Ships whose outlines touch are separate instances: one vessel per instance colour.
            with _open(ids_path) as src:
                if (src.height, src.width) != mask.shape:
                    raise ValueError(f"{ids_path}: is {src.height}x{src.width}, image is "
                                     f"{mask.shape[0]}x{mask.shape[1]}")
                rgb = src.read().astype(np.int64)
            key = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2] if rgb.shape[0] >= 3 else rgb[0]
            labels = np.unique(key, return_inverse=True)[1].reshape(mask.shape).astype(np.int32) + 1
            labels[mask == 0] = 0
        sample.mask, sample.vessels = mask, mask_to_vessels(mask, sample.transform, labels=labels)
        sample.notes.append(f"truth: {mask_path.name} band {self.layout.channel + 1} > {self.layout.threshold}; "
                            + (f"one vessel per instance colour of {ids_path.name}" if labels is not None
                               else "one vessel per 8-connected component"))
        return sample

"""COCO instance annotations: uncompressed or compressed RLE, polygons, or boxes only (sen2ships, SSDD).

RLE follows the pycocotools convention, decoded here with numpy (no pycocotools): run lengths
alternate background/foreground starting with background, over the image flattened in column-major
(Fortran) order. ``counts`` is a list of integers (uncompressed) or a string (the compressed form:
LEB128-like 5-bit groups, each count after the second stored as a difference to the one two back).

No annotation leaves the truth unsaid: one without segmentation (a box-only export) is drawn as its
``bbox``; a polygon of fewer than 3 points is skipped (its annotation falls back to the bbox when
nothing else is left); an outline that covers no pixel centre is drawn with every pixel it touches.
Where outlines overlap, a pixel is the later annotation's, so one wholly under later ones (a
duplicate, or a ship drawn inside another's outline) is no vessel of its own. Each sample's
``notes`` count these adaptations, and the annotations left out (other categories,
crowd regions), so that a report can say what the truth is made of.

Length: one module because the RLE codec, the per-annotation rules and the file index with its
checks are one reading of one format: a malformed file must fail with a ValueError naming the file
and the field wherever in that reading the fault shows, and the rules are easiest to keep consistent
side by side.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import rasterio.features
import shapely
from shapely.geometry import Polygon, box

from flightsim.sources.base import Georef, Sample, Source, mask_to_vessels, read_image


def decode_rle_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``).

    Raises:
        ValueError: for a character outside the encoding's 64 (``0``..``o``) or a string that ends in
            the middle of a count (a truncated export).
    """
    out: list[int] = []
    p = 0
    try:
        data = counts.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("compressed RLE counts must be ASCII characters '0'..'o'") from None
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError(f"compressed RLE counts end in the middle of a count (after {len(out)} counts): "
                                 "the string is truncated")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"compressed RLE counts hold {chr(data[p])!r}; valid characters are '0'..'o'")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE dict ``{"size": [h, w], "counts": ...}`` as an (h, w) uint8 mask.

    Raises:
        ValueError: if the size is not two positive integers, a count is negative, or the runs do
            not add up to h * w.
    """
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    h, w = size
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = decode_rle_counts(counts)
    if not isinstance(counts, list) or not all(isinstance(c, int) for c in counts):
        raise ValueError("RLE counts must be a list of integers or a compressed string")
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any():
        raise ValueError("RLE has a negative run length")
    if runs.sum() != h * w:
        raise ValueError(f"RLE runs add up to {int(runs.sum())} pixels; size {h}x{w} needs {h * w}")
    values = np.zeros(len(runs), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """The uncompressed COCO RLE of a binary mask (for tests and for writing annotations)."""
    flat = np.asarray(mask, dtype=np.uint8).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": runs}


#: Category names (case-insensitive substrings) that mark a vessel class; a file with such names keeps only
#: those categories, a file without keeps every category.
VESSEL_WORDS = ("ship", "vessel", "boat")


def check_ring(ring: Any) -> None:
    """Raise unless ``ring`` is a flat list of finite numbers ``[x1, y1, x2, y2, ...]``, as COCO writes it.

    Checked before a ring is counted as short: a ring of ``[x, y]`` pairs (another format's habit) was
    read in three ways by its length (4 pairs skipped as "fewer than 3 points", 5 refused, 6 read), and a
    NaN or infinite coordinate (``json`` writes and reads them) failed deep inside GEOS.

    Raises:
        ValueError: naming what the ring holds that is not a finite number.
    """
    if not isinstance(ring, list):
        raise ValueError("segmentation is a list of polygons, each a list [x1, y1, x2, y2, ...]; "
                         f"it holds {_kind(ring)}")
    bad = next((v for v in ring if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if bad is not None:
        raise ValueError(f"a polygon's coordinates must be numbers in one flat list [x1, y1, x2, y2, ...]; "
                         f"it holds {bad!r} ({_kind(bad)})")
    if not all(math.isfinite(v) for v in ring):
        raise ValueError(f"a polygon's coordinates must be finite numbers; it holds "
                         f"{next(v for v in ring if not math.isfinite(v))}")


def polygons_from_coco(segmentation: list[list[float]]) -> list[Polygon]:
    """COCO polygon segmentation ``[[x1, y1, x2, y2, ...], ...]`` (pixel coordinates) as polygons.

    Raises:
        ValueError: for a ring that is not a flat list of an even number (at least 6) of finite
            coordinates (:func:`check_ring`).
    """
    polys = []
    for ring in segmentation:
        check_ring(ring)
        if len(ring) < 6 or len(ring) % 2:
            raise ValueError("a polygon needs an even number of coordinates, at least 3 points")
        points = np.asarray(ring, dtype=float).reshape(-1, 2)
        poly = shapely.make_valid(Polygon(points))
        polys.extend(g for g in getattr(poly, "geoms", [poly]) if isinstance(g, Polygon) and g.area > 0)
    return polys


def bbox_polygon(bbox: Any) -> Polygon | None:
    """The rectangle of a COCO ``bbox`` ``[x, y, width, height]`` (pixels), or None if it is not one."""
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
        return None
    x, y, w, h = (float(v) for v in bbox)
    return box(x, y, x + w, y + h) if w > 0 and h > 0 else None


def rasterise_pixels(polys: list[Polygon], shape_hw: tuple[int, int], all_touched: bool = False) -> np.ndarray:
    """The (h, w) uint8 mask of pixel-coordinate polygons: pixels whose centre lies inside one, or with
    ``all_touched`` every pixel one touches."""
    if not polys:
        return np.zeros(shape_hw, np.uint8)
    return rasterio.features.rasterize([(p, 1) for p in polys], out_shape=shape_hw, fill=0, dtype="uint8",
                                       all_touched=all_touched)


def annotation_mask(a: dict[str, Any], shape_hw: tuple[int, int], counts: Counter[str]) -> np.ndarray:
    """The pixels of one COCO annotation on an image of ``shape_hw``, with what was adapted counted in
    ``counts`` (keys as :data:`ADAPTATIONS`).

    RLE is decoded; polygons are rasterised by pixel centre. A missing or empty segmentation, or one
    whose every polygon has fewer than 3 points, is drawn as the ``bbox``; an outline that covers no
    pixel centre (a thin ship) is drawn with every pixel it touches, so no annotation vanishes.

    Raises:
        ValueError: for a malformed RLE or polygon, or an annotation with no geometry and no bbox.
    """
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        m = decode_rle(seg)
        if m.shape != shape_hw:
            raise ValueError(f"RLE size {list(m.shape)} differs from the image's {list(shape_hw)}")
        if m.any():
            return m
        polys = [bbox_polygon(a.get("bbox"))]
        if polys[0] is None:
            counts["empty"] += 1
            return m
        counts["empty_rle_bbox"] += 1
    elif seg is None or (isinstance(seg, list) and not seg):
        polys = [bbox_polygon(a.get("bbox"))]
        if polys[0] is None:
            raise ValueError(f"no segmentation and no bbox [x, y, width, height] (bbox {a.get('bbox')!r}): "
                             "nothing to draw the vessel from")
        counts["box_only"] += 1
    elif isinstance(seg, list):
        for ring in seg:
            check_ring(ring)
        rings = [r for r in seg if len(r) >= 6]
        counts["short_rings"] += len(seg) - len(rings)
        polys = polygons_from_coco(rings)
        if not polys:
            polys = [bbox_polygon(a.get("bbox"))]
            if polys[0] is None:
                raise ValueError(f"no polygon of at least 3 points and an area, and no bbox [x, y, width, "
                                 f"height] (bbox {a.get('bbox')!r}): nothing to draw the vessel from")
            counts["no_polygon"] += 1
    else:
        raise ValueError("segmentation is neither RLE (a dict) nor polygons (a list of [x1, y1, x2, y2, ...]); "
                         "a box-only annotation has none, or [], and a bbox")
    m = rasterise_pixels(polys, shape_hw)
    if not m.any():
        m = rasterise_pixels(polys, shape_hw, all_touched=True)
        counts["all_touched" if m.any() else "empty"] += 1
    return m


#: What :func:`annotation_mask` may adapt, as a sample's note says it (with the count in front).
ADAPTATIONS = {
    "box_only": "without segmentation drawn as its bbox rectangle",
    "short_rings": "with fewer than 3 points skipped",
    "no_polygon": "without a usable polygon (all fewer than 3 points or no area) drawn as its bbox rectangle",
    "empty_rle_bbox": "with an empty RLE drawn as its bbox rectangle",
    "all_touched": "covering no pixel centre drawn with every pixel it touches (all_touched)",
    "empty": "covering no pixel of the image (outside it, or empty) left out of the truth",
    "hidden": "wholly under later ones (a duplicate, or an outline inside another's) not a vessel of its own",
}


def _has_folder(file_name: str) -> bool:
    """Whether a relative ``file_name`` has a folder part (``s1/0001.png``): two such folders may hold
    one stem. An absolute path names its own file, so only a clashing stem renames it."""
    p = Path(file_name)
    return not p.is_absolute() and len(p.parts) > 1


def _kind(value: Any) -> str:
    """What a JSON value is, in words: ``null``, a string, a list, ..."""
    return {type(None): "null", bool: "a boolean", str: "a string", list: "a list", dict: "an object",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _check_id(path: Path, entry: str, field: str, value: Any) -> None:
    """Raise unless ``value`` can be a COCO id (an integer, or a string as some exporters write)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{path}: {entry} has {field} {value!r} ({_kind(value)}); "
                         "a COCO id is an integer (or a string)")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class CocoSource(Source):
    """Every annotated image of one COCO JSON, or of every ``*.json`` under a folder (one per port in
    sen2ships).

    ``default_gsd`` (metres per pixel) is the images' gsd where neither the user nor an image's own
    geotransform gives one (sen2ships' 10 m). ``categories`` keeps annotations of these category
    names; None keeps the categories whose name contains one of :data:`VESSEL_WORDS` where a file has
    such names, else every category. Crowd regions (``iscrowd=1``) are left out where a file also has
    single instances (``iscrowd=0``); a file that marks every annotation as a crowd (sen2ships, whose
    exporter tags each RLE so) keeps them.

    A sample is named by its file stem; where the stem is not unique, or the ``file_name`` has a
    folder, by its path relative to the folder read (without suffix, or with it if that still clashes),
    so that tile ids never clash. An image is looked for beside its JSON, then in an ``images/`` folder
    beside the JSON's folder (the usual ``annotations/`` + ``images/`` layout). Samples come in the
    order of the JSON files' paths, then of each file's ``file_name``s, whatever order a file lists
    them in, so that a seeded split of them does not depend on it.
    """

    kind = "coco"

    def __init__(self, root: str | Path, categories: list[str] | None = None, georef: Georef | None = None,
                 limit: int | None = None, default_gsd: float | None = None):
        super().__init__(root, georef, limit)
        # Metres per pixel where neither the user nor an image's own geotransform says (sen2ships: 10 m).
        self.default_gsd = default_gsd
        files = [self.root] if self.root.is_file() else sorted(self.root.rglob("*.json"))
        if not files:
            raise ValueError(f"{self.root}: no COCO .json files")
        self.categories = categories
        self.items: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]] = []
        self.files: list[Path] = []  # the image file of each item
        self.item_notes: list[list[str]] = []  # what was left out of each item's truth, and why
        for f in files:
            self._index(f)
        if not self.items:
            raise ValueError(f"{self.root}: no image of the COCO files exists beside them")
        self._refuse_twice()
        self.names = self._names()

    def _refuse_twice(self) -> None:
        """Raise where one image file is listed twice (by two COCO files under the folder, a test set's
        ``test.json`` and a ``test_inshore.json`` of some of its chips, or twice by one): it would be
        streamed and scored twice, its ships counted twice."""
        first: dict[Path, tuple[Path, Any]] = {}
        for (path, im, _), file in zip(self.items, self.files):
            seen = first.setdefault(file.resolve(), (path, im["id"]))
            if seen != (path, im["id"]):
                by = f"twice by {path.name}" if seen[0] == path else f"by {seen[0].name} and {path.name}"
                raise ValueError(f"{file}: listed {by} (image ids {seen[1]!r} and {im['id']!r}): read twice, it "
                                 "would be scored twice and its ships counted twice; give one COCO file as "
                                 f"coco:FILE (e.g. coco:{path}), or list each image once")

    def _keep_categories(self, path: Path, names: dict[Any, str]) -> tuple[set[Any] | None, str | None]:
        """The category ids to keep (None: all) and a note on the choice."""
        if self.categories is not None:
            keep = {i for i, n in names.items() if n in self.categories}
            if not keep:
                raise ValueError(f"{path}: no category named {self.categories}; valid: {sorted(set(names.values()))}")
            return keep, None
        keep = {i for i, n in names.items() if any(w in n.lower() for w in VESSEL_WORDS)}
        if not keep:
            return None, (f"categories: no category name contains {' / '.join(VESSEL_WORDS)} "
                          f"({sorted(set(names.values()))}): every category counts as a vessel")
        return (keep, None) if len(keep) < len(names) else (None, None)

    def _index(self, path: Path) -> None:
        try:
            coco = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        try:
            images, annotations, cats = coco["images"], coco["annotations"], coco["categories"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a COCO file (images, annotations, categories): missing {exc}") from None
        for key, value in (("images", images), ("annotations", annotations), ("categories", cats)):
            if not isinstance(value, list):
                raise ValueError(f"{path}: {key} is {_kind(value)}; a COCO file's {key} is a list (empty if none)")
        # Ids are dict keys and set members below: a list or an object there would be a raw TypeError.
        for n, c in enumerate(cats, start=1):
            if not isinstance(c, dict) or "id" not in c or "name" not in c:
                raise ValueError(f"{path}: categories entry {n} is not an object with an id and a name")
            _check_id(path, f"category entry {n}", "id", c["id"])
        names = {c["id"]: str(c["name"]) for c in cats}
        keep, category_note = self._keep_categories(path, names)
        by_image: dict[Any, list[dict[str, Any]]] = {}
        left_out: dict[Any, Counter[str]] = {}
        for n, im in enumerate(images, start=1):
            for key in ("id", "file_name"):
                if not isinstance(im, dict) or key not in im:
                    raise ValueError(f"{path}: image entry {n} has no {key}")
            _check_id(path, f"image entry {n}", "id", im["id"])
            if not isinstance(im["file_name"], str) or not im["file_name"]:
                raise ValueError(f"{path}: image entry {n} (id {im['id']!r}) has file_name "
                                 f"{json.dumps(im['file_name'])}; "
                                 "it must be the image's path, a non-empty string")
            for key in ("height", "width"):
                value = im.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError(f"{path}: image {im['file_name']!r} has {key} {value!r} ({_kind(value)}); "
                                     f"a COCO {key} is a number of pixels, or absent")
            by_image[im["id"]], left_out[im["id"]] = [], Counter()
        crowds_are_regions = any(isinstance(a, dict) and not a.get("iscrowd") for a in annotations)
        for n, a in enumerate(annotations, start=1):
            for key in ("image_id", "category_id"):
                if not isinstance(a, dict) or key not in a:
                    raise ValueError(f"{path}: annotation entry {n} has no {key}")
                _check_id(path, f"annotation {a.get('id', f'entry {n}')!r}", key, a[key])
            if a["image_id"] not in by_image:
                raise ValueError(f"{path}: annotation {a.get('id', f'entry {n}')} refers to image_id "
                                 f"{a['image_id']!r}, which no image has")
            if keep is not None and a["category_id"] not in keep:
                left_out[a["image_id"]]["category"] += 1
            elif a.get("iscrowd") and crowds_are_regions:
                left_out[a["image_id"]]["crowd"] += 1
            else:
                by_image[a["image_id"]].append(a)
        others = sorted({n for i, n in names.items() if keep is not None and i not in keep})
        # In file-name order, not the JSON's: the same images listed in another order (a tool that
        # rewrote the JSON) must make the same samples in the same order, or a seeded split of them
        # (search.dataset) would move images between training and test.
        for im in sorted(images, key=lambda im: (im["file_name"], str(im["id"]))):
            tried = list(dict.fromkeys([path.parent / im["file_name"],
                                        path.parent.parent / "images" / im["file_name"]]))
            file = next((p for p in tried if p.is_file()), None)
            if file is None:
                if by_image[im["id"]]:
                    raise ValueError(f"{path}: image {im['file_name']!r} "
                                     f"({_count(len(by_image[im['id']]), 'annotation')}) does not exist where the "
                                     "coco layout keeps images: beside its JSON, or in images/ beside the JSON's "
                                     f"folder (annotations/ + images/); tried {', '.join(str(p) for p in tried)}; "
                                     "put or link the images there")
                self.skipped.append(f"{Path(im['file_name']).name}: listed in {path.name}, not on disk, "
                                    "no annotations")
                continue
            notes = [category_note] if category_note else []
            gone = left_out[im["id"]]
            if gone["category"]:
                notes.append(f"truth: {_count(gone['category'], 'annotation')} of other categories ({others}) "
                             "left out")
            if gone["crowd"]:
                notes.append(f"truth: {_count(gone['crowd'], 'crowd annotation')} (iscrowd=1) left out")
            kept_crowds = sum(1 for a in by_image[im["id"]] if a.get("iscrowd"))
            if kept_crowds:
                notes.append(f"truth: {_count(kept_crowds, 'annotation')} marked iscrowd=1 kept as vessels: "
                             f"{path.name} marks every annotation so (as some RLE exporters do)")
            self.items.append((path, im, by_image[im["id"]]))
            self.files.append(file)
            self.item_notes.append(notes)

    def _names(self) -> list[str]:
        """A unique name per item: the stem, or the relative path (without, then with, suffix)."""
        rel = []
        for (path, im, _), file in zip(self.items, self.files):
            try:
                rel.append(PurePosixPath(file.resolve().relative_to(self.root.resolve()).as_posix()))
            except ValueError:  # a single JSON file as root, or an image outside the folder read
                rel.append(PurePosixPath(Path(im["file_name"]).as_posix()))
        stems = Counter(f.stem for f in self.files)
        names = [f.stem if stems[f.stem] == 1 and not _has_folder(im["file_name"]) else str(r.with_suffix(""))
                 for (_, im, _), f, r in zip(self.items, self.files, rel)]
        clash = Counter(names)
        names = [str(r) if clash[n] > 1 else n for n, r in zip(names, rel)]
        seen: Counter[str] = Counter()
        out = []
        for n in names:
            seen[n] += 1
            out.append(n if seen[n] == 1 else f"{n}~{seen[n]}")
        return out

    def __len__(self) -> int:
        return self._limited(len(self.items))

    def _load(self, index: int) -> Sample:
        path, im, annotations = self.items[index]
        file, name = self.files[index], self.names[index]
        sample = read_image(file, self.georef, name=name, gsd=self.default_gsd,
                            gsd_from=f"the default of {self.kind} sources")
        if name != file.stem:
            sample.notes.append(f"named by its path {name!r}: its file stem {file.stem!r} is not unique or its "
                                "file_name has a folder")
        shape_hw = (sample.height, sample.width)
        if (im.get("height"), im.get("width")) not in ((None, None), shape_hw):
            raise ValueError(f"{path}: image {im['file_name']!r} is {shape_hw[0]}x{shape_hw[1]} on disk, "
                             f"{im.get('height')}x{im.get('width')} in the annotations")
        mask = np.zeros(shape_hw, np.uint8)
        labels = np.zeros(shape_hw, np.int32)
        counts: Counter[str] = Counter()
        drawn = []
        for n, a in enumerate(annotations, start=1):
            try:
                m = annotation_mask(a, shape_hw, counts)
            except ValueError as exc:
                raise ValueError(f"{path}: annotation {a.get('id')}: {exc}") from None
            labels[m > 0] = n  # where outlines overlap, a pixel is the later annotation's
            mask |= m
            if m.any():
                drawn.append(n)
        if len(drawn) > 1:  # one annotation cannot hide under another; bincount is a tenth of np.unique's cost
            present = np.bincount(labels.ravel(), minlength=len(annotations) + 1) > 0
            counts["hidden"] = sum(1 for n in drawn if not present[n])
        sample.mask = mask
        sample.vessels = mask_to_vessels(mask, sample.transform, labels=labels)
        sample.notes.append(f"truth: {len(annotations)} COCO annotations from {path.name}")
        sample.notes.extend(self.item_notes[index])
        for key, text in ADAPTATIONS.items():
            if counts[key]:
                what = 'polygon' if key == 'short_rings' else 'annotation'
                sample.notes.append(f"truth: {_count(counts[key], what)} "
                                    f"{text}")
        return sample

"""The search's data: where its samples come from, how they are split, normalised and sampled.

``[data] source`` is ``synthetic`` scenes, whose validation scenes are seeds ``data.val_seed_start ..``
(>= ``data.min_seed``: never the held-out test seeds below 100), written once per search as GeoTIFFs
with their truth; or a real data set through flightsim's loaders (any ``KIND:PATH`` of
:data:`flightsim.sources.SOURCES`), split once by a seeded permutation into test (held out: never
trained on nor selected on), validation and training samples (:func:`prepare_data`,
``data/split.json``), with what could leak the test split into training dropped from train and
val (the same image twice, in two parts of a source list or within one data set, byte for byte or
re-cut a few rows larger or smaller; HRSID tiles overlapping a test tile; with ``[data] shifted_twins``,
a shifted or cropped copy of a test sample, by :mod:`search.twins`), and, with ``[data] val_twins``,
such a copy of a validation sample from train (validation chooses the candidate and the cuts).

Length: one module for what makes a split. The split, the checks that keep the test split out of
training (reserved seeds, duplicate images, overlapping tiles, shifted twins) and the arrays written from it are
read together when judging whether a search ever saw its test data; apart, each would hide half of
that argument.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.atomic import write_atomic
from runtime.bands import adapt_bands
from search.data import (Normalization, PatchSampler, SamplingOptions, SceneArrays, estimate_normalization, load_scenes,
                         synthetic_kwargs)
from search import twins


@dataclass(frozen=True)
class SearchData:
    """Where a search's data lives (picklable: sent to every worker)."""

    root: Path
    train_seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]
    norm: Normalization
    #: ``"synthetic"`` (the ids are scene seeds) or a flightsim source spec (the ids are sample
    #: indices), or a tuple of specs (indices into their concatenation).
    source: str | tuple[str, ...] = "synthetic"
    #: For a concatenated source: which data set each training sample comes from (source weights).
    train_groups: tuple[int, ...] = ()

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    def val_scene(self, seed: int) -> tuple[Path, Path]:
        """(scene GeoTIFF, truth mask GeoTIFF) of validation seed ``seed``.

        The generator's own mask, the one training uses; its GeoJSON polygons rasterised again by
        the rig differ from it at vessel edges (found: 0.008 mIoU on two 1024 px scenes).
        """
        d = self.root / "val" / f"seed_{seed}"
        return d / "scene.tif", d / "truth_mask.tif"


_ARRAYS: dict[tuple[Path, str], list[SceneArrays]] = {}


def split_arrays(data: SearchData, split: str) -> list[SceneArrays]:
    """The scenes of ``split`` ("train" or "val") as arrays, loaded once per process."""
    key = (data.root, split)
    if key not in _ARRAYS:
        _ARRAYS[key] = read_split(data.root, split)
    return _ARRAYS[key]


def training_counts(data: SearchData) -> list[str]:
    """The types of the counts a model trained on ``data`` has seen (``uint8``, ``uint16``): its
    manifest's ``trained_for.counts``, so that the rig and the runtime can say when a scene's counts
    are of another kind (:func:`runtime.fit.fit_warnings`). Read from the training arrays."""
    return sorted({scene.image.dtype.name for scene in split_arrays(data, "train")})


def read_split(root: Path, split: str) -> list[SceneArrays]:
    """The scenes of ``split`` as :func:`prepare_data` wrote them under ``root`` (not cached)."""
    with np.load(root / f"{split}.npz") as f:
        return [SceneArrays(int(s), f[f"image_{s}"], f[f"mask_{s}"], f[f"land_{s}"] if f"land_{s}" in f.files else None,
                            f[f"labels_{s}"] if f"labels_{s}" in f.files else None)
                for s in f["seeds"]]


def _save_arrays(path: Path, ids: list[int], scenes: list[SceneArrays], generator: dict[str, Any] | None = None,
                 layout: dict[str, Any] | None = None) -> None:
    arrays = {"seeds": np.array(ids)}
    if generator is not None:  # synthetic scenes: the generate_scene keywords they were made with
        arrays["generator"] = np.array(json.dumps(generator, sort_keys=True))
    if layout is not None:  # real samples: the model bands they were cut to (:func:`_arrays_layout`)
        arrays["layout"] = np.array(json.dumps(layout, sort_keys=True))
    for s in scenes:
        arrays[f"image_{s.seed}"], arrays[f"mask_{s.seed}"] = s.image, s.mask
        if s.land is not None:
            arrays[f"land_{s.seed}"] = s.land
        if s.labels is not None:
            arrays[f"labels_{s.seed}"] = s.labels
    np.savez(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)
    # a split written again (another split_seed, before any record) must not be read from the cache
    for key in [k for k in _ARRAYS if k[1] == path.stem and k[0].resolve() == path.parent.resolve()]:
        del _ARRAYS[key]


#: ``[data] source_roles``: what each data set of the source list is for.
SOURCE_ROLES = ("split", "train", "val", "test")


def source_roles(data: dict[str, Any], n_sources: int) -> list[str]:
    """The role of each of ``n_sources`` data sets: ``split`` (the seeded train/val/test split,
    the default) or wholly ``train``, ``val`` or ``test`` (a set held out whole: leave-one-out).

    Raises:
        ValueError: for a list of another length or an unknown role.
    """
    roles = list(data.get("source_roles") or ["split"] * n_sources)
    if len(roles) != n_sources:
        raise ValueError(f"[data] source_roles has {len(roles)} entries for {n_sources} data sets")
    bad = [r for r in roles if r not in SOURCE_ROLES]
    if bad:
        raise ValueError(f"[data] source_roles: unknown role(s) {bad}; valid: {list(SOURCE_ROLES)}")
    weights = data.get("source_weights") or []
    if weights and len(weights) != n_sources:
        raise ValueError(f"[data] source_weights has {len(weights)} entries for {n_sources} data sets")
    return roles


def split_source(n: int, data: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) sample indices of a real source of ``n`` samples: a permutation seeded with
    ``split_seed``; ``test_fraction`` and ``val_fraction`` of the samples (at least one each).

    Raises:
        ValueError: when fewer than three samples would leave a split empty.
    """
    order = [int(i) for i in np.random.default_rng(data["split_seed"]).permutation(n)]
    n_test = max(1, round(n * data["test_fraction"]))
    n_val = max(1, round(n * data["val_fraction"]))
    if n - n_test - n_val < 1:
        raise ValueError(f"a source of {n} samples cannot give {n_test} test, {n_val} validation and at least one "
                         "training sample; lower [data] test_fraction / val_fraction or use more samples")
    return sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]), sorted(order[:n_test])


def _absolute(spec: str) -> str:
    """``KIND:PATH`` with PATH made absolute: workers (a Ray cluster's included) need not share this
    process's directory."""
    from flightsim.sources import parse_spec

    kind, rest = parse_spec(spec)
    return f"{kind}:{Path(rest).resolve()}" if rest and Path(rest).exists() else spec


def source_spec(source: str | list[str]) -> str | tuple[str, ...]:
    """``[data] source`` as a hashable spec: one ``KIND:PATH``, or a tuple of them (concatenated)."""
    return _absolute(source) if isinstance(source, str) else tuple(_absolute(s) for s in source)


def _refuse_reserved(seeds: list[int], data: dict[str, Any], where: str = "") -> None:
    """Refuse synthetic ``seeds`` below ``[data] min_seed``: those are held out for evaluation (the
    demo scene is seed 7), whichever way the search is given them (the seed ranges of a
    ``"synthetic"`` source, or the ``seeds=`` of a ``synthetic:`` part of a source list).

    Raises:
        ValueError: listing the reserved seeds and the valid ones (>= ``min_seed``).
    """
    reserved = [s for s in seeds if s < data["min_seed"]]
    if reserved:
        raise ValueError(f"{where}seeds {reserved} are below min_seed={data['min_seed']} (held out for evaluation); "
                         f"valid: seeds >= {data['min_seed']}")


def check_synthetic_parts(parts: list[Any], data: dict[str, Any]) -> None:
    """Apply :func:`_refuse_reserved` to every synthetic part of a ``[data] source`` (a list, or one
    ``synthetic:seeds=...`` spec), before anything is generated: only :func:`seed_ranges` checked
    ``min_seed`` before, so a list could train on the held-out scenes."""
    for k, part in enumerate(parts):
        if getattr(part, "kind", None) == "synthetic":
            _refuse_reserved(list(part.seeds), data, f"[data] source part {k} (synthetic): ")


#: An HRSID tile's name: ``P<scene>_<r0>_<r1>_<c0>_<c1>``, its window in the parent scene (800 px
#: tiles cut with overlap, so two tiles of one scene can share pixels).
_TILE_NAME = re.compile(r"(?:^|/)(P\d+)_(\d+)_(\d+)_(\d+)_(\d+)(?:\.\w+)?$")


def _names_and_digests(source: Any) -> tuple[list[str], list[str], list[str]]:
    """Every sample's name, a sha256 of its pixels (dtype, shape and counts): what tells the same
    image apart under two names (the same files symlinked in another folder, SSDD's twin chips);
    with near twins (:func:`_near_twins`) the digest of the first of its group of near twins; and a
    sha256 of its pixels and its truth (mask and vessel outlines), what the arrays were written from
    (:func:`_prepare_source` writes them again when it changes)."""
    import shapely

    names: list[str] = []
    digests: list[str] = []
    contents: list[str] = []
    thumbs: list[np.ndarray] = []
    shapes: list[tuple[int, ...]] = []
    stats: list[tuple[float, float]] = []
    for i in range(len(source)):
        sample = source[i]
        names.append(sample.name)
        pixels = np.ascontiguousarray(sample.read())
        h = hashlib.sha256(f"{pixels.dtype.name}{pixels.shape}".encode())
        h.update(pixels.tobytes())
        digests.append(h.hexdigest())
        c = hashlib.sha256(h.digest())  # the truth is read with the sample: hashing it costs no file read
        if sample.mask is not None:
            c.update(f"{sample.mask.dtype.name}{sample.mask.shape}".encode())
            c.update(np.ascontiguousarray(sample.mask).tobytes())
        for wkb in shapely.to_wkb(sample.vessels or []):
            c.update(wkb)
        contents.append(c.hexdigest())
        grey = twins.grey(pixels, np.float64)
        thumbs.append(_thumbnail(grey))
        stats.append((grey.mean(), grey.std()))
        shapes.append(pixels.shape)
    group = list(range(len(digests)))  # union-find over exact and near twins

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, j in _near_twins(source, thumbs, np.array(stats), shapes):
        group[root(j)] = root(i)
    return names, [digests[root(i)] for i in range(len(digests))], contents


#: Near twins (:func:`_near_twins`): thumbnail side, thumbnail correlation of a candidate pair (or
#: mean and standard deviation within ``_NEAR_STATS`` of each other: speckle-like chips, whose
#: thumbnails a crop decorrelates), most relative difference in each side, and most mean
#: |difference| of the shared window relative to the image's own mean |deviation|. SSDD measured:
#: its near twins 0.001-0.006, distinct chips 0.4 and up.
_THUMB, _NEAR_CORR, _NEAR_STATS, _NEAR_SIDE, _NEAR_DIFF = 16, 0.9, 0.05, 0.04, 0.05


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    """A ``_THUMB`` x ``_THUMB`` block average of a band mean (:func:`search.twins.grey`, float64), zero-mean and unit-norm
    (zeros for a flat image)."""
    ys = np.linspace(0, grey.shape[0], _THUMB + 1).astype(int)
    xs = np.linspace(0, grey.shape[1], _THUMB + 1).astype(int)
    t = np.array([[grey[ys[a]:max(ys[a + 1], ys[a] + 1), xs[b]:max(xs[b + 1], xs[b] + 1)].mean()
                   for b in range(_THUMB)] for a in range(_THUMB)]).ravel()
    t -= t.mean()
    norm = np.linalg.norm(t)
    return t / norm if norm > 1e-9 else t


def _near_twins(source: Any, thumbs: list[np.ndarray], stats: np.ndarray,
                shapes: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """Pairs of samples that are the same image cut a few rows or columns larger or smaller, or
    saved again with a little noise: not byte-identical, so their digests differ, but a leak all the
    same (SSDD's 000226 and 000227, 392 x 464 and 391 x 467 px, differ by 0.1 count on average where
    they overlap; split seed 4 put one in test and the other in training). Candidates: thumbnails
    that correlate (or like mean and spread) and sides within ``_NEAR_SIDE``; confirmed on the pixels, with the images
    anchored at each of their four corners."""
    if len(thumbs) < 2:
        return []
    t = np.stack(thumbs)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(t), 1024):
        corr = t[start:start + 1024] @ t.T
        block = stats[start:start + 1024, None, :]
        alike = np.all(np.abs(block - stats[None]) <= _NEAR_STATS * np.maximum(abs(block), abs(stats[None])), axis=2)
        for a, j in zip(*np.nonzero((corr >= _NEAR_CORR) | alike)):
            i = start + int(a)
            si, sj = shapes[i], shapes[int(j)]
            if int(j) > i and len(si) == len(sj) and si[:-2] == sj[:-2] and all(
                    abs(p - q) <= _NEAR_SIDE * max(p, q) for p, q in zip(si[-2:], sj[-2:])) \
                    and _same_image(source[i].read(), source[int(j)].read()):
                pairs.append((i, int(j)))
    return pairs


def _same_image(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` agree on a shared window, each cut at one of its four corners."""
    ga, gb = twins.grey(a, np.float64), twins.grey(b, np.float64)
    h, w = min(ga.shape[0], gb.shape[0]), min(ga.shape[1], gb.shape[1])
    ends = (slice(0, h), slice(-h, None)), (slice(0, w), slice(-w, None))
    for ya in ends[0]:
        for yb in ends[0]:
            for xa in ends[1]:
                for xb in ends[1]:
                    pa, pb = ga[ya, xa], gb[yb, xb]
                    spread = np.abs(pa - pa.mean()).mean()
                    if spread > 0 and np.abs(pa - pb).mean() <= _NEAR_DIFF * spread:
                        return True
    return False


def _drop(ids: list[int], gone: set[int]) -> None:
    ids[:] = [i for i in ids if i not in gone]


def _drop_duplicates(train: list[int], val: list[int], test: list[int], digests: list[str],
                     names: list[str]) -> list[dict[str, Any]]:
    """Keep only the most held-out copy of an image found twice, by the hash of its pixels: a copy
    that is test elsewhere leaves train and val, one that is val elsewhere leaves train. Twice means
    in two parts of a source list (each part is split on its own) or within one data set: SSDD holds
    byte-identical chips under different names, and its seeded split put five test chips' twins in
    training (models/sar was trained on that split, before this rule: docs/models.md). Changes the
    lists in place; returns what was dropped (``split.json``'s ``dropped.duplicates``)."""
    rank = {i: r for r, ids in ((2, test), (1, val), (0, train)) for i in ids}  # 2 test, 1 val, 0 train
    copies: dict[str, list[int]] = {}
    for i in sorted(rank):
        copies.setdefault(digests[i], []).append(i)
    out: list[dict[str, Any]] = []
    for split, ids in (("val", val), ("train", train)):
        gone = set()
        for i in ids:
            held = [j for j in copies[digests[i]] if rank[j] > rank[i]]
            if held:
                gone.add(i)
                out.append({"id": i, "name": names[i], "from": split, "copy_of": [names[j] for j in held]})
        _drop(ids, gone)
    return out


def _drop_overlaps(train: list[int], val: list[int], test: list[int], names: list[str]) -> list[dict[str, Any]]:
    """Drop from train and val every tile whose window shares pixels with a test tile of the same
    parent scene (HRSID names, :data:`_TILE_NAME`): the seeded split draws tiles, not scenes, so two
    overlapping tiles can straddle train and test. The test split is never changed, and a split with
    no such straddle is left as it was. Changes the lists in place; returns what was dropped."""
    def window(i: int) -> tuple[str, int, int, int, int] | None:
        m = _TILE_NAME.search(names[i])
        return None if m is None else (m.group(1), *(int(g) for g in m.groups()[1:]))  # type: ignore[return-value]

    tests = [(names[i], w) for i in test if (w := window(i)) is not None]
    out: list[dict[str, Any]] = []
    for split, ids in (("val", val), ("train", train)):
        gone = set()
        for i in ids:
            w = window(i)
            hits = [] if w is None else [n for n, t in tests if t[0] == w[0] and w[1] < t[2] and t[1] < w[2]
                                         and w[3] < t[4] and t[3] < w[4]]
            if hits:
                gone.add(i)
                out.append({"id": i, "name": names[i], "from": split, "overlaps": hits})
        _drop(ids, gone)
    return out


#: ``[data] shifted_twins``: the twin search's result, cached in the data folder (:func:`_twin_pairs`).
TWINS_CACHE = "shifted_twins.json"
#: ``[data] val_twins``: the same for the validation samples against the training samples.
VAL_TWINS_CACHE = "val_twins.json"


def _twin_pairs(source: Any, test: list[int], pool: list[int], contents: list[str], path: Path) -> list[dict[str, Any]]:
    """The twin pairs of :func:`search.twins.find_pairs` (at its default settings) between the
    samples ``test`` and ``pool`` of ``source``: each ``test``, ``other`` (ids), ``dy``, ``dx`` (the
    other's origin in the test sample's pixels), ``overlap``, ``ncc`` and ``ncc_texture``.

    The search reads every one of those images and costs two to three minutes on SSDD (~950 samples, two
    cores), so its result is kept at ``path`` (written atomically), keyed by a sha256 of
    the settings and of each sample's id and ``contents`` digest (:func:`_names_and_digests`, already
    computed): a resume on unchanged data reads it back; a sample changed, added or moved, or another
    setting, searches again."""
    settings = twins.settings()
    key = hashlib.sha256(json.dumps({"settings": settings, "test": [[i, contents[i]] for i in test],
                                     "pool": [[j, contents[j]] for j in pool]}).encode()).hexdigest()
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and cached.get("key") == key:
            return list(cached["pairs"])
    except (OSError, ValueError, KeyError):
        pass  # none yet, or unreadable: searched again and written anew
    started = time.time()
    images = {i: twins.grey(source[i].read()) for i in sorted({*test, *pool})}
    found = [{k: p[k] for k in ("test", "other", "dy", "dx", "overlap", "ncc", "ncc_texture")}
             for p in twins.find_pairs(images, test, pool) if p["twin"]]
    write_atomic(path, json.dumps({"key": key, "settings": settings, "test": len(test), "pool": len(pool),
                                   "seconds": round(time.time() - started, 1), "pairs": found}, indent=1).encode())
    return found


def _drop_twins_of(source: Any, held: list[int], parts: list[tuple[str, list[int]]], names: list[str],
                   contents: list[str], path: Path, real: set[int]) -> list[dict[str, Any]]:
    """Drop from each of ``parts`` (name, ids) every sample that is a shifted or cropped twin of a
    sample of ``held`` (:mod:`search.twins`: the same scene cut with another window, often
    re-compressed): neither the pixel digests (:func:`_drop_duplicates`) nor the corner-anchored near
    twins catch such a copy. Only the samples of ``real`` are searched (synthetic scenes are drawn
    apart: they have none); ``held`` is never changed; the search is cached at ``path``
    (:func:`_twin_pairs`). Changes the lists of ``parts`` in place; returns what was dropped: each
    sample's ``twin_of`` (names of ``held``, best first) and its best pair's ``offset`` (its origin in
    that held sample's pixels, rows and columns), ``overlap`` (of the smaller image) and
    ``ncc_texture`` (the twin test's correlation)."""
    kept = [i for i in held if i in real]
    pool = sorted(i for _, ids in parts for i in ids if i in real)
    if not kept or not pool:
        return []
    hits: dict[int, list[dict[str, Any]]] = {}
    for p in _twin_pairs(source, kept, pool, contents, path):
        hits.setdefault(int(p["other"]), []).append(p)
    out: list[dict[str, Any]] = []
    for split, ids in parts:
        gone = set()
        for i in ids:
            if i in hits:
                ranked = sorted(hits[i], key=lambda p: (-p["ncc_texture"], p["test"]))
                best = ranked[0]
                gone.add(i)
                out.append({"id": i, "name": names[i], "from": split,
                            "twin_of": list(dict.fromkeys(names[int(p["test"])] for p in ranked)),
                            "offset": [best["dy"], best["dx"]], "overlap": best["overlap"],
                            "ncc_texture": best["ncc_texture"]})
        _drop(ids, gone)
    return out


def _prepare_source(cfg: dict[str, Any], root: Path) -> SearchData:
    """:func:`prepare_data` for real data: arrays of the training and validation samples.

    A list of sources is concatenated (:class:`flightsim.sources.Concat`) and each part is split on
    its own, with the same seed and fractions, so that every data set keeps its own held-out test
    samples; the ids are indices into the concatenation. Then what could leak the test split into
    training is dropped from train and val (never from test), and listed under ``dropped`` in
    ``split.json``: an image found in several parts (by a hash of its pixels) keeps only its most
    held-out copy (:func:`_drop_duplicates`, across parts and within one), and
    an HRSID tile that shares pixels with a test tile of the same scene leaves train and val
    (:func:`_drop_overlaps`). With ``[data] shifted_twins``, a train or val sample that is a
    shifted or cropped copy of a test sample leaves too, and with ``[data] val_twins`` a train sample
    that is one of a validation sample (:func:`_drop_twins_of`; each search cached in the data
    folder). Synthetic parts may not use the seeds below ``[data] min_seed``
    (:func:`check_synthetic_parts`).
    """
    from flightsim.sources import Concat, open_source

    spec = source_spec(cfg["data"]["source"])
    source = open_source(spec)
    parts = source.parts if isinstance(source, Concat) else [source]
    offsets = source.offsets if isinstance(source, Concat) else [0]
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    roles = source_roles(cfg["data"], len(parts))
    check_synthetic_parts(parts, cfg["data"])
    for part, offset, role in zip(parts, offsets, roles):
        everything = list(range(len(part)))
        chosen = (split_source(len(part), cfg["data"]) if role == "split" else
                  tuple(everything if role == name else [] for name in ("train", "val", "test")))
        for ids, part_ids in zip((train, val, test), chosen):
            ids.extend(offset + i for i in part_ids)
    # one pass over the samples for their names (and, across parts, their pixels' hashes)
    names, digests, contents = _names_and_digests(source)
    dropped = {"duplicates": _drop_duplicates(train, val, test, digests, names),
               "overlaps": _drop_overlaps(train, val, test, names)}
    synthetic = {k for k, part in enumerate(parts) if getattr(part, "kind", None) == "synthetic"}
    real = {i for i in range(len(source)) if (source.part_of(i) if isinstance(source, Concat) else 0) not in synthetic}
    if cfg["data"].get("shifted_twins", False):
        # on models/sar's split 80 of the 96 test chips had a twin in train or val
        dropped["shifted_twins"] = _drop_twins_of(source, test, [("val", val), ("train", train)], names, contents,
                                                  root / TWINS_CACHE, real)
    if cfg["data"].get("val_twins", False):
        # after the test's twins are gone: validation chooses the candidate, the threshold and the cuts, and on
        # models/sar's leak-free split 34 of its 60 samples have a twin in training (off by default: it costs
        # training data; search/defaults.toml)
        dropped["val_twins"] = _drop_twins_of(source, val, [("train", train)], names, contents,
                                              root / VAL_TWINS_CACHE, real)
    if not train or not val:
        gone = {k: len(v) for k, v in dropped.items() if v}
        raise ValueError(f"[data] source_roles {roles} leave no {'training' if not train else 'validation'} sample"
                         + (f" once the samples that could leak are dropped ({gone})" if gone else ""))
    root.mkdir(parents=True, exist_ok=True)
    land_masks = cfg["data"].get("land_masks") or ""
    if land_masks and not Path(land_masks).is_dir():
        raise ValueError(f"[data] land_masks {land_masks!r}: no such folder of <sample>.png sea/land masks")
    if land_masks:
        from hil.rig import check_mask_files

        check_mask_files((source[i] for i in sorted({*train, *val})), Path(land_masks))
    split = {"source": spec if isinstance(spec, str) else list(spec), "split_seed": cfg["data"]["split_seed"],
             **({"roles": roles} if set(roles) != {"split"} else {}),
             **({"land_masks": str(Path(land_masks).resolve())} if land_masks else {}),
             "train": train, "val": val, "test": test, "names": {str(i): names[i] for i in range(len(source))},
             # only when something was dropped: a split.json without drops stays byte for byte as before
             **({"dropped": {k: v for k, v in dropped.items() if v}} if any(dropped.values()) else {})}
    split_path = root / "split.json"
    old = json.loads(split_path.read_text()) if split_path.exists() else None
    if old is not None and old != split:
        _refuse_changed_split(root, old, split)
    bands = int(cfg["model"]["in_channels"])
    model_bands = [str(b) for b in cfg["export"]["bands"]]  # the manifest's input.bands
    # A corrected annotation (a mask or COCO file edited in place) keeps every name and so the split: only the
    # content says the arrays hold the old truth, which the search would otherwise go on training against.
    content = hashlib.sha256(json.dumps([contents[i] for i in train + val]).encode()).hexdigest()
    layout = {"in_channels": bands, "bands": model_bands, "content": content,
              # only with land masks: the layout (so the arrays) of a search without them stays as it was
              **({"land": _land_digest(source, train + val, Path(land_masks))} if land_masks else {})}
    if old != split or any(_arrays_layout(root / f"{name}.npz") != layout for name in ("train", "val")):
        for name, ids in (("train", train), ("val", val)):
            scenes = []
            for i in ids:
                sample = source[i].load()
                if sample.count != bands or sample.mask is None:
                    raise ValueError(f"{spec}: sample {sample.name!r} has {sample.count} bands and "
                                     f"{'a' if sample.mask is not None else 'no'} mask; the search needs "
                                     f"{bands} bands (model.in_channels) and a truth mask")
                image = np.asarray(sample.image)
                if len(model_bands) == bands:
                    # The rig (and runtime infer) reorder a sample naming the model's bands in another
                    # order by name (runtime.bands.adapt_bands): a blue, green, red file reaches the
                    # payload as red, green, blue, so it is trained on, and normalised, in that order. One
                    # naming some of them at other positions fits no rule (strict: refused here), as the
                    # runtime refuses its tiles (bad_shape): trained on as it was, no candidate could be scored.
                    try:
                        index, _ = adapt_bands(list(sample.bands), model_bands, strict=True)
                    except ValueError as exc:
                        raise ValueError(f"{spec}: sample {sample.name!r}: {exc}") from None
                    image = image if index is None else image[index]
                scenes.append(SceneArrays(i, image, sample.mask.astype(np.uint8),
                                          _land(sample, land_masks), instance_labels(sample)))
            _save_arrays(root / f"{name}.npz", ids, scenes, layout=layout)
        write_atomic(split_path, json.dumps(split, indent=1).encode())  # a kill mid-write must not break resume
    groups = tuple(source.part_of(i) if isinstance(source, Concat) else 0 for i in train)
    return normalised(SearchData(root, tuple(train), tuple(val), Normalization((0.0,), (1.0,)), spec, groups), cfg)


def _arrays_layout(path: Path) -> dict[str, Any] | None:
    """The model bands (``in_channels`` and ``[export] bands``) the arrays at ``path`` were written
    for, the ``content`` digest of the samples' pixels and truth they hold, and with land masks the
    ``land`` digest of their mask files (:func:`_land_digest`), or None (no such file,
    or one from before the layout was stored). The split alone does not say it: a config naming the
    bands in another order, or another number of them, must not train on arrays cut for the old one
    (the manifest would name bands the model was not trained on), nor a search on the truth of
    annotations since corrected."""
    if not path.exists():
        return None
    with np.load(path) as f:
        return json.loads(str(f["layout"])) if "layout" in f.files else None


def _refuse_changed_split(root: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to split again when ``root`` (``OUT/data``) belongs to a search that has trained on the
    old split (``OUT/records`` holds a record): its candidates' training samples could land in the
    new test split. Before any record, the data is simply prepared again.

    Raises:
        ValueError: naming what changed (samples added or removed, settings) and advising a new --out.
    """
    records = root.parent / "records"
    if not (records.is_dir() and any(records.glob("*.json"))):
        return
    if _parts_by_name(old) == _parts_by_name(new):
        return  # the same samples in each part (the data moved, say): preparing again is harmless
    before, after = set(old.get("names", {}).values()), set(new["names"].values())
    changes = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
               if k not in ("names", "train", "val", "test") and old.get(k) != new.get(k)]
    if after - before:
        changes.append(f"samples added: {sorted(after - before)}")
    if before - after:
        changes.append(f"samples removed: {sorted(before - after)}")
    if not changes:
        changes.append("the samples' order or split changed")
    # [data] shifted_twins (true by default since it was added) and val_twins drop more: a search whose
    # split.json was made without one (or with it off) changes split on resume, with the same data
    cause = ""
    for key, what in (("shifted_twins", "train/val samples that are shifted or cropped twins of a test sample"),
                      ("val_twins", "train samples that are shifted or cropped twins of a validation sample")):
        was, now = (bool(s.get("dropped", {}).get(key)) for s in (old, new))
        if was != now:
            cause = (f"Likely cause: [data] {key}, which {'now drops' if now else 'no longer drops'} the {what}; "
                     f"this search's split was made {'without' if now else 'with'} those drops, so to resume it set "
                     f"[data] {key} = {'false' if now else 'true'} in its config (or start a new --out). ")
            break
    raise ValueError(f"{root / 'split.json'} no longer matches the data set, and {records} holds candidates trained "
                     f"on the old split: splitting again could put samples they trained on into the test split. "
                     f"{cause}Use a new --out (or restore the data set). Differences: {'; '.join(changes)}")


def _parts_by_name(split: dict[str, Any]) -> dict[str, list[str]]:
    """The sample names of each part of a split.json (what a leak into the test split is about)."""
    names = split.get("names", {})
    return {part: sorted(names.get(str(i), f"#{i}") for i in split.get(part, [])) for part in ("train", "val", "test")}


def instance_labels(sample: Any) -> np.ndarray | None:
    """The sample's truth vessels as instance labels (H, W): vessel k's pixels (centre inside, as the
    mask is drawn) are k, a later vessel over an earlier one where outlines overlap; None without
    vessels. What :func:`search.evaluate.object_scores` takes its truth from, so that it counts the
    vessels hil counts (``sample.vessels``), not the mask's connected components."""
    if not sample.vessels:
        return None
    import rasterio.features

    n = len(sample.vessels)
    return rasterio.features.rasterize([(v, k) for k, v in enumerate(sample.vessels, start=1)],
                                       out_shape=(sample.height, sample.width), transform=sample.transform,
                                       fill=0, dtype="uint16" if n < 65536 else "int32")


def _land_digest(source: Any, ids: list[int], folder: Path) -> str:
    """A sha256 of the sea/land mask files (``[data] land_masks``) of samples ``ids``, in their order,
    a missing one marked as such: part of the arrays' layout (:func:`_arrays_layout`), so that a mask
    edited, added or removed in place under the same name writes the arrays again. The split and the
    samples' ``content`` do not see it (the masks are no part of a sample), and the search went on
    training its land head on the old masks. The files' bytes, not the decoded masks: no decode at
    each start, and a file saved again unchanged costs only a rewrite of arrays that come out the same."""
    from hil.rig import mask_file

    h = hashlib.sha256()
    for i in ids:
        path = mask_file(source[i], folder)
        h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"no mask")
    return h.hexdigest()


def _land(sample: Any, folder: str) -> np.ndarray | None:
    """The sample's land mask (uint8, 1 = land) from ``[data] land_masks`` (``<stem>.png``, 0 =
    land, as SSDD's ``sealand/``), or None: no folder, or no mask for this sample."""
    if not folder:
        return None
    from hil.rig import sea_mask

    sea = sea_mask(sample, Path(folder))
    return None if sea is None else (~sea).astype(np.uint8)


def make_sampler(cfg: dict[str, Any], data: SearchData, rng: np.random.Generator) -> PatchSampler:
    """The training patch sampler the config asks for (``[train]`` sampling and augmentation,
    ``[data] source_weights``), over the training arrays of ``data``."""
    opts = SamplingOptions.from_config(cfg["train"], cfg["data"])
    return PatchSampler(split_arrays(data, "train"), data.norm, int(cfg["train"]["patch"]), opts, rng,
                        groups=list(data.train_groups) or None)


def normalised(data: SearchData, cfg: dict[str, Any]) -> SearchData:
    """``data`` with the normalisation estimated from its training arrays (as written to disk), on
    the scale of ``[data] normalization_scale``."""
    return replace(data, norm=estimate_normalization(split_arrays(data, "train"), cfg["data"]["normalization_scale"]))


def seed_ranges(data: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Training and validation seeds of synthetic scenes; refuses overlap or seeds reserved for
    held-out evaluation."""
    train = list(range(data["train_seed_start"], data["train_seed_start"] + data["train_scenes"]))
    val = list(range(data["val_seed_start"], data["val_seed_start"] + data["val_scenes"]))
    _refuse_reserved(train + val, data)
    overlap = sorted(set(train) & set(val))
    if overlap:
        raise ValueError(f"training and validation seeds overlap: {overlap}")
    if not train or not val:
        raise ValueError("train_scenes and val_scenes must both be at least 1")
    return train, val


def prepare_data(cfg: dict[str, Any], root: Path) -> SearchData:
    """The training and validation data, once (arrays, and GeoTIFFs for hil); idempotent.

    ``[data] source``: ``"synthetic"`` generates scenes from the seed ranges; anything else is a
    flightsim source spec, split by :func:`split_source`.
    """
    from flightsim.synthetic import generate_scene, write_scene
    from search.network import check_land_settings

    # the scripts prepare data for configs they change in code, without search.evolution.check_up_front
    check_land_settings(cfg["train"], cfg["data"]["land_masks"])
    if cfg["data"]["source"] != "synthetic":
        return _prepare_source(cfg, root)
    train, val = seed_ranges(cfg["data"])
    root.mkdir(parents=True, exist_ok=True)
    for split, seeds, size in (("train", train, cfg["data"]["train_scene_size"]),
                               ("val", val, cfg["data"]["val_scene_size"])):
        path = root / f"{split}.npz"
        kwargs = synthetic_kwargs(cfg["data"], size)
        if path.exists():
            # reused only when made from the same seeds with every generator keyword the same
            # (size, dtype, scene_mode, ...); a cache from before the keywords were stored is made again
            with np.load(path) as f:
                if ([int(s) for s in f["seeds"]] == seeds and "generator" in f.files
                        and json.loads(str(f["generator"])) == json.loads(json.dumps(kwargs, sort_keys=True))):
                    continue
        # The npz is the commit marker of the split: removed first and written last, so that a run
        # killed while writing the validation GeoTIFFs (what hil scores) leaves no npz that would
        # match next time beside GeoTIFFs of other settings.
        path.unlink(missing_ok=True)
        if split == "val":
            for seed in seeds:
                write_scene(generate_scene(seed, **kwargs), root / "val" / f"seed_{seed}")
        _save_arrays(path, seeds, load_scenes(seeds, kwargs), generator=kwargs)
    return normalised(SearchData(root, tuple(train), tuple(val), Normalization((0.0,), (1.0,))), cfg)

"""Shifted and cropped twins: two samples that show the same pixels at some offset (a crop out of the
middle of another chip, or the same scene cut with another window), whatever their names and bytes.

Why: a seeded split draws samples, not scenes. SSDD holds overlapping crops of one scene, often
stretched, quantised or re-compressed otherwise, and on the shipped model's split 80 of its 96 test
chips had such a twin in train or val: neither byte-identical copies (``search.dataset``'s pixel
digests) nor its near twins (the same image re-cut a few rows larger or smaller, compared anchored at
the four corners) catch a copy shifted into the middle of another. :func:`find_pairs` is the test
``search.dataset._prepare_source`` drops such train/val samples by (``[data] shifted_twins``), and
``scripts/shifted_twins.py`` measures a split with (its docstring gives the measurement).

Two stages, so that SSDD's ~950 samples take two to three minutes on two cores:

1. coarse, every (test, train-or-val) pair: ``coarse``-fold block means, each contrast-normalised
   locally (:func:`local_normalise`), correlated at every offset where the two overlap by at least
   ``min_overlap`` of the smaller image, by one FFT per pair (:func:`coarse_scores`); the mean
   product over the overlap ranks the candidates;
2. exact, the ``top_k`` best candidates of each test sample (and any above ``coarse_floor``): the
   masked normalised cross-correlation of the pixels at every offset on 2-fold block means, then on
   the full pixels near the best (:func:`shifted_match`), gives the offset, the overlap and ``ncc``;
   at that offset ``ncc_texture`` correlates the two images each smoothed and contrast-normalised
   locally (:func:`texture`), so that every part of the overlap weighs alike.

A pair is a twin when ``ncc_texture`` reaches ``threshold`` (:data:`THRESHOLD`, 0.1): measured on the
shipped model's split (773 pairs), the pairs that are no twin score 0.016 +- 0.017 (max 0.089, those
from 0.05 up inspected: all distinct scenes), every twin 0.13 and up. The pixel correlation alone
does not separate them (a translation lays one bright ship on another: distinct chips reach 0.64).

Limits: translation and cropping only (a copy resampled, rotated or flipped scores as distinct;
:func:`orient` gives a test sample's flipped and rotated forms to search as well); a test sample
with more than ``top_k`` twins whose coarse scores stay below ``coarse_floor`` lists at least
``top_k`` of them, not necessarily all. numpy and scipy only (no torch): the data preparation and
the script import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

#: Least overlap, as a fraction of the smaller image's area; texture correlation from which a pair is
#: a twin (:func:`texture`); coarse block size; candidates per test sample given the exact measurement;
#: coarse score that always earns it; side of the local contrast window (coarse pixels).
MIN_OVERLAP, THRESHOLD, COARSE, TOP_K, COARSE_FLOOR, LOCAL = 0.3, 0.1, 8, 32, 0.5, 7
# TOP_K 32, not 8: on the shipped model's split 8 left 65 twin pairs (20 train/val chips) unmeasured,
# eight test chips having 8 or more twins; at 32 the most any test chip has is 25 (2026-12-05).
#: :func:`texture`: Gaussian smoothing (pixels) and local contrast window (pixels) at full resolution.
TEXTURE_SIGMA, TEXTURE_WINDOW = 1.0, 15
#: Least overlap in pixels for a twin (:func:`find_pairs`): over fewer, the texture correlation of two
#: distinct images at the offset where their pixels correlate best reaches the threshold by chance
#: (measured on distinct speckle chips and on random tiles, 30 pairs a size: max 0.98 over ~80 px,
#: 0.17 over ~2,800, 0.135 over ~5,000, 0.087 from 8,000 up). Every pair measured on SSDD overlaps
#: by 13,900 px or more (its chips are 214 px and up): the floor changes nothing there.
MIN_PIXELS = 10_000


def settings(min_overlap: float = MIN_OVERLAP, threshold: float = THRESHOLD, coarse: int = COARSE,
             top_k: int = TOP_K, coarse_floor: float = COARSE_FLOOR) -> dict[str, Any]:
    """Every setting the result of :func:`find_pairs` depends on (what a cached result is keyed by,
    and what the script records)."""
    return {"min_overlap": min_overlap, "threshold": threshold, "coarse": coarse, "top_k": top_k,
            "coarse_floor": coarse_floor, "local": LOCAL, "texture_sigma": TEXTURE_SIGMA,
            "texture_window": TEXTURE_WINDOW, "min_pixels": MIN_PIXELS}


def grey(pixels: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """The band mean of (bands, H, W) or (H, W) counts, in ``dtype``: float32 for every comparison
    here, float64 for search/dataset.py's near-twin tests (each keeps the precision it was measured in)."""
    return pixels.reshape(-1, *pixels.shape[-2:]).astype(dtype).mean(axis=0)


#: The eight orientations of an image under flips and quarter turns, by name: a copy stored flipped or
#: rotated is a twin in one of them (``scripts/shifted_twins.py --orientations`` searches each test
#: sample in those asked for; :func:`find_pairs` itself compares images as given).
ORIENTATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "flip_rows": np.flipud,
    "flip_cols": np.fliplr,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
}


def check_orientations(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, each a name of :data:`ORIENTATIONS`; a ValueError listing them otherwise."""
    unknown = [name for name in names if name not in ORIENTATIONS]
    if unknown:
        raise ValueError(f"orientation must be one of {sorted(ORIENTATIONS)}; got {unknown}")
    return tuple(names)


def orient(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (H, W) in orientation ``name`` (:data:`ORIENTATIONS`), as a contiguous array."""
    check_orientations((name,))
    return np.ascontiguousarray(ORIENTATIONS[name](image))


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` x ``factor`` block means of (H, W) (the last partial row and column of blocks dropped)."""
    if factor == 1:
        return image.astype(np.float64)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image[:h * factor, :w * factor].astype(np.float64).reshape(h, factor, w, factor).mean(axis=(1, 3))


def local_normalise(image: np.ndarray, size: int = LOCAL) -> np.ndarray:
    """``image`` less its local mean, over its local spread (``size`` window): what the coarse stage
    correlates, so that the mean product over any overlap is about that overlap's correlation."""
    mean = ndimage.uniform_filter(image, size, mode="reflect")
    dev = image - mean
    var = ndimage.uniform_filter(dev * dev, size, mode="reflect")
    return dev / np.sqrt(var + 1e-6 * (image.var() + 1e-12))


def _shifts(n_pad: int, na: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """For each circular index of a correlation of length ``n_pad``: the offset of b's origin in a's
    frame, and how many rows (or columns) a and b then share."""
    k = np.arange(n_pad)
    d = np.where(k < na, k, k - n_pad)
    return d, np.clip(np.minimum(na, d + nb) - np.maximum(0, d), 0, None)


def ncc_map(a: np.ndarray, b: np.ndarray, min_overlap: float = MIN_OVERLAP) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray, np.ndarray]:
    """The normalised cross-correlation of ``a`` and ``b`` (2-D) over their overlap, for b's origin at
    every offset (dy, dx) of a's frame where they share at least ``min_overlap`` of the smaller image
    (NaN elsewhere): means and spreads are those of the overlap itself (masked NCC, by FFT), so that a
    bright patch outside the overlap does not weigh on it.

    Returns (ncc, overlap pixels, dy, dx): ncc and overlap of shape (P, Q), dy of (P,), dx of (Q,)."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    (ha, wa), (hb, wb) = a.shape, b.shape
    shape = (sfft.next_fast_len(ha + hb - 1, real=True), sfft.next_fast_len(wa + wb - 1, real=True))
    fa, fa2 = sfft.rfft2(a, shape), sfft.rfft2(a * a, shape)
    fb, fb2 = np.conj(sfft.rfft2(b, shape)), np.conj(sfft.rfft2(b * b, shape))
    fma, fmb = sfft.rfft2(np.ones_like(a), shape), np.conj(sfft.rfft2(np.ones_like(b), shape))
    dy, oh = _shifts(shape[0], ha, hb)
    dx, ow = _shifts(shape[1], wa, wb)
    n = np.outer(oh, ow).astype(np.float64)
    valid = n >= max(1.0, min_overlap * min(ha * wa, hb * wb))
    safe = np.where(valid, n, 1.0)
    s_ab, s_a, s_aa = sfft.irfft2(fa * fb, shape), sfft.irfft2(fa * fmb, shape), sfft.irfft2(fa2 * fmb, shape)
    s_b, s_bb = sfft.irfft2(fma * fb, shape), sfft.irfft2(fma * fb2, shape)
    cov = s_ab - s_a * s_b / safe
    var_a = np.maximum(s_aa - s_a * s_a / safe, 0.0)
    var_b = np.maximum(s_bb - s_b * s_b / safe, 0.0)
    # a flat overlap (no spread on one side) correlates with nothing
    floor = 1e-9 * safe * max(a.var(), b.var(), 1e-12)
    ok = valid & (var_a > floor) & (var_b > floor)
    ncc = np.full(shape, np.nan)
    ncc[ok] = cov[ok] / np.sqrt(var_a[ok] * var_b[ok])
    return np.clip(ncc, -1.0, 1.0), np.where(valid, n, 0.0), dy, dx


def ncc_at(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> tuple[float, int]:
    """(correlation over the overlap, overlap pixels) of ``a`` and ``b`` with b's origin at (dy, dx)
    of a's frame; (nan, n) for a flat overlap, (nan, 0) for none."""
    ya0, ya1 = max(0, dy), min(a.shape[0], dy + b.shape[0])
    xa0, xa1 = max(0, dx), min(a.shape[1], dx + b.shape[1])
    if ya1 <= ya0 or xa1 <= xa0:
        return float("nan"), 0
    pa = a[ya0:ya1, xa0:xa1].astype(np.float64)
    pb = b[ya0 - dy:ya1 - dy, xa0 - dx:xa1 - dx].astype(np.float64)
    pa, pb = pa - pa.mean(), pb - pb.mean()
    den = np.sqrt((pa * pa).sum() * (pb * pb).sum())
    return (float((pa * pb).sum() / den) if den > 0 else float("nan")), pa.size


def texture(image: np.ndarray) -> np.ndarray:
    """``image`` smoothed a little (``TEXTURE_SIGMA``), less its local mean, over its local spread
    (``TEXTURE_WINDOW``): every part of the image weighs alike, so that the correlation of two such
    images over their overlap says how much of the overlap matches (sea clutter, wakes, land texture),
    not whether their brightest pixels (a ship, a corner reflector) line up. What tells a twin whose
    copy was stretched, quantised or filtered otherwise (SSDD holds many) from a distinct chip that
    a translation search has laid with one ship on another."""
    return local_normalise(ndimage.gaussian_filter(image.astype(np.float64), TEXTURE_SIGMA), TEXTURE_WINDOW)


def shifted_match(a: np.ndarray, b: np.ndarray, min_overlap: float = MIN_OVERLAP, factor: int = 2,
                  radius: int | None = None,
                  textures: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any] | None:
    """Where ``b`` best matches ``a`` (2-D band means) shifted, and how well: the masked NCC at every
    offset on ``factor``-fold block means, then on the full pixels within ``radius`` (default
    ``factor``) of the best. Returns ``dy``, ``dx`` (b's origin in a's pixels: where a twin overlaps,
    b's pixels are a's at ``a[dy:dy + hb, dx:dx + wb]``), ``overlap`` (shared pixels over the smaller
    image's), ``ncc`` (the correlation of the pixels over the overlap, full resolution),
    ``ncc_coarse`` (on the block means) and ``ncc_texture`` (of :func:`texture` of each, over the
    same overlap at the same offset: the twin test); None when no offset gives ``min_overlap``.
    ``textures``: :func:`texture` of a and b, if already made."""
    ca, cb = block_mean(a, factor), block_mean(b, factor)
    if min(ca.shape + cb.shape) < 2:
        ca, cb, factor = a.astype(np.float64), b.astype(np.float64), 1
    ncc, _, dys, dxs = ncc_map(ca, cb, min_overlap)
    if np.all(np.isnan(ncc)):
        return None
    i, j = np.unravel_index(np.nanargmax(ncc), ncc.shape)
    coarse = float(ncc[i, j])
    radius = factor if radius is None else radius
    smaller = min(a.size, b.size)
    best = (-2.0, 0, 0, 0)
    for dy in range(int(dys[i]) * factor - radius, int(dys[i]) * factor + radius + 1):
        for dx in range(int(dxs[j]) * factor - radius, int(dxs[j]) * factor + radius + 1):
            r, n = ncc_at(a, b, dy, dx)
            if n >= min_overlap * smaller and r == r and r > best[0]:
                best = (r, dy, dx, n)
    if best[0] < -1.5:
        return None
    r, dy, dx, n = best
    ta, tb = textures if textures is not None else (texture(a), texture(b))
    r_texture, _ = ncc_at(ta, tb, dy, dx)
    return {"dy": dy, "dx": dx, "overlap": round(n / smaller, 4), "ncc": round(r, 4), "ncc_coarse": round(coarse, 4),
            "ncc_texture": round(r_texture, 4) if r_texture == r_texture else 0.0}


def is_twin(match: dict[str, Any] | None, threshold: float = THRESHOLD) -> bool:
    """Whether a :func:`shifted_match` says twin: texture correlation at least ``threshold`` (the
    overlap's size, :data:`MIN_PIXELS`, is :func:`find_pairs`'s to check: the match holds only its
    fraction)."""
    return match is not None and match["ncc_texture"] >= threshold


def overlap_pixels(a_shape: Sequence[int], b_shape: Sequence[int], dy: int, dx: int) -> int:
    """How many pixels (H, W) images of ``a_shape`` and ``b_shape`` share with b's origin at (dy, dx)
    of a's frame."""
    rows = min(a_shape[0], dy + b_shape[0]) - max(0, dy)
    cols = min(a_shape[1], dx + b_shape[1]) - max(0, dx)
    return max(0, rows) * max(0, cols)


def coarse_scores(tests: list[np.ndarray], pool: list[np.ndarray], min_overlap: float = MIN_OVERLAP,
                  chunk: int = 96) -> np.ndarray:
    """(len(tests), len(pool)) coarse match scores: the best mean product over an overlap of at least
    ``min_overlap`` of the smaller image, of locally normalised coarse images (:func:`local_normalise`),
    one FFT per pair (the pool in chunks of ``chunk``, to bound memory). -inf where no offset overlaps
    enough."""
    ht, wt = max(t.shape[0] for t in tests), max(t.shape[1] for t in tests)
    hp, wp = max(p.shape[0] for p in pool), max(p.shape[1] for p in pool)
    shape = (sfft.next_fast_len(ht + hp - 1, real=True), sfft.next_fast_len(wt + wp - 1, real=True))
    ftests = [sfft.rfft2(t.astype(np.float32), shape) for t in tests]
    scores = np.full((len(tests), len(pool)), -np.inf, np.float32)
    for start in range(0, len(pool), chunk):
        block = pool[start:start + chunk]
        stack = np.zeros((len(block), *shape), np.float32)
        for k, p in enumerate(block):
            stack[k, :p.shape[0], :p.shape[1]] = p
        fpool = np.conj(sfft.rfft2(stack, axes=(1, 2)))
        del stack
        hb = np.array([p.shape[0] for p in block])
        wb = np.array([p.shape[1] for p in block])
        for t, (ta, fa) in enumerate(zip(tests, ftests)):
            corr = sfft.irfft2(fa[None] * fpool, shape, axes=(1, 2))
            oh = np.stack([_shifts(shape[0], ta.shape[0], h)[1] for h in hb]).astype(np.float32)
            ow = np.stack([_shifts(shape[1], ta.shape[1], w)[1] for w in wb]).astype(np.float32)
            n = oh[:, :, None] * ow[:, None, :]
            least = min_overlap * np.minimum(ta.size, hb * wb).astype(np.float32)
            ok = n >= np.maximum(least, 1.0)[:, None, None]
            corr = np.where(ok, corr / np.where(ok, n, 1.0), -np.inf)
            scores[t, start:start + len(block)] = corr.reshape(len(block), -1).max(axis=1)
    return scores


def find_pairs(images: Mapping[int, np.ndarray], test: Sequence[int], others: Sequence[int], *,
               min_overlap: float = MIN_OVERLAP, threshold: float = THRESHOLD, coarse: int = COARSE,
               top_k: int = TOP_K, coarse_floor: float = COARSE_FLOOR,
               log: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Every (test, other) pair the exact stage measured, in test order and coarse rank within each:
    ``test`` and ``other`` (the ids), the :func:`shifted_match` fields (``dy``, ``dx``: the other's
    origin in the test image's pixels; ``overlap``, ``ncc``, ``ncc_coarse``, ``ncc_texture``),
    ``coarse_score``, ``coarse_rank`` and ``twin`` (:func:`is_twin`, over at least :data:`MIN_PIXELS`
    shared pixels). ``images``: the band mean
    (:func:`grey`) of every id of ``test`` and ``others``. Empty when either list is."""
    test, others = [int(i) for i in test], [int(j) for j in others]
    if not test or not others:
        return []
    small = {i: local_normalise(block_mean(images[i], coarse)) for i in {*test, *others}}
    t0 = time.time()
    scores = coarse_scores([small[i] for i in test], [small[j] for j in others], min_overlap)
    if log:
        log(f"coarse: {len(test)} x {len(others)} pairs in {time.time() - t0:.1f} s")
    t1 = time.time()
    textures: dict[int, np.ndarray] = {}

    def tex(i: int) -> np.ndarray:
        if i not in textures:
            textures[i] = texture(images[i])
        return textures[i]

    pairs: list[dict[str, Any]] = []
    for t, i in enumerate(test):
        order = np.argsort(-scores[t])
        chosen = [int(k) for k in order[:top_k]] + [int(k) for k in order[top_k:] if scores[t, k] >= coarse_floor]
        for rank, k in enumerate(chosen):
            j = others[k]
            match = shifted_match(images[i], images[j], min_overlap, textures=(tex(i), tex(j)))
            if match is not None:
                pairs.append({"test": i, "other": j, **match, "coarse_score": round(float(scores[t, k]), 4),
                              "coarse_rank": rank, "twin": is_twin(match, threshold) and overlap_pixels(
                                  images[i].shape, images[j].shape, match["dy"], match["dx"]) >= MIN_PIXELS})
    if log:
        log(f"exact: {len(pairs)} pairs in {time.time() - t1:.1f} s")
    return pairs

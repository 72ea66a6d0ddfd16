"""Test samples of a split whose image is a shifted or cropped copy of a training or validation sample.

search/dataset.py keeps exact twins (same pixels) and near twins (the same image re-cut a few rows or
columns larger or smaller, compared anchored at each of the four corners) in one part of the split.
A copy that is shifted, or a crop out of the middle of another chip (SSDD holds overlapping crops of
one scene, often stretched, quantised or re-compressed otherwise), escapes both. This measures how
many test samples of a ``split.json`` have such a twin in train or val:

    PYTHONWARNINGS=ignore PYTHONPATH=$PWD .venv/bin/python scripts/shifted_twins.py \
        --split out/sar8/data/split.json --out out/sar8/shifted_twins.json

Two stages, so that SSDD's ~950 samples take about a minute and a half on two cores:

1. coarse, every (test, train-or-val) pair: ``--coarse``-fold block means, each contrast-normalised
   locally (zero mean, unit spread in a small window), correlated at every offset where the two
   overlap by at least ``--min-overlap`` of the smaller image, by one FFT per pair; the mean product
   over the overlap ranks the candidates;
2. exact, the ``--top-k`` best candidates of each test sample (and any above ``--coarse-floor``): the
   masked normalised cross-correlation of the pixels (means and spreads of the overlap itself) at
   every offset on 2-fold block means, then on the full pixels within 2 pixels of the best, gives the
   offset, the overlap and ``ncc``; at that offset, ``ncc_texture`` correlates the two images each
   smoothed (1 px) and contrast-normalised in a 15 px window (:func:`texture`), so that every part of
   the overlap weighs alike.

A pair is a twin when ``ncc_texture`` reaches ``--threshold`` (0.1). The pixel correlation alone does
not separate the groups: a translation lays one bright ship on another, and two distinct chips reach
0.5-0.64, while twins whose copy was stretched or re-compressed otherwise fall to 0.2-0.8. On models/sar's
split (out/sar8, 773 pairs measured) the texture correlation of the pairs that are no twin is
0.016 +- 0.017 (max 0.089; those from 0.05 up inspected: all distinct scenes), and every pair from
0.13 up, inspected down to 0.5, shows the same ships, wakes and coast at the same pixel scale; 0.1 lies in
that gap, five spreads above the distinct pairs' mean. The script prints the histogram, those statistics
and the count at other thresholds (and at thresholds of the pixel correlation, for comparison).

Only translation and cropping: a copy resampled to another pixel size, rotated or flipped scores as
distinct (SSDD's twins measured so far are all at one scale). A test sample with more twins than
``--top-k`` lists at least ``--top-k`` of them. Writes JSON: the settings, every pair stage 2 measured
(offset, overlap, both correlations, twin or not, whether search/dataset.py's corner-anchored
near-twin rule would catch it), each test sample's best twin, and a summary (how many test samples
have a twin, which, and which have none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Least overlap, as a fraction of the smaller image's area; texture correlation from which a pair is
#: a twin (:func:`texture`); coarse block size; candidates per test sample given the exact measurement;
#: coarse score that always earns it; side of the local contrast window (coarse pixels).
MIN_OVERLAP, THRESHOLD, COARSE, TOP_K, COARSE_FLOOR, LOCAL = 0.3, 0.1, 8, 8, 0.5, 7
#: :func:`texture`: Gaussian smoothing (pixels) and local contrast window (pixels) at full resolution.
TEXTURE_SIGMA, TEXTURE_WINDOW = 1.0, 15


def grey(pixels: np.ndarray) -> np.ndarray:
    """The band mean of (bands, H, W) or (H, W) counts, float32 (what every comparison uses)."""
    return pixels.reshape(-1, *pixels.shape[-2:]).astype(np.float32).mean(axis=0)


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
    (NaN elsewhere): means and spreads are those of the overlap itself (masked NCC, by FFT).

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
    """Whether a :func:`shifted_match` says twin: texture correlation at least ``threshold``."""
    return match is not None and match["ncc_texture"] >= threshold


def coarse_scores(tests: list[np.ndarray], pool: list[np.ndarray], min_overlap: float = MIN_OVERLAP,
                  chunk: int = 96) -> np.ndarray:
    """(len(tests), len(pool)) coarse match scores: the best mean product over an overlap of at least
    ``min_overlap`` of the smaller image, of locally normalised coarse images (:func:`local_normalise`),
    one FFT per pair. -inf where no offset overlaps enough."""
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


def corner_twin(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether search/dataset.py's near-twin rule would join ``a`` and ``b`` (sides within
    ``_NEAR_SIDE``, same on a window anchored at one of the four corners): the pairs it already keeps
    on one side of a split made today."""
    from search.dataset import _NEAR_SIDE, _same_image

    if not all(abs(p - q) <= _NEAR_SIDE * max(p, q) for p, q in zip(a.shape, b.shape)):
        return False
    return bool(np.array_equal(a, b) or _same_image(a[None], b[None]))


def load_split(split_path: Path, remap: list[tuple[str, str]] | None = None) -> tuple[dict[str, Any], Any]:
    """The split.json and its source (opened by flightsim.sources.open_source); ``remap`` replaces
    path prefixes (OLD, NEW) in the source specs (the data moved)."""
    from flightsim.sources import open_source

    split = json.loads(split_path.read_text())
    spec = split["source"]
    specs = [spec] if isinstance(spec, str) else list(spec)
    for old, new in remap or []:
        specs = [s.replace(old, new, 1) for s in specs]
    source = open_source(specs[0] if isinstance(spec, str) else specs)
    names = split.get("names", {})
    if names and len(names) != len(source):
        raise ValueError(f"{split_path} names {len(names)} samples; its source has {len(source)}")
    return split, source


def find_twins(split: dict[str, Any], source: Any, *, min_overlap: float = MIN_OVERLAP, threshold: float = THRESHOLD,
               coarse: int = COARSE, top_k: int = TOP_K, coarse_floor: float = COARSE_FLOOR,
               log: Any = print) -> dict[str, Any]:
    """Every measured (test, train-or-val) pair and the twins among them (see the module docstring)."""
    t0 = time.time()
    test = [int(i) for i in split["test"]]
    others = [(int(i), part) for part in ("train", "val") for i in split[part]]
    wanted = sorted(set(test) | {i for i, _ in others})
    images: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    for i in wanted:
        sample = source[i]
        pixels = sample.read()
        expected = split.get("names", {}).get(str(i))
        if expected is not None and sample.name != expected:
            raise ValueError(f"sample {i} is {sample.name!r}; the split names it {expected!r}")
        names[i] = sample.name
        images[i] = grey(pixels)
    log(f"read {len(images)} samples in {time.time() - t0:.1f} s")
    small = {i: local_normalise(block_mean(images[i], coarse)) for i in wanted}
    t1 = time.time()
    scores = coarse_scores([small[i] for i in test], [small[i] for i, _ in others], min_overlap)
    log(f"coarse: {len(test)} x {len(others)} pairs in {time.time() - t1:.1f} s")
    t2 = time.time()
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
            j, part = others[k]
            match = shifted_match(images[i], images[j], min_overlap, textures=(tex(i), tex(j)))
            if match is None:
                continue
            twin = is_twin(match, threshold)
            pairs.append({"test": names[i], "test_id": i, "other": names[j], "other_id": j, "other_split": part,
                          "test_shape": list(images[i].shape), "other_shape": list(images[j].shape),
                          **match, "coarse_score": round(float(scores[t, k]), 4), "coarse_rank": rank,
                          "twin": twin,
                          "caught_by_corner_rule": corner_twin(images[i], images[j]) if twin else False})
    log(f"exact: {len(pairs)} pairs in {time.time() - t2:.1f} s")
    pairs.sort(key=lambda p: -p["ncc_texture"])
    twins = [p for p in pairs if p["twin"]]
    per_test: dict[str, Any] = {}
    for p in twins:  # best first
        entry = per_test.setdefault(p["test"], {"twins": 0, "best": {k: p[k] for k in (
            "other", "other_split", "dy", "dx", "overlap", "ncc", "ncc_texture")}, "others": []})
        entry["twins"] += 1
        entry["others"].append(p["other"])
    new = sorted(n for n, e in per_test.items() if not any(
        p["caught_by_corner_rule"] for p in twins if p["test"] == n))
    return {"settings": {"min_overlap": min_overlap, "threshold": threshold, "coarse": coarse, "top_k": top_k,
                         "coarse_floor": coarse_floor, "local": LOCAL, "texture_sigma": TEXTURE_SIGMA,
                         "texture_window": TEXTURE_WINDOW},
            "summary": {"test_samples": len(test), "train_val_samples": len(others), "pairs_measured": len(pairs),
                        "twin_pairs": len(twins), "test_with_twin": len(per_test),
                        "test_names_with_twin": sorted(per_test),
                        "test_names_without_twin": sorted({names[i] for i in test} - set(per_test)),
                        "test_with_twin_missed_by_corner_rule": len(new), "test_names_missed_by_corner_rule": new,
                        "test_with_twin_at": sensitivity(pairs),
                        "seconds": round(time.time() - t0, 1)},
            "distribution": distribution([p["ncc_texture"] for p in pairs], threshold),
            "per_test": dict(sorted(per_test.items())),
            "pairs": pairs}


def sensitivity(pairs: list[dict[str, Any]]) -> dict[str, int]:
    """How many test samples would have a twin at other thresholds: of the texture correlation (the
    twin test), and of the plain correlation of the pixels (``ncc``), for comparison."""
    out = {}
    for key, levels in (("ncc_texture", (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)), ("ncc", (0.7, 0.8, 0.9, 0.95, 0.99))):
        for level in levels:
            out[f"{key}>={level}"] = len({p["test"] for p in pairs if p[key] >= level})
    return out


#: :func:`distribution`'s histogram edges: fine where the distinct pairs lie, coarse above.
_EDGES = (-1.0, -0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def distribution(values: list[float], threshold: float) -> dict[str, Any]:
    """The measured texture correlations: a histogram; the mean, spread and largest of those below
    ``threshold`` (the distinct pairs: the best candidates of each test sample that are no twin), the
    least above it; and the largest gap between two sorted values below 0.5 (where the two groups part)."""
    v = np.sort(np.asarray(values, float))
    hist, _ = np.histogram(v, _EDGES)
    below, above = v[v < threshold], v[v >= threshold]
    low = v[v < 0.5]
    gap = None
    if len(low) > 1:
        k = int(np.argmax(np.diff(low)))
        gap = [round(float(low[k]), 4), round(float(low[k + 1]), 4)]
    return {"histogram": {f"{lo:.2f}..{min(hi, 1.0):.2f}": int(c) for lo, hi, c in zip(_EDGES[:-1], _EDGES[1:], hist)},
            "below_threshold": {"n": int(len(below)), "mean": round(float(below.mean()), 4) if len(below) else None,
                                "sd": round(float(below.std()), 4) if len(below) else None,
                                "max": round(float(below.max()), 4) if len(below) else None},
            "at_or_above_threshold": {"n": int(len(above)),
                                      "min": round(float(above.min()), 4) if len(above) else None},
            "largest_gap_below_0.5": gap}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, type=Path, help="a search's data/split.json")
    ap.add_argument("--out", type=Path, help="JSON to write (every measured pair and the summary)")
    ap.add_argument("--remap", nargs=2, action="append", metavar=("OLD", "NEW"), default=[],
                    help="replace a path prefix of the split's source specs (data moved)")
    ap.add_argument("--min-overlap", type=float, default=MIN_OVERLAP)
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--coarse", type=int, default=COARSE)
    ap.add_argument("--top-k", type=int, default=TOP_K)
    ap.add_argument("--coarse-floor", type=float, default=COARSE_FLOOR)
    args = ap.parse_args(argv)
    split, source = load_split(args.split, [tuple(r) for r in args.remap])
    result = find_twins(split, source, min_overlap=args.min_overlap, threshold=args.threshold, coarse=args.coarse,
                        top_k=args.top_k, coarse_floor=args.coarse_floor)
    result = {"split": str(args.split), **result}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    s, d = result["summary"], result["distribution"]
    print("texture correlation over the overlap, every measured pair (each test sample's best candidates):")
    for k, c in d["histogram"].items():
        if c:
            print(f"  {k:>11}: {c:5d} {'#' * min(60, c)}")
    b, a = d["below_threshold"], d["at_or_above_threshold"]
    print(f"below threshold {args.threshold}: {b['n']} pairs, mean {b['mean']}, sd {b['sd']}, max {b['max']}; "
          f"at or above: {a['n']} pairs, min {a['min']}; largest gap below 0.5: {d['largest_gap_below_0.5']}")
    print("test samples with a twin at other thresholds:", s["test_with_twin_at"])
    print("each test sample with a twin, its best (dy, dx = the other's origin in the test chip's pixels):")
    for name, e in result["per_test"].items():
        p = e["best"]
        print(f"  {name:<28} {p['other']:<14} {p['other_split']:<5} offset ({p['dy']:4d}, {p['dx']:4d}) overlap "
              f"{p['overlap']:.2f} ncc {p['ncc']:.3f} texture {p['ncc_texture']:.3f}  ({e['twins']} twin(s))")
    print(f"{s['test_with_twin']} of {s['test_samples']} test samples have a shifted/cropped twin in train or val "
          f"({s['test_with_twin_missed_by_corner_rule']} of them none that search/dataset.py's corner rule "
          f"catches); {s['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

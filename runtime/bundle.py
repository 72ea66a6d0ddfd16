"""Flight model bundles: an FP16 IR and the manifest that says how to feed it and read it.

A bundle is a directory holding ``model.xml``, ``model.bin`` and ``manifest.json``. The manifest
records the sha256 of both IR files; the bundle's id is the sha256 of the manifest itself, so it
covers every byte of the model. Optionally ``compiled/<TARGET>.blob`` with its ``<TARGET>.json``
record: the IR compiled on the ground for one target and toolkit (:mod:`runtime.compiled`), tied
to the IR's sha256 and checked against its own; a blob is an accelerator of the IR, not part of the
model's identity. The runtime refuses a bundle whose files do not match, and installs
a new one into its store (runtime/store.py) atomically, keeping the last good one for rollback.

Length: the bundle's format in one place. The manifest's schema (validate_manifest and its checks
of the normalisation, input type, golden table and second stage), the reader and the writer share
its constants and its one error type, and a payload engineer reads what a bundle may hold here;
the store, compiled blobs and signatures are modules of their own.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.atomic import sync_dir, write_atomic
from runtime.config import check_number
from runtime.discriminate import SecondStage, discriminator_from_manifest
from runtime.fit import check_trained_for
from runtime.protocol import TILE_DTYPES

MANIFEST = "manifest.json"
IR_FILES = ("model.xml", "model.bin")
#: Files a bundle may add, checksummed in the manifest like the IR: the golden tile (runtime.golden).
GOLDEN_FILE = "golden.npz"
OPTIONAL_FILES = (GOLDEN_FILE,)
COMPILED_DIR = "compiled"
#: The format of a compiled artefact's record (``compiled/<TARGET>.json``, runtime.compiled).
COMPILED_FORMAT = "vessel-compiled/1"
SIGNATURE_FILE = "signature.json"
BUNDLE_FORMAT = "vessel-bundle/1"
NORMALIZATION_PLACES = ("host", "ir")
#: ``input.normalization.scale``: counts as they are, or log(1 + counts) before mean and std (SAR
#: amplitude spans decades); absent means linear. Only the host applies a log.
NORMALIZATION_SCALES = ("linear", "log")
#: Element types a model's input may have; integer inputs are normalised inside the IR.
INPUT_DTYPES = ("float32", "uint8", "uint16")


class BundleError(ValueError):
    """A bundle is malformed or does not match its checksums."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle held in memory: the manifest and the bytes of each file."""

    manifest: dict[str, Any]
    files: dict[str, bytes]  # model.xml, model.bin
    manifest_bytes: bytes
    #: target -> (record JSON bytes, blob bytes): compiled artefacts (runtime.compiled)
    compiled: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    #: the ground's signature record (runtime.signing), signature.json beside the bundle; None: unsigned
    signature: bytes | None = None

    @functools.cached_property
    def id(self) -> str:
        """sha256 of the manifest, which itself holds the sha256 of each IR file; computed once
        (the runtime asks for it for every tile)."""
        return sha256(self.manifest_bytes)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["output"]["threshold"])

    @property
    def min_area_px(self) -> int | None:
        """Smallest vessel the model's makers stand behind, in pixels (``output.min_area_px``);
        None: the runtime's ``[vectorize] min_area_px``."""
        value = self.manifest["output"].get("min_area_px")
        return None if value is None else int(value)

    @property
    def min_score(self) -> float:
        """Lowest mean probability of a vessel the model's makers stand behind (``output.min_score``,
        chosen on validation data like the threshold); 0: every component above the threshold."""
        return float(self.manifest["output"].get("min_score", 0.0))

    @functools.cached_property
    def discriminator(self) -> SecondStage | None:
        """The second stage that keeps or drops each component (``output.discriminator``,
        :mod:`runtime.discriminate`); None: every component that passes the cuts above. Parsed
        once: the runtime asks for it on every tile."""
        table = self.manifest["output"].get("discriminator")
        return None if table is None else discriminator_from_manifest(table)

    def frames(self) -> list[bytes]:
        """The payload frames of a ``load_model`` command: manifest, then each IR file, then a
        (record, blob) pair per compiled artefact."""
        pairs = [frame for target in sorted(self.compiled) for frame in self.compiled[target]]
        return [self.manifest_bytes, *(self.files[name] for name in file_names(self.manifest)), *pairs]


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check the fields the runtime relies on; raises BundleError naming the first problem."""
    if not isinstance(manifest, dict):
        raise BundleError("manifest is not a JSON object")
    for key, kind in (("format", str), ("name", str), ("input", dict), ("output", dict), ("files", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BundleError(f"manifest field {key!r} missing or not a {kind.__name__}")
    if manifest["format"] != BUNDLE_FORMAT:
        raise BundleError(f"manifest format {manifest['format']!r}; valid: [{BUNDLE_FORMAT!r}]")
    inp = manifest["input"]
    shape = inp.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise BundleError(f"input.shape must be [N, C, H, W] positive integers, got {shape!r}")
    if inp.get("layout") != "NCHW":
        raise BundleError(f"input.layout {inp.get('layout')!r}; valid: ['NCHW']")
    norm = inp.get("normalization")
    if not isinstance(norm, dict) or norm.get("where") not in NORMALIZATION_PLACES:
        raise BundleError(f"input.normalization.where must be one of {list(NORMALIZATION_PLACES)}")
    dtype = inp.get("dtype", "float32")
    if dtype not in INPUT_DTYPES:
        raise BundleError(f"input.dtype {dtype!r}; valid: {list(INPUT_DTYPES)}")
    if dtype != "float32" and norm["where"] != "ir":
        raise BundleError(f"input.dtype {dtype!r} takes raw counts: input.normalization.where must be 'ir'")
    scale = norm.get("scale", "linear")
    if scale not in NORMALIZATION_SCALES:
        raise BundleError(f"input.normalization.scale {scale!r}; valid: {list(NORMALIZATION_SCALES)}")
    if scale != "linear" and norm["where"] != "host":
        raise BundleError(f"input.normalization.scale {scale!r} is applied on the host only: where must be 'host'")
    bands = inp.get("bands")
    if bands is not None and not (isinstance(bands, list) and len(bands) == shape[1]
                                  and all(isinstance(b, str) and b for b in bands)):
        # the runtime matches a tile's bands to these names and feeds them in this order
        raise BundleError(f"input.bands must name each of the input's {shape[1]} bands (input.shape[1]); got {bands!r}")
    _check_band_values(norm, shape[1], dtype)
    _check_input_holds_counts(manifest, dtype)
    threshold = manifest["output"].get("threshold")
    if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise BundleError(f"output.threshold must be a number in (0, 1), got {threshold!r}")
    min_area = manifest["output"].get("min_area_px")
    if min_area is not None and not (isinstance(min_area, int) and not isinstance(min_area, bool) and min_area >= 0):
        raise BundleError(f"output.min_area_px must be a non-negative integer, got {min_area!r}")
    min_score = manifest["output"].get("min_score", 0.0)
    if not (isinstance(min_score, (int, float)) and not isinstance(min_score, bool) and 0 <= min_score < 1):
        raise BundleError(f"output.min_score must be a number in [0, 1), got {min_score!r}")
    if manifest["output"].get("discriminator") is not None:
        try:
            discriminator_from_manifest(manifest["output"]["discriminator"])
        except ValueError as exc:
            raise BundleError(f"output.discriminator: {exc}") from None
    for name in IR_FILES:
        if not isinstance(manifest["files"].get(name), str):
            raise BundleError(f"manifest files.{name} (its sha256) is missing")
    unknown = [n for n in manifest["files"] if n not in (*IR_FILES, *OPTIONAL_FILES)]
    if unknown:
        raise BundleError(f"manifest files {unknown}; valid: {[*IR_FILES, *OPTIONAL_FILES]}")
    if (GOLDEN_FILE in manifest["files"]) != isinstance(manifest.get("golden"), dict):
        raise BundleError(f"a golden tile needs both files.{GOLDEN_FILE} and the manifest's golden table")
    if GOLDEN_FILE in manifest["files"]:
        _check_golden_table(manifest["golden"])
    # Absent (or null): the model does not say, and no scene is judged against it (runtime.fit).
    if manifest.get("trained_for") is not None:
        try:
            check_trained_for(manifest["trained_for"])
        except ValueError as exc:
            raise BundleError(str(exc)) from None
    return manifest


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_band_values(norm: dict[str, Any], bands: int, dtype: str) -> None:
    """``input.normalization``'s per-band numbers: ``mean`` and ``std`` (required on the host, where
    they are applied; recorded when the IR applies them) finite, every ``std`` above 0; ``pad``
    finite, and for an integer input type whole counts that type holds, since the runtime fills an
    edge tile's margin with them in that type."""
    for key in ("mean", "std", "pad"):
        values = norm.get(key)
        if values is None and not (key != "pad" and norm["where"] == "host"):
            continue
        if not (isinstance(values, list) and len(values) == bands and all(_is_number(v) for v in values)):
            raise BundleError(f"input.normalization.{key} must list one finite number per band ({bands}); "
                              f"got {values!r}")
    # null is "not recorded" (allowed where the IR normalises), as an absent key: it has no bands to check
    if norm.get("std") is not None and any(v <= 0 for v in norm["std"]):
        raise BundleError(f"input.normalization.std must be > 0 for every band; got {norm['std']!r}")
    if norm.get("pad") is not None and dtype != "float32":
        top = int(np.iinfo(dtype).max)
        if not all(float(v).is_integer() and 0 <= v <= top for v in norm["pad"]):
            raise BundleError(f"input.normalization.pad must be whole {dtype} counts (0 to {top}); got {norm['pad']!r}")


def _check_input_holds_counts(manifest: dict[str, Any], dtype: str) -> None:
    """An integer input type must hold the counts the model was trained for (``trained_for.counts``)
    and its golden tile's (``golden.dtype``): a uint8 model of a uint16-trained network would refuse
    every tile of its own data, its golden tile first."""
    if dtype == "float32":
        return
    trained = manifest.get("trained_for") if isinstance(manifest.get("trained_for"), dict) else {}
    counts = trained.get("counts")
    sources = [("trained_for.counts", c) for c in ([counts] if isinstance(counts, str) else counts or [])]
    golden = manifest.get("golden") if isinstance(manifest.get("golden"), dict) else {}
    if golden.get("dtype") is not None:
        sources.append(("golden.dtype", golden["dtype"]))
    for where, count_type in sources:
        if count_type in TILE_DTYPES:
            try:
                check_input_holds(dtype, [count_type], "input.dtype", where)
            except ValueError as exc:
                raise BundleError(str(exc)) from None


def check_input_holds(dtype: str, counts: list[str], what: str, whose: str) -> None:
    """A ValueError unless a model input of ``dtype`` takes every count type in ``counts`` without
    loss (the runtime refuses a tile it cannot: runtime.preprocess); ``what`` names the setting and
    ``whose`` the counts in the message."""
    for count_type in counts:
        if not np.can_cast(count_type, dtype, "safe"):
            valid = [t for t in INPUT_DTYPES if np.can_cast(count_type, t, "safe")]
            raise ValueError(f"{what} {dtype!r} cannot hold the {count_type} counts of {whose}; "
                             f"valid for them: {valid}")


def _check_golden_table(table: dict[str, Any]) -> None:
    """The golden table's tolerances (runtime.golden judges the tile by them, so both are required:
    the ground that measured the tile says how close the payload must come) and the type of its
    counts (which stands in for ``trained_for.counts`` where that is not given, runtime.fit)."""
    for key in ("max_mean_abs", "min_mask_iou"):
        if key not in table:
            raise BundleError(f"golden.{key} is missing: the golden tile is judged by it (with_golden writes it)")
        try:
            check_number(f"golden.{key}", table[key], 0.0, high=1.0)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
    dtype = table.get("dtype")
    if dtype is not None and dtype not in TILE_DTYPES:
        raise BundleError(f"golden.dtype {dtype!r}; valid: {list(TILE_DTYPES)}")


def parse_manifest(manifest_bytes: bytes) -> dict[str, Any]:
    """A manifest's bytes as a validated dict; BundleError saying what is wrong otherwise."""
    try:
        manifest = json.loads(bytes(manifest_bytes).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"manifest is not UTF-8 JSON: {exc}") from None
    return validate_manifest(manifest)


def rewritable_manifest(bundle: Bundle) -> dict[str, Any]:
    """A deep copy of the bundle's manifest without what :func:`write_bundle` fills in itself
    (format, files, created): the start of a new manifest for the same model."""
    manifest = json.loads(bundle.manifest_bytes)
    for key in ("format", "files", "created"):
        manifest.pop(key, None)
    return manifest


def rewrite_bundle(bundle: Bundle, out_dir: str | os.PathLike[str], manifest: dict[str, Any],
                   extra: dict[str, bytes] | None = None) -> Bundle:
    """Write ``bundle``'s model (its IR and optional files, ``extra`` added or replacing) under a
    new ``manifest`` (from :func:`rewritable_manifest`)."""
    return write_bundle(out_dir, bundle.files["model.xml"], bundle.files["model.bin"], manifest,
                        {**extra_files(bundle), **(extra or {})})


def extra_files(bundle: Bundle) -> dict[str, bytes]:
    """The bundle's optional files (the golden tile), for writing a new manifest over the same model."""
    return {n: d for n, d in bundle.files.items() if n in OPTIONAL_FILES}


def file_names(manifest: dict[str, Any]) -> list[str]:
    """The bundle's files in frame order: the IR, then the optional ones it has."""
    return [*IR_FILES, *(n for n in OPTIONAL_FILES if n in manifest["files"])]


def from_frames(manifest_bytes: bytes, files: dict[str, bytes], manifest_sha256: str | None = None,
                compiled: list[tuple[bytes, bytes]] | None = None) -> Bundle:
    """Verify a bundle received as bytes: the manifest's own sha256 if given, then each file's,
    then each compiled artefact's (record, blob) against its record and the IR."""
    if manifest_sha256 is not None and sha256(manifest_bytes) != manifest_sha256:
        raise BundleError(f"manifest sha256 is {sha256(manifest_bytes)}, sender says {manifest_sha256}")
    manifest = parse_manifest(manifest_bytes)
    for name in file_names(manifest):
        if name not in files:
            raise BundleError(f"bundle has no {name}")
        got = sha256(files[name])
        if got != manifest["files"][name]:
            raise BundleError(f"{name} sha256 is {got}, manifest says {manifest['files'][name]}")
    artefacts = {}
    for record_bytes, blob in compiled or []:
        record = _compiled_record(record_bytes, blob, manifest)
        if record["target"] in artefacts:  # which one would run would depend on their order
            raise BundleError(f"two compiled artefacts for {record['target']}")
        artefacts[record["target"]] = (record_bytes, blob)
    return Bundle(manifest=manifest, files={n: files[n] for n in file_names(manifest)}, manifest_bytes=manifest_bytes,
                  compiled=artefacts)


def _compiled_record(record_bytes: bytes, blob: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
    """The record of a compiled artefact, checked: JSON, the blob's sha256, and the IR it was made
    from (a blob of another IR would run another model)."""
    try:
        record = json.loads(record_bytes.decode("utf-8"))
        target = record["target"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BundleError(f"compiled artefact record is not a JSON object with a target: {exc}") from None
    if not (isinstance(target, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", target)):
        raise BundleError(f"compiled artefact target {target!r} is not a device name")
    if record.get("format") != COMPILED_FORMAT:
        raise BundleError(f"compiled/{target}.json has format {record.get('format')!r}; this runtime reads "
                          f"[{COMPILED_FORMAT!r}]")
    if sha256(blob) != record.get("blob_sha256"):
        raise BundleError(f"compiled/{target}.blob sha256 is {sha256(blob)}, its record says "
                          f"{record.get('blob_sha256')}")
    if not made_from_ir(record.get("ir_sha256"), manifest):
        raise BundleError(f"compiled/{target}.blob was compiled from another IR ({record.get('ir_sha256')}), "
                          f"not this bundle's ({ir_checksums(manifest)})")
    return record


def ir_checksums(manifest: dict[str, Any]) -> dict[str, str]:
    """The sha256 of the IR files alone (``model.xml``, ``model.bin``): what a compiled blob is made
    from, and so what its record names (``ir_sha256``, :mod:`runtime.compiled`)."""
    return {name: manifest["files"][name] for name in IR_FILES}


def made_from_ir(record_ir: Any, manifest: dict[str, Any]) -> bool:
    """Whether a compiled record's ``ir_sha256`` names this manifest's IR files.

    Only the IR counts: a blob is the IR compiled, and a golden tile added, replaced or removed after
    compiling changes nothing the blob was made from. (Records made before 2026-12-06 list every file
    of the manifest, the golden tile's too; their IR entries are what is compared, so they stay valid.)
    Until then a golden tile written into a compiled bundle discarded its blobs.
    """
    return isinstance(record_ir, dict) and all(record_ir.get(name) == sha for name, sha in
                                               ir_checksums(manifest).items())


def read_bundle(path: str | os.PathLike[str], skip_compiled: tuple[str, ...] = ()) -> Bundle:
    """Read and verify a bundle directory.

    ``skip_compiled``: targets whose ``compiled/<TARGET>.json`` and ``.blob`` are not read at all
    (``runtime compile`` of a target replaces its artefact: one that is damaged or of another IR must
    not stop the compile that repairs it).
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory")
    missing = [n for n in (MANIFEST, *IR_FILES) if not (path / n).is_file()]
    if missing:
        raise BundleError(f"{path}: missing {', '.join(missing)}")
    optional = {n: (path / n).read_bytes() for n in OPTIONAL_FILES if (path / n).is_file()}
    records = [r for r in sorted((path / COMPILED_DIR).glob("*.json")) if r.stem not in skip_compiled]
    compiled = []
    for record in records:
        if not record.with_suffix(".blob").is_file():
            raise BundleError(f"{path}: {record.relative_to(path)} has no .blob beside it")
        compiled.append((record.read_bytes(), record.with_suffix(".blob").read_bytes()))
    signature = (path / SIGNATURE_FILE).read_bytes() if (path / SIGNATURE_FILE).is_file() else None
    try:
        bundle = from_frames((path / MANIFEST).read_bytes(),
                             {**{n: (path / n).read_bytes() for n in IR_FILES}, **optional}, compiled=compiled)
        for record, (record_bytes, _) in zip(records, compiled):
            target = json.loads(record_bytes)["target"]  # a JSON object with a target: from_frames checked
            if record.stem != target:  # a copy kept as CPU.old.json would be served as CPU's
                raise BundleError(f"{COMPILED_DIR}/{record.name} is the record of {target}: a record is named "
                                  f"after its target ({COMPILED_DIR}/{target}.json)")
        return replace(bundle, signature=signature)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None


def write_bundle(
    out_dir: str | os.PathLike[str], xml: bytes, bin_: bytes, manifest: dict[str, Any],
    extra: dict[str, bytes] | None = None,
) -> Bundle:
    """Write a bundle directory: the IR files, any optional files (``extra``: the golden tile) and
    a manifest completed with their sha256.

    ``manifest`` supplies everything but ``format``, ``files`` and (unless given) ``created``.
    """
    files = {"model.xml": xml, "model.bin": bin_, **(extra or {})}
    full = {
        "format": BUNDLE_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **manifest,
        "files": {name: sha256(data) for name, data in files.items()},
    }
    validate_manifest(full)  # before the directory is made: a refused bundle leaves no empty --out behind
    bundle = Bundle(manifest=full, files=files, manifest_bytes=(manifest_json(full) + "\n").encode("utf-8"))
    write_bundle_as_is(Path(out_dir), bundle)
    return bundle


def write_bundle_as_is(out_dir: str | os.PathLike[str], bundle: Bundle) -> None:
    """Write ``bundle`` as it is (its manifest's own bytes, its files, blobs and signature) into
    ``out_dir``, over whatever bundle was there. What of the old one the new one does not have goes
    first: files its manifest no longer lists, blobs of another IR and a signature of another
    manifest, which read_bundle (or the payload) would refuse the new bundle for; blobs of the same
    IR stay valid and are kept."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in OPTIONAL_FILES:
        if stale not in bundle.files:
            (out / stale).unlink(missing_ok=True)
    _drop_stale_artefacts(out, bundle.manifest, bundle.manifest_bytes)
    for name, data in (*bundle.files.items(), (MANIFEST, bundle.manifest_bytes)):
        write_atomic(out / name, data)
    write_compiled(out, bundle)
    if bundle.signature is not None:
        write_atomic(out / SIGNATURE_FILE, bundle.signature)


def _drop_stale_artefacts(out: Path, manifest: dict[str, Any], manifest_bytes: bytes) -> None:
    """Before a bundle is written over an older one: remove its compiled blobs made from other files
    and a signature of another manifest, which read_bundle (or the payload) would refuse the new
    bundle for. Blobs of the same IR stay valid (a new golden tile or manifest does not change what
    they were compiled from) and are kept."""
    for record in sorted((out / COMPILED_DIR).glob("*.json")):
        if not made_from_ir(_json_field(record, "ir_sha256"), manifest):
            record.with_suffix(".blob").unlink(missing_ok=True)
            record.unlink()
    signature = out / SIGNATURE_FILE
    if signature.is_file() and _json_field(signature, "bundle_id") != sha256(manifest_bytes):
        signature.unlink()


def _json_field(path: Path, key: str) -> Any:
    """``key`` of the JSON object in ``path``; None when it is not one (a stale or broken file)."""
    try:
        return json.loads(path.read_text("utf-8")).get(key)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None


def manifest_json(value: Any, level: int = 0) -> str:
    """``value`` as ``json.dumps(value, indent=2, sort_keys=True)`` writes it, except that a list of
    numbers or strings stays on one line.

    A manifest stays readable line by line, but a second stage of boosted trees (thousands of node
    values) no longer takes a line per number: models/sar's manifest went from 689 KB to 311 KB,
    and the manifest travels with every uplink.
    """
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(value, dict) and value:
        items = (f"{pad}{json.dumps(key)}: {manifest_json(value[key], level + 1)}" for key in sorted(value))
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return "[\n" + ",\n".join(pad + manifest_json(v, level + 1) for v in value) + f"\n{end}]"
    return json.dumps(value)


def write_compiled(out_dir: str | os.PathLike[str], bundle: Bundle, targets: list[str] | None = None) -> None:
    """Write the bundle's compiled artefacts (those of ``targets`` only, when given) as
    ``compiled/<TARGET>.json`` and ``.blob``, leaving the folder's others as they are.

    Only the targets asked for: ``runtime compile`` for one target must not write back the others
    as it read them (a compile of another target running meanwhile would be undone). Each is
    replaced so that the bundle reads back whole whatever point a writer is stopped at: the old
    record goes first (a blob without a record is ignored when read; a new blob beside the old
    record would make read_bundle refuse the whole bundle), the new record last."""
    chosen = sorted(bundle.compiled) if targets is None else targets
    if not chosen:
        return
    folder = Path(out_dir) / COMPILED_DIR
    folder.mkdir(exist_ok=True)
    for target in chosen:
        record, blob = bundle.compiled[target]
        if all((folder / f"{target}{ext}").is_file() and (folder / f"{target}{ext}").read_bytes() == data
               for ext, data in ((".json", record), (".blob", blob))):
            continue  # the same artefact; a blob damaged on disk under the same record is written again
        (folder / f"{target}.json").unlink(missing_ok=True)
        sync_dir(folder)
        write_atomic(folder / f"{target}.blob", blob)
        write_atomic(folder / f"{target}.json", record)

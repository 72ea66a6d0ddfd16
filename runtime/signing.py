"""Signed uplink: a flight model is signed by the ground (Ed25519), the payload checks who made it.

Why: a bundle's sha256 proves it arrived intact, not who made it; anyone who can reach the control
channel (or write the store) could install a model. The ground signs the bundle id (the sha256 of
the manifest, which holds the sha256 of every IR file, so the signature covers every byte of the
model) and the sha256 of each compiled artefact's record there (which holds its blob's sha256); the
payload holds the ground's public key and, with one configured, refuses an unsigned or wrongly
signed bundle with a reason, whichever way it came (uplink or ``--model`` at start). A blob the
signature does not list (added after signing; signatures made before blobs were covered list none)
is never imported: the runtime compiles the signed IR instead (runtime.compiled.matching_blob).

The signature sits beside the bundle as ``signature.json`` ({algorithm, key_id, bundle_id, compiled:
{target: record sha256} when blobs were there, signature}) and
travels in the ``load_model`` request. Keys are PEM files made by ``python -m runtime keys
--signing``; signing uses the ``cryptography`` library.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runtime.atomic import write_atomic
from runtime.bundle import SIGNATURE_FILE, Bundle, BundleError, sha256
from runtime.security import refuse_overwrite

ALGORITHM = "ed25519"


def signing_key_files(out: str | Path, name: str = "uplink") -> list[Path]:
    """The files :func:`make_signing_keys` writes: the private key, then the public one."""
    return [Path(out) / f"{name}.signing.pem", Path(out) / f"{name}.verify.pem"]


def make_signing_keys(out: str | Path, name: str = "uplink") -> tuple[Path, Path]:
    """Write ``NAME.signing.pem`` (private, mode 600) and ``NAME.verify.pem`` (public) into ``out``;
    existing files are never overwritten (:func:`runtime.security.refuse_overwrite`)."""
    out = Path(out)
    refuse_overwrite(signing_key_files(out, name))
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    secret = out / f"{name}.signing.pem"
    # made 0600 and new (O_EXCL: never through a symlink, never over a file) before a byte is written
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    public = out / f"{name}.verify.pem"
    public.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return secret, public


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file; ValueError for anything else."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def sign(bundle: Bundle, private_key: str | Path) -> bytes:
    """The ``signature.json`` bytes for ``bundle``, signed with the PEM private key file."""
    try:
        key = serialization.load_pem_private_key(Path(private_key).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{private_key}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_key}: not an Ed25519 private key")
    compiled = {target: sha256(record) for target, (record, _blob) in sorted(bundle.compiled.items())}
    record: dict[str, Any] = {"algorithm": ALGORITHM, "key_id": _key_id(key.public_key()), "bundle_id": bundle.id}
    if compiled:
        record["compiled"] = compiled
    record["signature"] = key.sign(_signed_message(bundle.id, compiled)).hex()
    return (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _signed_message(bundle_id: str, compiled: dict[str, str]) -> bytes:
    """What the key signs: the bundle id alone (as every signature made before blobs were covered
    did, so those still verify), or with the sha256 of each compiled record, in a canonical form."""
    if not compiled:
        return bundle_id.encode("ascii")
    return json.dumps({"bundle_id": bundle_id, "compiled": compiled}, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def sign_bundle_dir(bundle_dir: str | Path, private_key: str | Path) -> Path:
    """Sign the bundle in ``bundle_dir`` in place, with the compiled blobs there: writes its ``signature.json``."""
    from runtime.bundle import read_bundle

    path = Path(bundle_dir) / SIGNATURE_FILE
    # atomic: an interrupted sign must not leave a truncated signature that refuses the whole bundle
    write_atomic(path, sign(read_bundle(bundle_dir), private_key))
    return path


def verify(bundle: Bundle, public: Ed25519PublicKey) -> dict[str, Any]:
    """Check ``bundle.signature`` against ``public``; the record if good, BundleError saying why not.

    Good means the ground signed this manifest and the compiled records the signature lists; a blob
    it does not list leaves the signature good (the IR is signed) but is never imported
    (runtime.compiled.signature_covers)."""
    if bundle.signature is None:
        raise BundleError("the bundle is unsigned and this payload only takes models signed by the ground "
                          "(python -m runtime sign)")
    try:
        record = json.loads(bundle.signature)
        signature = bytes.fromhex(record["signature"])
        compiled = record.get("compiled") or {}
        if not (isinstance(compiled, dict) and all(isinstance(v, str) for v in compiled.values())):
            raise ValueError("'compiled' is not a map of target to record sha256")
        message = _signed_message(bundle.id, compiled)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"signature.json is not a signature record: {exc}") from None
    if record.get("algorithm") != ALGORITHM:
        raise BundleError(f"signature algorithm {record.get('algorithm')!r}; valid: [{ALGORITHM!r}]")
    if record.get("key_id") != _key_id(public):
        raise BundleError(f"the bundle is signed by key {record.get('key_id')}, not by the ground key "
                          f"{_key_id(public)} this payload trusts")
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise BundleError("the bundle's signature does not verify: it was not signed over this bundle "
                          "(altered after signing, or a forged record)") from None
    return record

"""OpenVINO's model cache for the compiles the payload still makes on board.

Why: a bundle without a blob that matches (``runtime compile``, :mod:`runtime.compiled`) is compiled
on the payload, and without a cache every restart and every reopen of the device compiles it again:
seconds on a Myriad X, with the plugin's compiler in flight memory. OpenVINO's own cache
(``CACHE_DIR``) keeps what it compiled in a folder, keyed by a hash of the model (every op, attribute
and constant), the device and the compile configuration, and imports it the next time the same hash
is compiled. ``[inference] cache_dir`` names the folder; by default ``{store}/cache``, beside the
bundles the payload keeps, so that it lives where uplinked models live; "" turns it off.

A cache that cannot be written (a read-only store, a full disk) is a warning, and the model is
compiled without it: the cache saves time, it must never stop a payload. Where the network came
from (``load["from"]``: ``blob``, ``cache`` or ``compile``) is said in the ``model_loaded`` event and
the ``load_model`` reply, so a ground can see that a restart did not compile.

OpenVINO never removes an entry; the runtime notes which bundle each belongs to
(:mod:`runtime.cache_index`), and the model store removes the entries of the bundles it no longer
holds when it prunes them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Literal

from runtime import cache_index, ov_api

__all__ = ["STORE_TOKEN", "CacheCompile", "cache_folder", "compile_with_cache", "unwritable"]

log = logging.getLogger(__name__)

#: Replaced in ``[inference] cache_dir`` by the model store's folder (the temporary one included).
STORE_TOKEN = "{store}"


@dataclass(frozen=True)
class CacheCompile:
    """What :func:`compile_with_cache` made: the compiled model, where it came from (``cache``: an entry
    was imported; ``compile``: compiled here), and what to say about it ("" when there is no cache)."""

    compiled: Any
    source: Literal["cache", "compile"]
    said: str


def cache_folder(cache_dir: str, store: str | os.PathLike[str]) -> str:
    """``[inference] cache_dir`` with :data:`STORE_TOKEN` replaced by ``store``; "" stays "" (off)."""
    return cache_dir.replace(STORE_TOKEN, str(store)) if cache_dir else ""


def unwritable(cache_dir: str) -> str | None:
    """Why OpenVINO could not write entries into ``cache_dir`` (made if missing), or None if it can.

    Checked by writing a file there, not by permission bits: root ignores those, and a read-only
    mount or a full disk refuses what the bits allow.
    """
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".probe-"):
            pass
    except OSError as exc:
        return f"cannot write in {cache_dir}: {exc.strerror or exc}"
    return None


def compile_with_cache(core: Any, model: Any, device: str, config: dict[str, Any],
                       cache_dir: str, key: str = "", bundle_id: str = "") -> CacheCompile:
    """``model`` compiled for ``device``, through the model cache in ``cache_dir`` ("": none).

    ``key`` (:func:`runtime.cache_index.compile_key`) and ``bundle_id``, when given, record in the
    cache's index which bundle the entry belongs to, so that the store can prune it with the bundle.

    Returns the compiled model with where it came from and what to say about it (:class:`CacheCompile`:
    one value, so that a caller reporting ``load["from"]`` reads it from the compile it made, not from
    state a callback left behind). A cache that cannot be written is logged as a warning and the model
    compiled without it; so is a compile that fails with the cache and succeeds without (an entry
    OpenVINO could not write or read). A compile that fails without the cache too raises what the
    plugin raised.
    """
    if not cache_dir:
        return CacheCompile(core.compile_model(model, device, config), "compile", "")
    why = unwritable(cache_dir)
    if why is None:
        before = cache_index.snapshot(cache_dir)
        try:
            compiled = ov_api.compile_cached(core, model, device, config, cache_dir)
        except Exception as exc:
            compiled = core.compile_model(model, device, config)  # raises again if the model is at fault
            why = f"OpenVINO failed with it ({ov_api.plugin_message(exc)})"
        else:
            wrote = cache_index.written(before, cache_index.snapshot(cache_dir))
            hit = ov_api.loaded_from_cache(compiled)
            if hit is None:
                # The 2022.3 API does not say: an import writes no entry, a compile writes one, also
                # over a damaged entry of the same name (so a rewritten file counts, not only a new one).
                hit = bool(before) and not wrote
            if key and bundle_id:
                cache_index.record(cache_dir, key, bundle_id, set() if hit else wrote)
            if hit:
                return CacheCompile(compiled, "cache", f"from the model cache {cache_dir}")
            return CacheCompile(compiled, "compile", f"compiled afresh and written to the model cache {cache_dir}")
    else:
        compiled = core.compile_model(model, device, config)
    log.warning("model cache %s not used: %s; compiled without it", cache_dir, why)
    return CacheCompile(compiled, "compile", f"compiled afresh: model cache not used ({why})")

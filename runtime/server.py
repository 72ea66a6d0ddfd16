"""The payload runtime: tiles in, vessel polygons out, with a control channel and telemetry.

Threads, each owning what it touches (ZeroMQ sockets are not thread-safe):

- the **main loop** owns the tile, control and telemetry sockets: it validates and decodes each
  tile, submits it to the device through asynchronous infer requests, and acknowledges it;
- the **device** runs requests on its own threads and hands each output to the vectorise queue;
- **vectorise workers** threshold and vectorise outputs while the device computes later tiles;
- the **sender** owns the results socket and sends one result per tile, in completion order;
- at shutdown the **drain** finishes accepted tiles while the main loop still answers ``status``.

So decode, inference and vectorisation of different tiles overlap, and a full device blocks the main
loop, which stops acknowledging tiles: that is the sender's backpressure.

Length: what remains here is the main thread's share: its loop, tile ingest with the inside and
seen ledgers, the control commands, model loading and the device-recovery hooks. They stay in one
module because they run on the thread that owns the tile, control and telemetry sockets. Every
other concern has its own module: settings, interface, delivery, vectorise_pool, results,
acceptance and telemetry.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from rasterio.crs import CRS
from rasterio.errors import CRSError

from runtime import ov_api, protocol
from runtime.acceptance import acceptance_test
from runtime.bundle import Bundle, BundleError, file_names, from_frames, parse_manifest, read_bundle
from runtime.compiled import signature_covers
from runtime.delivery import OK, Outcome, ResultSender, read_told
from runtime.device import InferenceAdapter, TargetError, open_device, resolve
from runtime.fit import SceneFit, manifest_trained_for
from runtime.health import Health, Heartbeat, StageProbe
from runtime.host import cpu_by_thread
from runtime.interface import COMMANDS, MAX_COMMAND_FRAMES, PORTS
from runtime.model_cache import cache_folder
from runtime.on_the_earth import check_on_the_earth
from runtime.preprocess import Preprocessor
from runtime.protocol import Reason, TileRejected
from runtime.recovery import CannotRun, DeviceRecovery, InputRefused
from runtime.results import InFlight, describe
from runtime.security import CurveServer
from runtime.settings import Settings, check_serving_simplify
from runtime.store import BundleStore
from runtime.telemetry import Telemetry
from runtime.vectorise_pool import DeliverFailed, VectorisePool

log = logging.getLogger("runtime")

#: The commands answered while the runtime drains at shutdown (its state then says "stopping"); any other
#: gets an error reply saying the runtime is stopping.
ANSWERED_WHILE_STOPPING = frozenset({"status", "shutdown"})


@dataclass
class Serving:
    """The model that is serving: its bundle, compiled adapter and preprocessing."""

    bundle: Bundle
    adapter: InferenceAdapter
    preprocess: Preprocessor

    @property
    def info(self) -> dict[str, str]:
        return {"name": self.bundle.name, "sha256": self.bundle.id}

    @functools.cached_property
    def trained_for(self) -> dict[str, Any] | None:
        """What the model was trained for (:func:`runtime.fit.manifest_trained_for`), read once per model."""
        return manifest_trained_for(self.bundle.manifest)


@functools.lru_cache(maxsize=64)
def _parse_crs(text: str | None) -> CRS | None:
    """A tile's CRS; a stream's tiles share one, parsed once (rasterio's CRS is not changed in place)."""
    return None if text is None else CRS.from_user_input(text)


def _done_frame(header: dict[str, Any], outcome: Outcome, duplicate: bool = False) -> bytes:
    """The tile's "done" with its ``outcome``; b"" for a sender that asked for none and is not told
    (runtime.delivery.ResultSender). ``duplicate``: the answer to a copy of a tile already done."""
    if not protocol.wants_done(header):
        return b""
    status, reason = outcome
    return protocol.encode_done({**protocol.tile_ids(header), "status": status, "reason": reason,
                                 **({"duplicate": True} if duplicate else {})})


class Runtime:
    """One payload runtime: bind the sockets, then :meth:`serve` until ``shutdown``."""

    def __init__(self, settings: Settings, model: str | Path | None = None):
        self.settings = settings
        fallback = settings.recovery.get("fallback_device") or ""
        if fallback:  # a typo here would otherwise surface only when the device is lost, in flight
            try:
                resolve(fallback)
            except ValueError as exc:
                raise ValueError(f"[device_recovery] fallback_device: {exc}") from None
        # At serve, not in Settings: `runtime infer` simplifies after its merge, where any value is safe.
        check_serving_simplify(float(settings.vectorize["simplify_px"]))
        watchdog = settings.health["watchdog_file"]
        if watchdog and not Path(watchdog).parent.is_dir():
            # Else Health fails to feed it every period while the payload serves on (checked here, at
            # serve, not in Settings: `runtime infer` reads a flight config on the ground too).
            raise ValueError(f"[health] watchdog_file {watchdog!r}: no folder {str(Path(watchdog).parent)!r} "
                             "to write it in")
        # The store first: a bad --store is a clear error before any socket is bound.
        self._tmp = None if settings.store else tempfile.TemporaryDirectory(prefix="runtime-store-")
        try:
            root = Path(settings.store or self._tmp.name).resolve()  # type: ignore[union-attr]
            # The model cache is pruned with the store's bundles: its entries are theirs.
            self.store = BundleStore(root, cache_dir=cache_folder(settings.cache_dir, root))
        except Exception:
            if self._tmp is not None:
                self._tmp.cleanup()
            raise
        self._ctx = zmq.Context()
        self._bound: list[zmq.Socket] = []  # closed again if a later bind fails (_close_bound)
        self._curve: CurveServer | None = None
        try:  # refused settings release what was made so far: the context, the ZAP thread, the store
            channels = set(settings.curve_channels)
            unknown = sorted(channels - set(PORTS))
            if unknown:  # checked with or without keys: a typo is refused before the keys are added
                raise ValueError(f"curve_channels: unknown channel(s) {unknown}; valid: {list(PORTS)}")
            if settings.curve_server_secret or settings.curve_authorized:
                if not (settings.curve_server_secret and settings.curve_authorized):
                    raise ValueError("CURVE needs both curve_server_secret and curve_authorized")
                if "control" not in channels:
                    raise ValueError(f"curve_channels {sorted(channels)}: must include 'control'; "
                                     f"valid: {list(PORTS)}")
                self._curve = CurveServer(self._ctx, settings.curve_server_secret, settings.curve_authorized)
            self._uplink_key = None
            if settings.uplink_public_key:  # only a payload that checks signatures needs the library
                from runtime.signing import load_public_key

                self._uplink_key = load_public_key(settings.uplink_public_key)
        except Exception:
            self._close_bound()
            raise
        self._tiles = self._socket(zmq.ROUTER, "tiles")
        self._control = self._socket(zmq.ROUTER, "control")
        self._telemetry = self._socket(zmq.PUB, "telemetry")
        self._results = self._socket(zmq.PUSH, "results")
        self._results.setsockopt(zmq.SNDHWM, settings.results_hwm)
        sockets = [("tiles", self._tiles), ("results", self._results), ("control", self._control),
                   ("telemetry", self._telemetry)]
        self._acks: zmq.Socket | None = None
        if settings.ground_ack:
            self._acks = self._socket(zmq.PULL, "acks")
            sockets.append(("acks", self._acks))
        self.endpoints = {name: sock.getsockopt(zmq.LAST_ENDPOINT).decode() for name, sock in sockets}
        # Tiles read from the tile socket whose result (or rejection) has not left yet. The main
        # loop reads no tile while this is at max_tiles_inside, so every queue between the tile
        # socket and the results socket is bounded by it: overload backs up to the senders (they
        # stop getting acks), it never grows memory. See docs/reliability.md.
        self._inside = 0
        # The most tiles ever inside at once since start (status' tiles_inside_peak): the soak checks
        # the bound against it, since samples of _inside miss a burst between two of them.
        self._inside_peak = 0
        # Device outputs wait here for a vectorise worker (runtime/vectorise_pool.py).
        self._vectorise: VectorisePool[tuple[np.ndarray, InFlight, float], tuple[list[bytes], bool]] = VectorisePool(
            int(settings.vectorize["workers"]), lambda item: self._post_process(*item), self._vectorised,
            give_up=self._post_processing_stuck, batch=int(settings.vectorize["batch"]),
            batch_wait_s=float(settings.vectorize["batch_wait_ms"]) / 1e3, failed=self._post_processing_failed,
            lost=self._post_processing_lost, upstream=self._on_the_device,
            after_batch=lambda: self._sender.wake())  # the sender is made below
        # Tiles seen, by (scene_id, tile_id, checksum): "in_flight" or "done", with the outcome the
        # tile's "done" said, so that a resent tile is not processed again and hears the same answer.
        # Bounded; the oldest are forgotten first.
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, Outcome]] = OrderedDict()
        self._fit = SceneFit(settings.remember_tiles)  # only the main loop uses it
        self._notify_endpoint = f"inproc://notify-{id(self)}"
        self._notify = self._ctx.socket(zmq.PAIR)
        # No high-water mark: at shutdown this loop forwards no "done" until the sender has stopped,
        # and a sender blocked on a full pipe (2,000 "done"s: the ground acking that many results in
        # the grace period) never stopped, so shutdown hung. One "done" per accepted tile, no more.
        self._notify.setsockopt(zmq.RCVHWM, 0)
        self._notify.bind(self._notify_endpoint)
        self._lock = threading.Lock()
        self.telemetry = Telemetry()
        # A vectorise worker's last tile latency, recorded by _vectorised only if that tile's result is
        # delivered: a restarted worker's late result is discarded, and so must its latency be.
        self._served = threading.local()
        # True until stop() or a shutdown command; never set by serve(), so that a stop asked before
        # serve() starts (a SIGTERM just after "ready") is kept rather than overwritten and lost.
        self._running = True
        # True from the start of the shutdown drain: status says "stopping", and commands that would
        # change the payload (a model load) are refused while accepted tiles are finished.
        self._stopping = False
        self.serving: Serving | None = None
        # Held while self.serving is replaced: a reopen (recovery thread) and a model load (main
        # thread) each swap only the model they saw, so neither puts back what the other replaced.
        self._swap = threading.Lock()
        # Adapters replaced by a reopen, closing in the background: their requests still fail into
        # recovery, so the drain at shutdown waits for them (_drain_device).
        self._closing: list[threading.Thread] = []
        self._ingest = Heartbeat("ingest")
        self._loading_since: float | None = None  # when the model load on the main loop began
        # Results out, and the ground's acknowledgements in (runtime/delivery.py).
        self._sender = ResultSender(self._ctx, self._results, self._acks, self._notify_endpoint,
                                    settings.ground_ack_timeout_s, self._count, self._event, self._left,
                                    delivered=lambda key, outcome: self._remember(key, "done", outcome),
                                    max_ack_bytes=settings.max_header_bytes)
        self._submitted: dict[int, float] = {}  # in-flight job id -> when it went to the device
        # A request refused for the tile's own input is the tile's fault, not the device's (runtime/recovery.py).
        self.recovery = DeviceRecovery(settings.recovery, self._resubmit, self._reopen, self._give_up, self._event,
                                       refused_input=lambda job, error: job.adapter.refused_input(job.batch, error))
        self.health = Health(self._probes(), settings.health["period_s"], settings.health["hang_timeout_s"],
                             self._event, settings.health["watchdog_file"])
        try:
            if model is not None:
                self._load(read_bundle(model), persist=self.store.writable, starting=True)
            elif self.store.has_current():
                self._load_stored()
        except Exception:
            self.close()  # a runtime that cannot start releases its sockets (their endpoints can be reused)
            raise

    # -- set-up ---------------------------------------------------------------------------

    def _socket(self, kind: int, name: str) -> zmq.Socket:
        """A socket of ``kind`` bound at the ``name`` endpoint.

        Raises:
            ValueError: naming the endpoint setting, the address and ZeroMQ's reason, when the
                address cannot be bound (in use, malformed, an unknown transport), so that ``serve``
                says ``error: ...`` rather than printing a ZMQError traceback. Sockets already bound
                are closed and the context ended first: their addresses are free again at once.
        """
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)
        sock.setsockopt(zmq.LINGER, 5000)
        channel = "results" if name == "acks" else name  # acks are the results channel's back path
        if self._curve is not None and channel in self.settings.curve_channels:
            self._curve.apply(sock)  # only authorised clients may command, send, read or listen
        address = self.settings.endpoints[name]
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._close_bound()
            raise ValueError(f"[endpoints] {name} (--{name}) {address!r} cannot be bound: "
                             f"{zmq.strerror(exc.errno)}") from None
        self._bound.append(sock)
        return sock

    def _close_bound(self) -> None:
        """Undo a start that failed while binding: close the sockets bound so far, end the context."""
        for sock in self._bound:
            sock.close(linger=0)
        self._bound.clear()
        if self._curve is not None:
            self._curve.stop()
        self._ctx.term()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _signed_blobs_only(self, bundle: Bundle) -> Bundle:
        """``bundle`` without the compiled blobs its signature does not cover, where signatures are
        checked: this payload never imports those (runtime.compiled.matching_blob), and installed over
        a bundle of the same id one replaced the signed blob of its target in the store for good
        (a blob recompiled on the ground and uplinked before it was signed again)."""
        if self._uplink_key is None:
            return bundle
        return replace(bundle, compiled={t: a for t, a in bundle.compiled.items() if signature_covers(bundle, t)})

    def _load_stored(self) -> None:
        """Serve the store's ``current`` bundle; if it cannot be read or fails its acceptance test,
        serve ``previous`` instead and say so (event ``model_rolled_back``).

        Why: ``previous`` is kept for exactly this (a ``current`` a crash left unreadable, or one this
        device now refuses); without the fall-back such a payload would not start at all. The store
        is rolled back too where it can be written, so that the next uplink keeps the good bundle
        as ``previous``, not the broken one; but only when the bundle itself is refused (unreadable,
        unsigned, or refused by the target check or its acceptance test: a ValueError). A failure of
        the device or host (a device still held by the runtime just killed) serves ``previous`` for
        this start and keeps ``current``: rolling back deleted an intact, accepted model for good. But
        once ``previous`` has opened on the configured device, that device works: ``current`` is opened
        there once more, and served if it opens (the device was busy), or rolled back as refused if the
        plugin fails it again (a compile error on a working device is the model's fault).
        ``current`` is served as installed, not installed again: a read-only store served
        ``previous`` at every start, its links not writable.

        Raises:
            BundleError: if ``current`` fails and there is no ``previous``, or it fails too (both reasons).
        """
        current = self.store.current_path()
        try:
            if current is None:
                raise BundleError(f"{self.store.root / 'current'}: its bundle is missing")
            self._load(read_bundle(current), installed=True)
            return
        except Exception as exc:  # unreadable, refused by the device or by its acceptance test
            refused = isinstance(exc, ValueError)  # the bundle's fault (BundleError, TargetError), not the device's
            failure = str(exc) if refused else ov_api.plugin_message(exc)  # one line, not the plugin's trace
        previous = self.store.previous_path()
        if previous is None:
            raise BundleError(f"the store's current model cannot serve ({failure}) and there is no previous one")
        try:
            serving = self._load(read_bundle(previous), persist=False, quiet=True)
        except Exception as exc:
            raise BundleError(f"the store's current model cannot serve ({failure}), nor its previous one "
                              f"({exc})") from None
        if not refused and self._on_configured_device(serving):
            # The previous model opened on the configured device, so that device works now: current is
            # opened there once more. A device that was busy at the first try (still held by the runtime
            # just killed) serves it now; a plugin that refuses it again (a compile error: an op or a
            # shape it cannot take) refused the model, which is rolled back as a refused one is. Until
            # 2026-12-06 such a current was kept: compiled again, and refused, at every start, and the
            # next uplink made it `previous`, pruning the good model.
            try:
                self._load(read_bundle(current), installed=True)  # type: ignore[arg-type]  # current was read
            except Exception as exc:
                refused, said = True, str(exc) if isinstance(exc, ValueError) else ov_api.plugin_message(exc)
                again = f"again after the previous model opened on {serving.adapter.device}"
                failure = f"{failure} ({again})" if said == failure else f"{failure}; {again}: {said}"
            else:
                log.warning("the store's current model failed to open (%s), and opened once the previous one "
                            "had opened on %s: serving it", failure, serving.adapter.device)
                return
        rolled = False
        if refused:
            try:
                self.store.roll_back()
                rolled = True
            except OSError:  # a read-only store: previous serves, and is fallen back to at every start
                pass
        why = "current model refused" if refused else "current model could not be opened (kept for the next start)"
        self._event("model_rolled_back", model=serving.info, detail=f"{why}: {failure}", store_rolled_back=rolled)
        self._event("model_loaded", model=serving.info, device=serving.adapter.device, load=serving.adapter.load)

    def _on_configured_device(self, serving: Serving) -> bool:
        """Whether ``serving`` runs on the configured device (not on ``fallback_device``)."""
        try:
            return serving.adapter.device == resolve(self.settings.device)
        except ValueError:  # the configured device is not there
            return False

    def _load(self, bundle: Bundle, persist: bool = True, quiet: bool = False, installed: bool = False,
              starting: bool = False) -> Serving:
        """Compile ``bundle`` and run it once; only then does it replace the serving model.

        ``persist=False`` (a model given at start-up with a read-only store) serves it without
        installing it, and says so in an event, rather than refusing to start. ``quiet``: no events
        (the caller reports the load its own way: :meth:`_load_stored`'s fall-back). ``installed``:
        the store's own ``current``, served as it is (nothing to install, nothing to say about it).
        ``starting``: the ``--model`` of a start-up, which a store that cannot take it (a disk too
        full for the bundle, found only by installing) serves unpersisted too, as a read-only one.
        """
        if self._uplink_key is not None:  # who made the model, before anything runs it
            from runtime.signing import verify

            verify(bundle, self._uplink_key)
        adapter, device_failure = self._open_for_load(bundle)
        try:
            preprocess = acceptance_test(bundle, adapter)
        except Exception:
            adapter.close()
            raise
        serving = Serving(bundle, adapter, preprocess)
        why = f"store {self.store.root} is read-only"
        if persist and not installed:
            try:
                self.store.install(self._signed_blobs_only(bundle))
            except OSError as exc:
                if not starting:
                    adapter.close()  # refused: the old model keeps serving
                    raise
                persist, why = False, f"store {self.store.root} cannot take it ({exc})"
            except Exception:
                adapter.close()  # refused: the old model keeps serving
                raise
        if not persist and not installed and not quiet:
            self._event("model_not_persisted", model={"name": bundle.name, "sha256": bundle.id},
                        detail=f"{why}: the model serves until the runtime stops")
        # Switched before the old adapter closes, so that a re-run meanwhile (recovery thread)
        # goes to the new one; tiles already on the old model finish on it, or fail into recovery.
        with self._swap:
            old, self.serving = self.serving, serving
        if old is not None:
            old.adapter.close()
        if device_failure is not None:
            self.recovery.replaced_at_load()
            self._event("device_replaced", device=adapter.device, model=serving.info,
                        detail=f"at model load, {device_failure}")
        if not quiet:
            self._event("model_loaded", model=serving.info, device=adapter.device, load=adapter.load)
        return serving

    def _open_for_load(self, bundle: Bundle) -> tuple[InferenceAdapter, str | None]:
        """``bundle`` opened on the configured device or, if that device cannot be opened at all
        (not attached at boot, unplugged since, NC_ERROR on compile) and ``fallback_device`` is set,
        on the fallback; with why the configured device was passed over (None: it opened).

        Why: a supervisor restarting a payload whose stick died would otherwise fail every start
        and serve nothing, while a reopen in flight already falls back (:meth:`_reopen`); an uplink
        after such a replacement would likewise be refused. Only a device that is not there falls
        back: one still attached that fails to open this model (a compile error, TargetError: an IR
        it cannot run) refused the model, not the device, and an uplink so refused must leave the
        old model serving on the device, as a start must roll back to the store's previous model
        there (:meth:`_load_stored`) rather than fly the refused one on the twin. A model that fails
        its acceptance test is refused too (the caller runs it, on whichever device this returns).
        """
        try:
            return self._open_device(bundle, self.settings.device), None
        except TargetError:
            raise
        except Exception as exc:
            fallback = self.settings.recovery.get("fallback_device") or ""
            if not fallback or self._device_attached():
                raise
            failure = f"{self.settings.device}: {exc}"
        try:
            return self._open_device(bundle, fallback), failure
        except Exception as exc:
            raise RuntimeError(f"the model cannot be opened on the device ({failure}) nor on the fallback_device "
                               f"({fallback}: {exc})") from None

    def _device_attached(self) -> bool:
        """Whether the configured device is there (``flight`` always is: it resolves to the twin)."""
        try:
            resolve(self.settings.device)
        except ValueError:
            return False
        return True

    def _open_device(self, bundle: Bundle, device: str) -> InferenceAdapter:
        """``bundle`` compiled (or imported) on ``device`` with this runtime's settings."""
        return open_device(bundle, device, self._on_inferred, infer_requests=self.settings.infer_requests,
                           collect_group=self.settings.collect_group, cpu_precision=self.settings.cpu_precision,
                           profile=self.settings.profile, cache_dir=self.store.cache_dir)

    # -- the pipeline ---------------------------------------------------------------------

    def _on_inferred(self, output: np.ndarray | BaseException, job: InFlight) -> None:
        with self._lock:
            self._submitted.pop(id(job), None)
        if isinstance(output, BaseException):  # the device failed this request: re-run it
            self.recovery.failed(job, output, stale=job.adapter is not self.serving_adapter())
            return
        self.recovery.succeeded(job)
        job.batch = None
        if job.discriminator is None:
            job.pixels = None  # held only so that a re-run on another model could prepare it again
        self._vectorise.put((output, job, time.perf_counter()))

    def _on_the_device(self) -> int:
        """Tiles submitted to a device and not yet collected: the vectorise workers' ``upstream``
        (:meth:`_on_inferred` forgets a tile before it hands it to them)."""
        with self._lock:
            return len(self._submitted)

    def serving_adapter(self) -> InferenceAdapter | None:
        serving = self.serving
        return None if serving is None else serving.adapter

    def _resubmit(self, job: InFlight) -> None:
        """Run a failed tile again, on whatever model and device serve now.

        A model loaded since the tile was prepared normalises (and may discriminate) differently,
        so the tile is prepared again for it: its result says which model ran it, and that model
        must have seen the input it expects. One it cannot take is rejected (inference_failed)."""
        serving = self.serving
        assert serving is not None
        try:
            self._prepare_again(job, serving)
        except CannotRun:
            raise
        except Exception as exc:  # a bug met on the tile: its own, not the device's
            # Only what the device raises counts against it: raised as a plain error, this reached
            # recovery as a device failure, which lengthened the streak and reopened a working device.
            log.exception("preparing a tile for its re-run failed")
            self._tile_bug(job, "_resubmit", exc)
            raise CannotRun(f"preparing the tile for its re-run raised {exc!r}") from exc
        job.t_submitted = time.perf_counter()
        job.adapter = serving.adapter
        with self._lock:
            self._submitted[id(job)] = time.monotonic()
        try:
            serving.adapter.start_async(job.batch, job)
        except Exception as exc:
            with self._lock:
                self._submitted.pop(id(job), None)
            if serving.adapter is self.serving_adapter():
                raise  # the serving device refused it: recovery counts it against that device
            # An adapter replaced (and closed) meanwhile refused it: re-run, without blaming the new one.
            self.recovery.failed(job, exc, stale=True)

    def _prepare_again(self, job: InFlight, serving: Serving) -> None:
        """Make ``job`` ready to run on ``serving``: prepared again if another model serves now
        (CannotRun: that model cannot take it), and labelled with the model that will run it."""
        assert job.batch is not None
        if job.model != serving.info:
            assert job.pixels is not None
            try:
                job.batch, job.valid = serving.preprocess(job.pixels, job.header)
            except TileRejected as exc:
                raise CannotRun(f"model {serving.bundle.name} now serves and cannot take this tile: "
                                f"{exc.detail}") from None
            job.discriminator = serving.bundle.discriminator
        job.model, job.threshold, job.min_area_px = serving.info, serving.bundle.threshold, serving.bundle.min_area_px
        job.min_score = serving.bundle.min_score

    def _reopen(self) -> tuple[str, bool]:
        """A new adapter for the serving model: on the device again, else on the fallback device.
        The old adapter is closed in the background (its requests finish or fail into recovery).

        A model loaded while this one was opening has a fresh adapter of its own, and stays: the
        one opened here is closed, never put back in its place.

        On the fallback device the model must pass the acceptance test an uplink runs (shapes,
        finite output, the golden tile) before it serves: the model was accepted on the serving
        device, and a device that computes differently can get it wrong (a golden tile that does
        not reproduce). A refusal there counts as a failed open, its reason in the error. So does
        any other device than the one that served: ``flight`` is resolved again at each open, and
        with the stick it picked gone it resolves to the twin (it was reported as a reopen, and the
        twin served untested: tests/runtime/test_flight_reopen_review16b.py)."""
        old = self.serving
        assert old is not None
        fallback = self.settings.recovery.get("fallback_device") or ""
        tries = [(self.settings.device, False)] + ([(fallback, True)] if fallback else [])
        errors = []
        for device, replaced in tries:
            try:
                adapter = self._open_device(old.bundle, device)
            except Exception as exc:
                errors.append(f"{device}: {exc}")
                continue
            replaced = replaced or adapter.device != old.adapter.device
            if replaced:
                try:
                    acceptance_test(old.bundle, adapter)
                except Exception as exc:
                    adapter.close()  # nothing was submitted to it
                    errors.append(f"{device}: the model fails its acceptance test there: {exc}")
                    continue
            with self._swap:
                current = self.serving
                if current is old:
                    self.serving = Serving(old.bundle, adapter, old.preprocess)
            if current is not old:
                adapter.close()  # nothing was submitted to it
                assert current is not None
                return current.adapter.device, False
            closing = threading.Thread(target=old.adapter.close, name="close-lost-device", daemon=True)
            with self._lock:
                self._closing = [t for t in self._closing if t.is_alive()] + [closing]
            closing.start()
            return adapter.device, replaced
        raise RuntimeError("; ".join(errors))

    def _give_up(self, job: InFlight, error: BaseException) -> None:
        """A tile the device failed ``max_attempts`` times, or that nothing serving can run (CannotRun):
        rejected through the result path. One whose input the device refused (InputRefused) met a bug:
        the payload made an input its own model does not take; counted and said once for the tile."""
        if isinstance(error, InputRefused):
            self._tile_bug(job, "_give_up", error.__cause__ or error)
        job.batch = None
        self._event("inference_failed", detail=f"after {job.attempts} attempts: {error}",
                    **protocol.tile_ids(job.header))
        self._vectorise.put((error, job, time.perf_counter()))

    def _probes(self) -> list[StageProbe]:
        def oldest_inference() -> float:
            with self._lock:
                oldest = min(self._submitted.values(), default=None)
            return 0.0 if oldest is None else time.monotonic() - oldest

        probes = [StageProbe("ingest", self._ingest_age), StageProbe("inference", oldest_inference),
                  StageProbe("device", self.recovery.failing_for)]
        probes += self._vectorise.probes()
        probes.append(StageProbe("output", self._sender.beat.age))
        return probes

    def _ingest_age(self) -> float:
        """How long the main loop has been on one item; an uplink's model load (a compile and the
        acceptance test, on the main loop) is not a hang until it has taken ``[health]
        load_timeout_s``: else the watchdog starved, and a supervisor killed the runtime mid-uplink."""
        loading = self._loading_since
        if loading is not None and time.monotonic() - loading < float(self.settings.health["load_timeout_s"]):
            return 0.0
        return self._ingest.age()

    def _vectorised(self, item: tuple[np.ndarray, InFlight, float], result: tuple[list[bytes], str | None]) -> None:
        """A worker's result for one tile (its frames, and why it was rejected: None when ok):
        counted, and queued for the sender with the tile's "done" (made here, off the main loop,
        which only forwards it; b"" where it cannot be made: :meth:`_done_or_nothing`). What raises
        here has counted and sent nothing, and the pool answers the tile with
        :meth:`_post_processing_failed` (VectorisePool's ``deliver``): so the count, one
        increment, is the last thing that can raise, and only the queuing (which cannot) follows it.
        Until review 21 the latency sample and the events came after the count: one that raised left
        an ok and then a rejection counted for one tile (tests/runtime/test_post_processing_review21.py)."""
        frames, rejected = result
        job = item[1]
        latency_s, self._served.latency_s = getattr(self._served, "latency_s", None), None
        outcome: Outcome = OK if rejected is None else ("rejected", Reason.INFERENCE_FAILED.value)
        done = self._done_or_nothing(job, outcome)
        if rejected is None:
            if latency_s is not None:  # "of the tiles served ok": one sample per tile delivered
                self.telemetry.latency(latency_s)
            self._count("tiles_ok")
        else:  # counted as delivered, not as made: a restarted worker's late result is discarded
            ids = protocol.tile_ids(job.header)
            # _account_rejection's event and count, the count last (see above)
            self._event("tile_rejected", reason=Reason.INFERENCE_FAILED.value, detail=rejected, **ids)
            if not isinstance(item[0], BaseException):  # lost in post-processing (_give_up said the device's)
                self._event("inference_failed", detail=rejected, **ids)
            self.telemetry.reject(Reason.INFERENCE_FAILED.value)
        # Woken once the worker's batch is delivered (the pool's after_batch), not once a tile
        self._sender.put(frames, job.identity, done, job.key, outcome, wake=False)

    def _post_process(self, output: np.ndarray | BaseException, job: InFlight,
                      t_inferred: float) -> tuple[list[bytes], str | None]:
        """Threshold, vectorise and describe one output; returns the result frames and why the tile
        was rejected (None: ok). ``output`` is the device's error for a tile recovery gave up on: it
        is rejected."""
        self._served.latency_s = None
        if isinstance(output, BaseException):  # CannotRun: given up for the tile itself, not for the device
            why = (f"not run again after {job.attempts} attempts" if isinstance(output, CannotRun)
                   else f"the device failed it {job.attempts} times")
            return self._lost(job, f"{why}: {output}")
        try:
            result, mask = describe(output, job, t_inferred, self.settings.vectorize)
            # counted by _vectorised, on this thread, if delivered (a stuck worker's late result is not)
            self._served.latency_s = result["timings_ms"]["total"] / 1e3
            return protocol.encode_result(result, mask), None
        except Exception as exc:  # one bad output must not stop the pipeline
            log.exception("vectorise failed")
            return self._lost(job, f"post-processing: {exc}")

    def _post_processing_stuck(self, item: tuple[np.ndarray, InFlight, float]) -> tuple[list[bytes], str | None]:
        """The result of a tile whose post-processing got two workers stuck, or one for twice the
        hang timeout at shutdown (VectorisePool.stop): rejected, with why."""
        timeout = self.settings.health["hang_timeout_s"]
        return self._lost(item[1], f"post-processing: stuck for over {timeout} s on two workers, or for "
                                   f"over {2 * timeout} s on one at shutdown")

    def _post_processing_failed(self, item: tuple[np.ndarray, InFlight, float],
                                exc: Exception) -> tuple[list[bytes], str | None]:
        """The result of a tile whose post-processing raised past :meth:`_post_process`'s own guard, or
        whose result :meth:`_vectorised` raised on before queuing it (the pool then says
        :class:`DeliverFailed`; a bug either way): an internal error, counted and said as every other
        is, and the tile rejected, with why."""
        if isinstance(exc, DeliverFailed):
            handler, step, bug = "_vectorised", "delivering its result", exc.__cause__ or exc
        else:
            handler, step, bug = "_post_process", "post-processing", exc
        self._tile_bug(item[1], handler, bug)
        return self._lost(item[1], f"{step}: internal error {bug!r}")

    def _tile_bug(self, job: InFlight, handler: str, bug: BaseException) -> None:
        """A bug met on an accepted tile: counted and said (``internal_error``) once per tile, by the
        first step that meets one; a later step failing on the same tile is only logged. Until review
        24 a tile whose rejection for a bug failed to deliver too was counted and said twice (by
        :meth:`_post_processing_failed`, then by :meth:`_post_processing_lost`)."""
        if job.internal_error:
            return
        self._count("internal_errors")
        job.internal_error = True  # set once counted: a said event that raises must not count it again
        self._event("internal_error", handler=handler, detail=repr(bug), **protocol.tile_ids(job.header))

    def _done_or_nothing(self, job: InFlight, outcome: Outcome) -> bytes:
        """``job``'s "done" saying ``outcome`` (:func:`_done_frame`), or b"" where it cannot be made (a bug,
        counted and said once for the tile by :meth:`_tile_bug`). Never raises: the tile's result still
        goes out as made and the tile is released and counted with its own outcome; only its sender is
        not told (there is nothing to tell it with), and the tile is remembered done all the same (the
        sender thread's ``delivered``), so that a resend of it is answered as a duplicate and not run
        again. Until review 26 the failure reached the vectorise pool, which threw an ok result away for
        a rejection (tests/runtime/test_done_frame_review26.py)."""
        try:
            return _done_frame(job.header, outcome)
        except Exception as exc:
            log.exception("no \"done\" could be made for a tile: its result goes out, its sender is not told")
            try:
                self._tile_bug(job, "_done_frame", exc)
            except Exception:  # an event that cannot be said must not cost the tile its result
                log.exception("counting or saying a tile's \"done\" that could not be made raised")
            return b""

    def _post_processing_lost(self, item: tuple[np.ndarray, InFlight, float], exc: Exception) -> None:
        """The vectorise pool's last resort (its ``lost``) for a tile no answer could be made or delivered
        for: :meth:`_post_processing_failed` raised ``exc``, or :meth:`_vectorised` raised on its answer
        too. The tile is counted rejected here (nothing counted it: _vectorised counts nothing when it
        raises), said, and answered with its rejection (:meth:`_lost`, queued here, not through the
        _vectorised that raised); if even that cannot be made, it leaves with no result, its sender told
        "done" (rejected) all the same and the tile remembered as done, so it does not stay inside for ever.
        Each step is guarded on its own: one that raises must not keep the next from freeing the tile.
        Until review 21 such a tile was only logged (tests/runtime/test_post_processing_review21.py); until
        review 24 one with no result was released with no "done" (tests/runtime/test_post_processing_review24.py)."""
        job = item[1]
        outcome: Outcome = ("rejected", Reason.INFERENCE_FAILED.value)
        detail = f"post-processing: internal error {exc!r}, and the tile's rejection could not be made"
        log.error("a tile could not be answered: rejected as a last resort", exc_info=exc)
        try:
            self.telemetry.reject(Reason.INFERENCE_FAILED.value)
            self._tile_bug(job, "_post_processing_lost", exc)
            self._event("tile_rejected", reason=outcome[1], detail=detail, **protocol.tile_ids(job.header))
        except Exception:
            log.exception("counting or saying a tile rejected as a last resort raised")
        done = self._done_or_nothing(job, outcome)  # b"": its sender is not told; still released, remembered
        try:
            frames: list[bytes] | None = self._lost(job, detail)[0]
        except Exception:
            log.exception("no rejection could be made for a tile: it is released with no result")
            frames = None
        # Through the sender thread either way, which releases the tile and tells its sender "done" (the
        # main loop remembers it, so a resend hears it was rejected): with no result, it used to be only
        # released here, and a sender waiting for its "done" waited for ever.
        self._sender.put(frames, job.identity, done, job.key, outcome)

    def _lost(self, job: InFlight, detail: str) -> tuple[list[bytes], str]:
        """A vectorise worker's rejection of an accepted tile (inference_failed), with its detail:
        counted and said only if it is delivered (:meth:`_vectorised`). It names the model that ran
        the tile, as an ok result does, not the one serving when it is made (a model loaded meanwhile
        never saw the tile)."""
        return self._rejection(job.header, Reason.INFERENCE_FAILED, detail, account=False, model=job.model), detail

    def _remember(self, key: tuple[str, str, str] | None, state: str, outcome: Outcome = OK) -> None:
        """Note a tile as ``state`` ("in_flight", or "done" with the ``outcome`` its "done" said).

        ``remember_tiles`` bounds the memory, oldest first, but a tile still in flight (its result
        perhaps awaiting the ground's ack for long) is passed over: forgotten, its resend would be
        processed again and its sender told "done" before the ground had acknowledged anything.
        At most ``max_tiles_inside`` tiles are in flight, so at most that many are passed over."""
        if key is None:
            return
        with self._lock:
            self._seen[key] = (state, outcome)
            self._seen.move_to_end(key)
            passed = 0
            while len(self._seen) > self.settings.remember_tiles:
                oldest = next(iter(self._seen))
                if self._seen[oldest][0] == "in_flight" and passed < self.settings.max_tiles_inside:
                    self._seen.move_to_end(oldest)
                    passed += 1
                    continue
                del self._seen[oldest]

    def _forward_done(self) -> None:
        """Tell senders which tiles have had their results sent (frames from the sender thread)."""
        while True:
            try:
                frames = self._notify.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, done, key, outcome = read_told(frames)  # decoded as runtime.delivery encoded them
            self._remember(key, "done", outcome)
            self._tiles.send_multipart([identity, done])

    def _rejection(self, header: dict[str, Any], reason: Reason, detail: str, held: bool = True,
                   account: bool = True, model: dict[str, str] | None = None) -> list[bytes]:
        """A rejection result. ``held=False``: one the runtime does not hold for the ground's ack (a tile
        refused before it was accepted) says ``"acknowledge": false``, since it carries the ids of any
        accepted tile it is a corrupted copy of, and a ground's ack of it would release that tile's own
        result, unreceived (docs/protocol.md, "Ground acknowledgement"). ``account=False``: made by a
        vectorise worker, counted and said only if it is delivered (:meth:`_vectorised`). ``model``:
        the model that ran the tile, else the one serving now."""
        if account:
            self._account_rejection(header, reason, detail)
        if model is None:
            model = self.serving.info if self.serving else None
        result = {**protocol.tile_ids(header), "status": "rejected", "reason": reason.value, "detail": detail,
                  "model": model}
        return protocol.encode_result(result if held else {**result, "acknowledge": False})

    def _account_rejection(self, header: dict[str, Any], reason: Reason, detail: str) -> None:
        self.telemetry.reject(reason.value)
        self._event("tile_rejected", reason=reason.value, detail=detail, **protocol.tile_ids(header))

    def _room(self) -> bool:
        with self._lock:
            return self._inside < self.settings.max_tiles_inside

    def _left(self) -> None:
        """A tile's result or rejection has been sent (or given up on): it is no longer inside."""
        with self._lock:
            self._inside -= 1

    def _on_tile(self, frames: list[zmq.Frame]) -> None:
        with self._lock:
            self._inside += 1  # until its outbox entry is sent; a duplicate leaves at once
            if self._inside > self._inside_peak:
                self._inside_peak = self._inside
        identity, payload = frames[0].bytes, [f.buffer for f in frames[1:]]
        t_received = time.perf_counter()
        self._count("tiles_received")
        header: dict[str, Any] = {}
        refused: Exception | None = None  # what start_async raised, if it did
        try:
            header, pixels = protocol.decode_tile(
                payload, self.settings.max_tile_pixels, self.settings.max_tile_bands, self.settings.max_header_bytes
            )
            try:
                crs = _parse_crs(header.get("crs"))
            except (CRSError, ValueError, TypeError) as exc:  # rasterio raises all three on bad text
                raise TileRejected(Reason.BAD_HEADER, f"crs not understood: {exc}", header) from None
            check_on_the_earth(header, crs)
            serving = self.serving
            if serving is None:
                raise TileRejected(Reason.NO_MODEL, "no flight model is loaded", header)
            key = protocol.tile_key(header)
            with self._lock:
                state = self._seen.get(key) if key else None
            if state is not None:
                self._duplicate(identity, header, *state)
                # Released after it is answered: a _duplicate that raised is refused below, and released
                # there, once (released first, it was released twice: tests/runtime/test_done_frame_review26.py).
                self._left()
                return
            self._check_fit(serving, header, crs)
            batch, valid = serving.preprocess(pixels, header)
            job = InFlight(header, crs, valid, serving.bundle.threshold, serving.info,
                            t_received, time.perf_counter(), identity, key, serving.bundle.min_area_px,
                            serving.bundle.min_score, batch)
            job.adapter = serving.adapter
            # The counts are held until the inference succeeds: a re-run on a model loaded meanwhile
            # prepares the tile again (_resubmit); the discriminator measures each vessel against them.
            job.discriminator, job.pixels = serving.bundle.discriminator, pixels
            # In flight before it can be done: its result may be sent and acknowledged (and the tile
            # remembered as done, by the sender thread) before start_async even returns here.
            self._remember(job.key, "in_flight")
            with self._lock:
                self._submitted[id(job)] = time.monotonic()
            try:
                serving.adapter.start_async(batch, job)
            except Exception as exc:  # a lost device may refuse the request outright, a closed adapter does
                with self._lock:
                    self._submitted.pop(id(job), None)
                refused = exc
        except Exception as exc:
            if isinstance(exc, TileRejected):
                header, reason, detail = header or exc.header, exc.reason, exc.detail
            else:  # a bug met on this tile: it is refused with a reason, and the payload goes on
                log.exception("internal error on a tile")
                self._count("internal_errors")
                reason, detail = Reason.INTERNAL_ERROR, f"internal error: {exc!r}"
                # as every other bug is (docs/protocol.md): tile_rejected alone is a sender's WARNING_LO
                self._event("internal_error", handler="_on_tile", detail=repr(exc), **protocol.tile_ids(header))
            # Sent once, outside the ground-ack ledger (key None): the tile was never accepted, its
            # sender has the rejected ack below, and a corrupted copy of an accepted tile carries that
            # tile's key, which must stay free for the accepted tile's own result (docs/protocol.md).
            self._sender.put(self._rejection(header, reason, detail, held=False), b"", b"", None)
            self._tiles.send_multipart([identity, protocol.encode_ack(header, False, reason)])
            return
        self._count("tiles_accepted")
        self._tiles.send_multipart([identity, protocol.encode_ack(header, True)])
        if refused is not None:  # accepted all the same: recovery re-runs it, as a request failed on wait
            self.recovery.failed(job, refused, stale=job.adapter is not self.serving_adapter())

    def _check_fit(self, serving: Serving, header: dict[str, Any], crs: CRS | None) -> None:
        """A scene the model was not trained for: one event per scene, and with ``strict_fit`` its
        tiles rejected (:mod:`runtime.fit`)."""
        try:
            warnings, first = self._fit.check(serving.bundle.id, serving.trained_for, header, crs)
        except ValueError as exc:
            raise TileRejected(Reason.BAD_HEADER, str(exc), header) from None
        if not warnings:
            return
        self._count("tiles_unfit")
        if first:
            self._event("scene_does_not_fit", scene_id=header.get("scene_id"), model=serving.info,
                        warnings=warnings, refused=self.settings.strict_fit)
        if self.settings.strict_fit:
            raise TileRejected(Reason.MODEL_MISMATCH, "; ".join(warnings), header)

    def _duplicate(self, identity: bytes, header: dict[str, Any], state: str, outcome: Outcome) -> None:
        """A tile already taken (a resend): acknowledge it, never process it twice.

        If its result has gone out, the sender is told so at once, with the outcome the first
        "done" said (a tile rejected after acceptance stays rejected); if it is still in the
        pipeline, the "done" goes to whoever sent it first, and a sender that has restarted since
        will resend again and hear "done" then.
        """
        self._count("duplicates")
        self._tiles.send_multipart([identity, protocol.encode_ack(header, True, duplicate=True)])
        if state == "done" and protocol.wants_done(header):
            try:
                done = _done_frame(header, outcome, duplicate=True)
            except Exception:
                # Its first "done" could not be made either (counted and said then: _done_or_nothing), so
                # the copy is answered by its ack alone. Raised, it reached _on_tile's refusal, which
                # answered the same copy again, "rejected", and sent the ground a rejection of a done tile.
                log.exception("no \"done\" could be made for a resent tile: its ack alone answers it")
                return
            self._tiles.send_multipart([identity, done])

    def _guarded(self, handler: Any, *args: Any) -> None:
        """Run one message's handler; a bug it hits is an event, never the end of the payload."""
        try:
            handler(*args)
        except Exception as exc:
            log.exception("internal error in %s", getattr(handler, "__name__", handler))
            self._count("internal_errors")
            self._event("internal_error", handler=getattr(handler, "__name__", str(handler)), detail=repr(exc))

    def _count(self, name: str, n: int = 1) -> None:
        self.telemetry.count(name, n)

    # -- control --------------------------------------------------------------------------

    def _on_control(self, frames: list[bytes]) -> None:
        # REQ clients put an empty delimiter after their identity; DEALER clients need not.
        envelope = frames[:2] if len(frames) > 1 and frames[1] == b"" else frames[:1]
        body = frames[len(envelope):]
        try:
            # ZMQ_MAXMSGSIZE caps each frame; a whole message is capped here (it is already in
            # memory: with CURVE on control only authorised clients can send one at all).
            total = sum(len(f) for f in body)
            if total > self.settings.max_message_bytes or len(body) > MAX_COMMAND_FRAMES:
                raise ValueError(f"a command of {len(body)} frames and {total} bytes; at most {MAX_COMMAND_FRAMES} "
                                 f"frames and {self.settings.max_message_bytes} bytes in all "
                                 "([limits] max_message_bytes)")
            if body and len(body[0]) > self.settings.max_header_bytes:  # refused unparsed, as a tile's header
                raise ValueError(f"a command's JSON frame of {len(body[0])} bytes; at most "
                                 f"{self.settings.max_header_bytes} ([limits] max_header_bytes)")
            request = protocol.loads(body[0]) if body else None
            if (not isinstance(request, dict) or type(request.get("v")) is not int
                    or request["v"] != protocol.PROTOCOL_VERSION):  # true is no version, though == 1
                raise ValueError(f"a command is a JSON object with v={protocol.PROTOCOL_VERSION}")
            cmd = request.get("cmd")
            if not isinstance(cmd, str) or cmd not in COMMANDS:  # a list or an object is not hashable
                raise ValueError(f"unknown command {cmd!r}; valid: {sorted(COMMANDS)}")
            if self._stopping and cmd not in ANSWERED_WHILE_STOPPING:
                # A model swapped in under the drain would serve nothing, and be installed by a payload
                # about to exit: the client hears so now rather than at its timeout.
                raise ValueError(f"the runtime is stopping: {cmd} is refused; only "
                                 f"{', '.join(sorted(ANSWERED_WHILE_STOPPING))} are answered until it exits")
            reply = getattr(self, f"_cmd_{cmd}")(request, body[1:])
        except (ValueError, BundleError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:
            # a bug in a command: its client is still answered (a REQ client waits for a reply for
            # ever), and the bug is reported as any other is (_guarded: internal_error)
            reply = {"ok": False, "error": f"internal error: {exc!r}"}
            self._control.send_multipart([*envelope, protocol.dumps({"v": protocol.PROTOCOL_VERSION, **reply})])
            raise
        self._control.send_multipart([*envelope, protocol.dumps({"v": protocol.PROTOCOL_VERSION, **reply})])

    @property
    def device_in_use(self) -> str:
        """The device serving the model (``flight`` resolved: a stick, an NPU or the twin), or the
        configured one while no model serves: what every report and event names."""
        serving = self.serving
        return serving.adapter.device if serving is not None else self.settings.device

    def _cmd_status(self, request: dict[str, Any], frames: list[bytes]) -> dict[str, Any]:
        return {"ok": True, **self.status()}

    def _cmd_load_model(self, request: dict[str, Any], frames: list[bytes]) -> dict[str, Any]:
        if len(frames) < 3:
            raise ValueError("load_model takes the manifest, then one frame per file it lists (model.xml, model.bin, "
                             "golden.npz if any), then a (record, blob) pair per compiled artefact")
        if not isinstance(request.get("manifest_sha256"), str):  # else the manifest itself went unchecked
            raise ValueError("load_model carries manifest_sha256, the sha256 of the manifest frame (docs/protocol.md): "
                             f"got {request.get('manifest_sha256')!r}")
        if request.get("signature") is not None and not isinstance(request["signature"], str):
            # dropped, it read as unsigned: refused by a payload with a key, installed unsigned by one without
            raise ValueError("load_model's signature is the signature.json text (docs/protocol.md): got "
                             f"{type(request['signature']).__name__}")
        try:
            names = file_names(parse_manifest(frames[0]))  # the manifest says which frames follow
            if len(frames) < len(names) + 1 or (len(frames) - 1 - len(names)) % 2:
                raise BundleError(f"load_model: the manifest lists {names}: one frame each after it, then "
                                  "(record, blob) pairs")
            n = 1 + len(names)
            bundle = from_frames(
                frames[0], dict(zip(names, frames[1:n])), request.get("manifest_sha256"),
                compiled=list(zip(frames[n::2], frames[n + 1::2])),
            )
            if isinstance(request.get("signature"), str):
                bundle = replace(bundle, signature=request["signature"].encode("utf-8"))
            self._loading_since = time.monotonic()
            try:
                serving = self._load(bundle)
            finally:
                self._loading_since = None
        except Exception as exc:
            self._event("model_refused", detail=str(exc))
            kept = self.serving.info if self.serving else None
            return {"ok": False, "error": f"model refused: {exc}", "model": kept}
        return {"ok": True, "model": serving.info, "load": serving.adapter.load}

    def _cmd_shutdown(self, request: dict[str, Any], frames: list[bytes]) -> dict[str, Any]:
        self._running = False
        return {"ok": True}

    def status(self) -> dict[str, Any]:
        counts, rejected, lat = self.telemetry.snapshot()
        in_flight = counts.get("tiles_accepted", 0) - counts.get("tiles_ok", 0) - rejected.get(
            Reason.INFERENCE_FAILED.value, 0
        )
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "state": "stopping" if self._stopping else "serving" if self.serving else "no_model",
            "device": self.device_in_use,
            "numerics": self.serving.adapter.numerics if self.serving else None,
            "latency_estimate": self.serving.adapter.latency_estimate if self.serving else None,
            "model": self.serving.info if self.serving else None,
            "endpoints": self.endpoints,
            # which sockets a ground must open with its CURVE keys (hil run --keys): no others take them
            "curve_channels": sorted(self.settings.curve_channels) if self._curve is not None else [],
            "health": self.health.report(),
            "device_recovery": self.recovery.report(),
            "host_cpu_s": cpu_by_thread(),
            # what a ground that merges border pieces must join by (hil.merge.whole_vessels)
            "vectorize": {"connectivity": int(self.settings.vectorize["connectivity"])},
            "delivery": {**self._sender.report(),
                         "results_acked": counts.get("results_acked", 0),
                         "results_resent": counts.get("results_resent", 0),
                         "results_undeliverable": counts.get("results_undeliverable", 0),
                         "bad_acks": counts.get("bad_acks", 0)},
            "counters": {
                "tiles_received": counts.get("tiles_received", 0),
                "tiles_accepted": counts.get("tiles_accepted", 0),
                "tiles_ok": counts.get("tiles_ok", 0),
                "tiles_rejected": counts.get("tiles_rejected", 0),
                "results_sent": counts.get("results_sent", 0),
                "in_flight": in_flight,
                "duplicates": counts.get("duplicates", 0),
                "internal_errors": counts.get("internal_errors", 0),
                "tiles_unfit": counts.get("tiles_unfit", 0),  # of scenes the model was not trained for
                "queue_depth": {"vectorise": self._vectorise.depth(), "output": self._sender.depth(),
                                "tiles_inside": self._inside, "tiles_inside_peak": self._inside_peak,
                                "max_tiles_inside": self.settings.max_tiles_inside},
                "rejected_by_reason": rejected,
                "latency_ms_p50": lat["p50"],
                "latency_ms_p99": lat["p99"],
            },
        }

    # -- telemetry ------------------------------------------------------------------------

    def _event(self, name: str, **fields: Any) -> None:
        self.telemetry.event(name, **fields)

    def _publish(self) -> None:
        for event in self.telemetry.pending_events():
            self._telemetry.send_multipart([b"event", protocol.dumps(event)])

    # -- the loop -------------------------------------------------------------------------

    def serve(self) -> None:
        """Serve until a ``shutdown`` command or :meth:`stop`; then drain and close."""
        self._vectorise.start()
        self._sender.start()
        self.health.start()
        poller = zmq.Poller()
        poller.register(self._tiles, zmq.POLLIN)
        poller.register(self._control, zmq.POLLIN)
        poller.register(self._notify, zmq.POLLIN)
        self._event("started", endpoints=self.endpoints, device=self.device_in_use)
        next_telemetry = time.monotonic()
        # The loop wakes at least once per health period, so an idle ingest still answers its ping;
        # and within half the hang timeout, which may be shorter than the period: else a poll that
        # slept a whole period aged the ingest heartbeat past it, and an idle runtime was "hung".
        # At least 1 ms: a poll of 0 ms would spin.
        wake_s = min(self.settings.telemetry_period_s, self.settings.health["period_s"],
                     self.settings.health["hang_timeout_s"] / 2)
        period_ms = max(1, int(wake_s * 1000))
        try:
            while self._running:
                self._ingest.begin(None)
                room = self._room()
                # Full: tiles wait in the socket (their senders' windows fill, so they stop), and
                # the loop looks again soon for results that have left.
                poller.modify(self._tiles, zmq.POLLIN if room else 0)
                ready = dict(poller.poll(period_ms if room else min(period_ms, 20)))
                self._answer(ready)
                if self._tiles in ready:
                    # A burst of tiles is taken before control is looked at again, but bounded
                    # so that a flood cannot starve a shutdown or a model upload.
                    for _ in range(64):
                        if not self._room():
                            break
                        try:
                            frames = self._tiles.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._on_tile(frames)
                if time.monotonic() >= next_telemetry:
                    self._telemetry.send_multipart([b"telemetry", protocol.dumps(self.status())])
                    next_telemetry = time.monotonic() + self.settings.telemetry_period_s
                self._publish()
        finally:
            self._event("stopping")
            self._ingest.end()
            self._stopping = True
            failure = self._drain_answering_control()
            self._forward_done()  # the last "done"s, so senders know these tiles are delivered
            self._publish()
            self.close()
            if failure is not None:  # a bug in the drain is raised as before, once the sockets are closed
                raise failure

    def _answer(self, ready: dict[Any, int]) -> None:
        """What the main loop does for its senders and clients whenever it wakes, serving or draining:
        "done"s of acknowledged results forwarded, and one control message answered, if ``ready``
        (a poll's answer) says they are waiting."""
        if self._notify in ready:
            self._guarded(self._forward_done)
        if self._control in ready:
            self._guarded(self._on_control, self._control.recv_multipart())

    def _drain(self) -> None:
        """Finish every accepted tile at shutdown: the device's requests, post-processing, and the
        results' delivery (up to ``shutdown_grace_s`` for the ground's acks). Runs on its own thread
        (:meth:`_drain_answering_control`)."""
        drained = self._drain_device()
        if self.serving is not None and drained:  # a hung device is left as it is (close waits for it)
            self.serving.adapter.close()
        # Health still runs: a worker stuck on a tile is restarted as ever; one that stays stuck
        # twice the hang timeout has its tile given up on, so that shutdown never hangs on it.
        self._vectorise.stop(stuck_s=2 * self.settings.health["hang_timeout_s"])
        self.health.stop()
        self._sender.stop(self.settings.shutdown_grace_s)

    def _drain_answering_control(self) -> BaseException | None:
        """Run :meth:`_drain` on a thread of its own while this one, which owns the control and tile
        sockets, answers commands (:data:`ANSWERED_WHILE_STOPPING`; others get an error reply), forwards
        "done"s as results are acknowledged and publishes events. Returns what the drain raised, if anything.

        Why: the drain lasts as long as the ground takes to acknowledge (``shutdown_grace_s``) or a stuck
        tile takes to be given up on (twice ``hang_timeout_s``), and no control message was read meanwhile:
        a client asking ``status`` waited for a reply that never came, and the socket closed under it.
        """
        failure: list[BaseException] = []

        def drain() -> None:
            try:
                self._drain()
            except BaseException as exc:  # handed back to serve(), which raises it as the drain did inline
                failure.append(exc)

        thread = threading.Thread(target=drain, name="drain", daemon=True)
        thread.start()
        poller = zmq.Poller()
        poller.register(self._control, zmq.POLLIN)
        poller.register(self._notify, zmq.POLLIN)
        while thread.is_alive():
            self._answer(dict(poller.poll(50)))
            self._publish()
        # Commands that came as the drain ended are answered too, a burst's worth at most: a client
        # sending without pause cannot hold the exit.
        for _ in range(64):
            try:
                frames = self._control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._guarded(self._on_control, frames)
        return failure[0] if failure else None

    def _drain_device(self) -> bool:
        """Until every accepted tile has left the device: in-flight requests collected, on the
        serving adapter and on any a reopen replaced (their failures come back for a re-run), and
        the re-runs of failed ones (which may submit again, or reopen the device) done. False when
        the serving device hung (a request neither done nor failed in ``patience_s``): its tiles are
        left to their senders' resends, as a replaced device's are."""
        # A replaced device may hang rather than fail (a request whose wait never returns): it is
        # waited for as long as a stuck vectorise worker is at shutdown, then left; its tiles got no
        # "done", so their senders resend them to the next runtime.
        patience_s = 2 * float(self.settings.health["hang_timeout_s"])
        while self.serving is not None:
            adapter = self.serving.adapter
            if not adapter.wait_all(patience_s):
                log.warning("the serving device has not answered its requests in %.0f s: its tiles in "
                            "flight are left to their senders' resends", patience_s)
                return False
            with self._lock:
                closing = [t for t in self._closing if t.is_alive()]
            deadline = time.monotonic() + patience_s
            for thread in closing:
                thread.join(max(0.0, deadline - time.monotonic()))
            hung = [t for t in closing if t.is_alive()]
            if hung:
                log.warning("a replaced device has not closed in %.0f s: its tiles in flight are left to "
                            "their senders' resends", patience_s)
            with self._lock:
                self._closing = [t for t in self._closing if t not in hung]
            self.recovery.settle()
            with self._lock:  # after the re-runs: one of them may have reopened the device again
                still_closing = any(t.is_alive() for t in self._closing)
            if (self.serving.adapter is adapter and adapter.in_flight == 0 and self.recovery.pending == 0
                    and not still_closing):
                return True
        return True

    def stop(self) -> None:
        """Ask the loop to finish (from a signal handler or another thread)."""
        self._running = False

    def close(self) -> None:
        self.recovery.close()
        for sock in (self._tiles, self._control, self._telemetry, self._results, self._notify, self._acks):
            if sock is not None:
                sock.close()
        if self._curve is not None:
            self._curve.stop()
        self._ctx.term()
        if self._tmp is not None:
            self._tmp.cleanup()

"""The payload's store of installed bundles: ``current`` and ``previous``, swapped atomically.

A bundle (runtime/bundle.py) is what travels; the store is what the payload keeps of the bundles it
accepted, so that a restart serves the last one (and can fall back to the one before), whatever
power cut came in between.

What the store owns, and cleans when it is opened: its ``bundles/`` folder, where nothing but the
bundle folders that ``current`` and ``previous`` name is kept (a folder, file or link left there by
an interrupted prune or copy is removed; until 2026-12-05 only folders were, and a stray file stayed
for ever); and, in its root, only the names it writes itself: ``.incoming-*`` staging folders,
``.current.tmp`` / ``.previous.tmp`` links of an interrupted swap (a ``.probe-*`` file of an
interrupted :func:`can_write` is in ``bundles/``). Anything else in the root is left alone (a store may be a folder
shared with other files). A ``current`` or ``previous`` that is not the store's own link into
``bundles/`` (a folder or file put there by hand) is refused when the store is opened, naming it and
what to do: installs used to fail on it with "Is a directory", and a prune kept the hand-made folder
while removing the bundles it stood for (tests/runtime/test_store_leftovers_review19.py). A store that
cannot be written is only warned of (it installs and prunes nothing, and serves what ``current`` holds);
``bundles/`` may itself be a link (tests/runtime/test_store_links_review19b.py).

A store given the model cache's folder (``cache_dir``) prunes, with its bundles, the cache entries
its index says belong only to bundles it no longer holds (:mod:`runtime.cache_index`): OpenVINO
never removes one, and every bundle ever served left its entries on the flash. Entries the index does
not name (written before it, or by another program) are kept and logged as a warning with their count
and bytes at each prune.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from runtime import cache_index
from runtime.atomic import sync_dir, write_atomic
from runtime.bundle import (COMPILED_DIR, SIGNATURE_FILE, Bundle, BundleError, read_bundle, write_bundle_as_is,
                            write_compiled)

log = logging.getLogger(__name__)

#: The links the store makes, each to a bundle folder in ``bundles/``.
LINKS = ("current", "previous")
#: can_write's probe files: a crash between their creation and removal leaves one (pruned from bundles/).
PROBE_PREFIX = ".probe-"


def can_write(folder: Path) -> bool:
    """Whether files can be written into ``folder``, found by trying: a read-only mount or a full disk
    says no to root too, whatever the permission bits (``os.access`` says yes to both).

    The probe holds a block of data, synced: a full disk still makes an empty file (a directory entry
    needs no data block), and the runtime took a full store for writable, tried to install its
    ``--model`` and died of ENOSPC (tests/runtime/test_full_store_review16b.py)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX)
    except OSError:
        return False
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):  # a prune of bundles/ meanwhile took it as a leftover
            os.unlink(probe)


class BundleStore:
    """Installed bundles on disk: ``current`` and ``previous`` are symlinks swapped atomically.

    A power cut at any point leaves ``current`` pointing at a complete bundle: the new one is
    written and fsynced in its own directory before a single ``rename`` moves the link.
    """

    def __init__(self, root: str | os.PathLike[str], cache_dir: str = ""):
        """Open (creating it if need be) the store at ``root``, and clear what a crash left in it.

        ``cache_dir``: OpenVINO's model cache of the compiles made for this store's bundles ("": none),
        whose entries are pruned with the bundles (:meth:`_prune`).

        Raises:
            ValueError: if ``root`` (or its ``bundles`` folder) exists and is not a directory: a
                clear error for ``serve --store FILE`` rather than a NotADirectoryError traceback; or
                if ``current`` or ``previous`` is not the store's own link (:meth:`_check_links`).
        """
        # Resolved: links are written relative to it from resolved bundle paths, and a store given
        # as a relative path, or under a symlink, refused every uplink after the first.
        self.root = Path(root).resolve()
        self.cache_dir = cache_dir
        for folder in (self.root, self.root / "bundles"):
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"--store {folder}: not a directory")
        try:
            (self.root / "bundles").mkdir(parents=True, exist_ok=True)
        except OSError:
            # A read-only store folder never written to (no bundles/ yet) is a store with nothing
            # installed, as a read-only one is with its bundles: `serve --model` serves unpersisted
            # there too, rather than exiting on EROFS. A store folder that cannot be made is an error.
            if not self.root.is_dir():
                raise
        # Before anything is removed: a prune reads the links to know which bundles to keep.
        self._check_links()
        # An install interrupted before its rename leaves a staging folder that nothing points to.
        for stale in self.root.glob(".incoming-*"):
            shutil.rmtree(stale, ignore_errors=True)
        # A swap interrupted between making its link and renaming it over current or previous.
        for name in LINKS:
            tmp = self.root / f".{name}.tmp"
            if tmp.is_symlink():
                _remove(tmp)
        # A prune interrupted mid-rmtree leaves a partial bundle that no link points to; left there,
        # a later install of the same model would find the folder and take it for installed.
        self._prune()

    def _check_links(self) -> None:
        """Refuse a ``current`` or ``previous`` that the store did not make: a folder or file put
        there by hand, or a link to anything but a folder in ``bundles/``. Installing over one
        failed with a bare "Is a directory" (a link cannot be renamed over a folder) after making
        ``previous`` name the hand-made folder, and a prune removed the bundles that were not it.
        A store that cannot be written is not refused, only warned of: nothing is installed or pruned
        there, it serves what ``current`` holds (as it did before the refusal), and the advice to move
        the folder out could not be followed on a read-only mount; refused, the payload did not start."""
        bundles = self.root / "bundles"
        writable: bool | None = None  # found by trying, once, and only for a link the store did not make
        # resolved as the links are: bundles/ may itself be a link (the bundles on another partition)
        real_bundles = Path(os.path.realpath(bundles))
        for name in LINKS:
            path = self.root / name
            if not os.path.lexists(path):
                continue
            if path.is_symlink():
                if Path(os.path.realpath(path)).parent == real_bundles:
                    continue
                what = f"a link to {os.readlink(path)}, not to a bundle folder in {bundles}"
            else:
                what = f"a {'folder' if path.is_dir() else 'file'}, not the link into {bundles} that the store makes"
            if writable is None:
                writable = self.writable
            if not writable:
                log.warning("store %s (read-only): %s is %s; served as it is, nothing can be installed", self.root,
                            path, what)
                continue
            raise ValueError(f"store {self.root}: {path} is {what}. The store did not make it and will not "
                             f"replace it: move it out of the store (a bundle to serve is given with --model, "
                             f"or uplinked, and installed here) and start again")

    @property
    def writable(self) -> bool:
        """Whether new bundles can be installed (a read-only store can still serve its current one).

        Found by trying, not by permission bits (:func:`can_write`).
        """
        return can_write(self.root / "bundles")

    def install(self, bundle: Bundle) -> Path:
        """Install ``bundle`` and make it ``current`` (the one before it ``previous``).

        A bundle already in the store (the same id: the same manifest and IR) is not rewritten, but
        what is not part of its id is brought up to date, or a restart would read back less than
        was accepted: its signature is replaced by the one given (the ground re-signs a model when
        it rotates its key, and the payload, now checking the new key, would refuse the old one at
        its next start), and compiled blobs given are added. A signature or blob not given again is
        kept: each is still true of these bytes (a signature is over the id, a blob is checked
        against the IR when read), and an install without one happens only where none is required.
        """
        target = self.root / "bundles" / bundle.id
        # A staging folder is removed again whatever stops the install (a full disk: ENOSPC): the
        # open that removes leftovers runs only at a start, and a payload that runs for months while
        # the ground retries an uplink would keep one per try (tests/runtime/test_growth_review.py).
        if not target.exists():
            staged = self._staged(bundle)
            try:
                os.replace(staged, target)
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
            sync_dir(self.root / "bundles")  # the bundle is in bundles/ on disk before a link names it
            sync_dir(self.root)  # and its staging name is gone from the root
        elif not self._reads_back(target):
            # A folder of this id that does not read back (a crash in the middle of removing it)
            # is written again whole: linking ``current`` to it would leave a store whose next start
            # cannot read its model. It is moved aside under a staging name first (a directory
            # cannot be replaced by rename while it holds files), so that a crash in between leaves
            # only what the next open removes.
            staged = self._staged(bundle)
            broken: Path | None = None
            try:
                broken = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-broken-"))
                os.replace(target, broken / "bundle")
                os.replace(staged, target)
                sync_dir(self.root / "bundles")
            finally:  # what is left of either (staged: only if its rename did not happen)
                for leftover in (staged, broken):
                    if leftover is not None and leftover.exists():
                        shutil.rmtree(leftover, ignore_errors=True)
        else:
            self._update(target, bundle)
        current = self.current_path()
        if current is not None and current.resolve() != target.resolve():
            self._link("previous", current.resolve())
        self._link("current", target)
        self._prune()
        return target

    def _staged(self, bundle: Bundle) -> Path:
        """``bundle`` written whole into a new staging folder of the store (a rename away from installed)."""
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        try:
            write_bundle_as_is(staging, bundle)
            if (staging / COMPILED_DIR).is_dir():
                sync_dir(staging / COMPILED_DIR)
            sync_dir(staging)
        except BaseException:  # half written: removed now, not at the next start
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    @staticmethod
    def _reads_back(folder: Path) -> bool:
        """Whether an installed bundle folder reads back whole (every file present, checksums good)."""
        try:
            read_bundle(folder)
        except (BundleError, OSError):
            return False
        return True

    def _update(self, target: Path, bundle: Bundle) -> None:
        """Bring an installed bundle's signature and compiled blobs up to date with ``bundle`` (the
        same id), each file replaced atomically, so that a power cut at any point leaves a bundle
        that reads back whole: the old signature or the new, and no blob beside a record of another."""
        if bundle.signature is not None:
            write_atomic(target / SIGNATURE_FILE, bundle.signature)
        write_compiled(target, bundle)  # each artefact replaced so that it reads back whole throughout
        sync_dir(target)
        folder = target / COMPILED_DIR
        if folder.is_dir():
            sync_dir(folder)

    def current_path(self) -> Path | None:
        """The ``current`` link, if it points at a folder (None also for a dangling link)."""
        link = self.root / "current"
        return link if link.exists() else None

    def previous_path(self) -> Path | None:
        """The ``previous`` link, if it points at a folder (None also for a dangling link)."""
        link = self.root / "previous"
        return link if link.exists() else None

    def has_current(self) -> bool:
        """Whether a ``current`` link exists at all, even one whose bundle is gone (a start-up then
        falls back to ``previous`` rather than starting with no model)."""
        return os.path.lexists(self.root / "current")

    def roll_back(self) -> Path:
        """Make ``previous`` the ``current`` bundle (the ``previous`` link is removed, and the bundle
        that was current is pruned): what a start-up does when ``current`` cannot serve, so that a
        later install keeps the good bundle as ``previous`` rather than the broken one.

        Raises:
            ValueError: if there is no ``previous`` bundle.
            OSError: if the store cannot be written (a read-only store serves ``previous`` as it is).
        """
        previous = self.previous_path()
        if previous is None:
            raise ValueError(f"store {self.root}: no previous bundle to roll back to")
        target = self.root / "bundles" / previous.resolve().name
        self._link("current", target)
        (self.root / "previous").unlink()
        sync_dir(self.root)
        self._prune()
        return self.root / "current"

    def _link(self, name: str, target: Path) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(target.relative_to(self.root), tmp)
        os.replace(tmp, self.root / name)
        sync_dir(self.root)  # the link's move is on disk before the caller (the ground's "ok") goes on

    def _prune(self) -> None:
        """Remove everything in ``bundles/`` that neither ``current`` nor ``previous`` points to:
        bundle folders, and files or links left there (``rmtree`` alone skipped those silently); and
        the model cache's entries of bundles no longer here (the folder name is the bundle's id)."""
        keep = {p.resolve() for p in (self.current_path(), self.previous_path()) if p is not None}
        if not (self.root / "bundles").is_dir():  # a read-only store never written to: nothing to prune
            return
        for path in (self.root / "bundles").iterdir():
            if path.resolve() not in keep:
                _remove(path)
        if self.cache_dir:
            cache_index.prune(self.cache_dir, {path.name for path in keep})
            count, size = cache_index.unindexed(self.cache_dir)
            if count:  # reported, never removed: they may be current's, or not the runtime's (cache_index)
                log.warning("model cache %s holds %d entries (%d bytes) its index does not name (written before "
                            "the index, or not by this runtime): kept; if the folder is the runtime's alone, they "
                            "may be removed by hand (a model whose entry goes is compiled again at its next open)",
                            self.cache_dir, count, size)


def _remove(path: Path) -> None:
    """Remove ``path``, a folder with what it holds, or a file or link (never what a link points to);
    a store that cannot be written keeps it (a read-only store still serves)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        path.unlink()

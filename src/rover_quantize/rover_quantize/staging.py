"""Build a model directory beside its target and swap it in only when it is finished.

A model directory in use on the car (say /opt/rover/models/current) must never be left half
written: a build goes into `.<name>.rover-build-XXXX/` in the same parent directory, and
`commit()` swaps it with the target in one rename (Linux renameat2 RENAME_EXCHANGE; elsewhere
two renames). A failed or interrupted build only removes its own staging directory; one that
was SIGKILLed leaves it behind, locked by nobody, and the next build removes it. Each staging
directory is guarded by an flock on its `.lock` file, which the kernel drops when the process
dies, so a running build's directory is never taken for a stale one.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import QuantizeError

_TAG = '.rover-build-'
_LOCK = '.lock'


def resolve_target(out_dir) -> Path:
    """The real directory to replace (a symlink such as models/current is followed, not replaced)."""
    target = Path(os.path.realpath(Path(out_dir).expanduser()))
    if target.exists() and not target.is_dir():
        raise QuantizeError(f'{out_dir} exists and is not a directory')
    if target.is_dir() and any(target.iterdir()) and not (target / 'manifest.json').exists():
        raise QuantizeError(f'{out_dir} is not empty and is not a model directory; choose another -o')
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links (FAT on a USB stick)
        shutil.copy2(src, dst)


def _try_lock(path: Path):
    """An open, flock-ed file object, or None when another process holds the lock."""
    f = open(path, 'a+b')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def clean_stale(target: Path) -> list[Path]:
    """Remove staging directories of builds into `target` that died (their lock is free).
    A build killed between the two renames of the fallback swap is undone first."""
    removed = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    for lock_path in sorted(parent.glob(f'.{target.name}{_TAG}*{_LOCK}')):
        lock = _try_lock(lock_path)
        if lock is None:
            continue  # a live build
        try:
            stage = Path(str(lock_path)[:-len(_LOCK)])
            old = stage.with_name(stage.name + '.old')
            if old.is_dir() and not target.exists():
                os.rename(old, target)
            for path in (stage, old):
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
            lock_path.unlink(missing_ok=True)
        finally:
            lock.close()
    return removed


class StagedDir:
    """`with StagedDir(target) as stage:` build into stage.path, then stage.commit();
    leaving the block without commit() removes the staging directory."""

    def __init__(self, target, copy_existing: bool = False):
        """Checks the target and removes dead builds' leftovers at once (before any long work)."""
        self.target = resolve_target(target)
        self.copy_existing = copy_existing
        self.committed = False
        self.removed_stale = clean_stale(self.target)

    def __enter__(self) -> 'StagedDir':
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        fd, lock_name = tempfile.mkstemp(prefix=f'.{self.target.name}{_TAG}', suffix=_LOCK, dir=parent)
        os.close(fd)
        self._lock_path = Path(lock_name)
        self._lock = _try_lock(self._lock_path)
        self.path = Path(lock_name[:-len(_LOCK)])
        try:
            if self.copy_existing and self.target.is_dir():
                # Unchanged model files are hard links (no copy of 100+ MB); everything the
                # pipeline rewrites it replaces by rename, so the target's files stay as they were.
                # The report is rewritten in place, so it is copied.
                shutil.copytree(self.target, self.path, copy_function=_link_or_copy,
                                ignore=shutil.ignore_patterns('report'))
                if (self.target / 'report').is_dir():
                    shutil.copytree(self.target / 'report', self.path / 'report')
            else:
                self.path.mkdir()
        except BaseException:
            self._discard()
            raise
        return self

    def commit(self) -> Path:
        """Put the finished directory in the target's place; the old one is removed."""
        target = self.target
        if not target.exists():
            os.rename(self.path, target)
        elif _exchange(self.path, target):
            shutil.rmtree(self.path)              # now holds the old model
        else:
            old = self.path.with_name(self.path.name + '.old')
            os.rename(target, old)
            os.rename(self.path, target)
            shutil.rmtree(old)
        self.committed = True
        return target

    def _discard(self):
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock_path.unlink(missing_ok=True)
        self._lock.close()

    def __exit__(self, *exc):
        if self.committed:
            self._lock_path.unlink(missing_ok=True)
            self._lock.close()
        else:
            self._discard()
        return False


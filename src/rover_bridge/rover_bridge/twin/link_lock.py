"""Who owns a link path: an flock on `<link>.lock`, held while a board serves the link.

The kernel drops the lock when its owner dies, so a link left behind by a crash
is replaced, while the live link of another running board is refused with a
clear error. The simavr firmware runner (tests/firmware) takes the same lock.
"""
from __future__ import annotations

import fcntl
import os


class LinkInUse(FileExistsError):
    """The link path belongs to another running virtual Arduino."""


class LinkLock:
    """Ownership of one link path (see the module docstring)."""

    def __init__(self, link: str):
        self.link = link
        self.path = f'{link}.lock'
        self._fd = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors='replace').strip() or '?'
                os.close(fd)
                raise LinkInUse(f'{self.link} is the live link of another virtual Arduino (pid {owner}); '
                                'refusing to replace it: give this run its own serial_link') from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not unlinked by its previous owner between our open and our lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.unlink(self.path)
            os.close(self._fd)
            self._fd = None

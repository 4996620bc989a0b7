"""A folder of images in natural name order, one per frame."""
from __future__ import annotations

import glob
import os
import re

import cv2
import numpy as np

from rover_camera.sources.base import FrameSource, SourceLost, SourceUnavailable

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                    '.pnm')


def _natural_key(path: str):
    name = os.path.basename(path)
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def list_images(folder: str) -> list[str]:
    """Image files of `folder` in natural name order (frame2 before frame10)."""
    if not os.path.isdir(folder):
        return []
    names = [p for p in glob.glob(os.path.join(glob.escape(folder), '*'))
             if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p)]
    return sorted(names, key=_natural_key)


class ImageFolderSource(FrameSource):
    kind = 'folder'

    def __init__(self, path: str, loop: bool = True):
        super().__init__()
        self.path = path
        self.loop = loop
        self.loops = 0
        self.skipped_files = 0
        self._files: list[str] = []
        self._index = 0
        self._frame: np.ndarray | None = None

    @property
    def description(self) -> str:
        return f'image folder {self.path}'

    def open(self) -> None:
        if not os.path.isdir(self.path):
            raise SourceUnavailable(f'cannot open {self.description}: no such directory')
        files = list_images(self.path)
        if not files:
            raise SourceUnavailable(
                f'cannot open {self.description}: it holds no images '
                f'({", ".join("*" + e for e in IMAGE_EXTENSIONS[:4])}, ...)')
        self._files = files
        self._index = 0

    def grab(self) -> bool:
        """Load the next readable image (reading the file is this source's capture)."""
        attempts = 0
        while True:
            if self._index >= len(self._files):
                if not self.loop:
                    return False
                self._relist()  # a new pass sees files added or removed meanwhile
                self.loops += 1
            path = self._files[self._index]
            self._index += 1
            frame = cv2.imread(path, cv2.IMREAD_COLOR)
            if frame is not None:
                self._frame = frame
                return True
            if os.path.exists(path):  # there but unreadable: skip it, keep going
                self.skipped_files += 1
                self.notice(f'{self.description}: skipping unreadable image {os.path.basename(path)}')
            else:  # files are disappearing: look again from where we are
                position = os.path.basename(path)
                self._relist()
                self._index = next((i for i, p in enumerate(self._files)
                                    if _natural_key(p) > _natural_key(position)), len(self._files))
            attempts += 1
            if attempts > len(self._files) + 1:
                raise SourceLost(f'{self.description}: no readable image left')

    def _relist(self) -> None:
        files = list_images(self.path)
        if not files:
            gone = 'is gone' if not os.path.isdir(self.path) else 'has no images any more'
            raise SourceLost(f'{self.description} {gone}')
        self._files = files
        self._index = 0

    def retrieve(self) -> np.ndarray:
        return self._frame

    def details(self) -> dict:
        return {'images': len(self._files), 'loops': self.loops, 'skipped_files': self.skipped_files}

"""A video file, read at the node's fps and looped by reopening it."""
from __future__ import annotations

import os

import cv2

from rover_camera.sources.base import SourceLost, SourceUnavailable, _CvCaptureSource


class VideoFileSource(_CvCaptureSource):
    kind = 'file'

    def __init__(self, path: str, loop: bool = True):
        super().__init__()
        self.path = path
        self.loop = loop
        self.loops = 0
        self._pending_frame = False

    @property
    def description(self) -> str:
        return f'video file {self.path}'

    def open(self) -> None:
        if not os.path.isfile(self.path):
            raise SourceUnavailable(f'cannot open {self.description}: no such file')
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(
                f'cannot open {self.description}: OpenCV cannot read it (container or codec '
                'not supported by this OpenCV build)')
        if not cap.grab():  # a file without a single readable frame is not a source
            cap.release()
            raise SourceUnavailable(f'cannot open {self.description}: it has no readable frames')
        self._cap = cap
        self._pending_frame = True

    def grab(self) -> bool:
        # The open file descriptor would keep a removed file readable; the user
        # removing the file means the source is gone.
        if not os.path.exists(self.path):
            raise SourceLost(f'{self.description} disappeared')
        if self._pending_frame:
            self._pending_frame = False
            return True
        if self._cap.grab():
            return True
        if not self.loop:
            return False
        # Reopen by path rather than seek: picks up a replaced file and
        # works for containers that cannot seek.
        self.close()
        try:
            self.open()
        except SourceUnavailable as exc:
            raise SourceLost(str(exc)) from None
        self.loops += 1
        self._pending_frame = False
        return True

    def nominal_fps(self) -> float:
        return float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0

    def details(self) -> dict:
        return {'loops': self.loops}

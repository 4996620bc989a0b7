"""What every frame source shares: the interface, its failures, the capture-format checks
and the cv2.VideoCapture plumbing of the device, pipeline and file sources."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SourceError(Exception):
    """Base of the recoverable source failures."""


class SourceUnavailable(SourceError):
    """The source could not be opened (now); retrying later may succeed."""


class SourceLost(SourceError):
    """The source failed while running (removed, unplugged, read error)."""


def fourcc_to_str(code: float) -> str:
    code = int(code)
    if code <= 0:
        return ''
    text = ''.join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() else f'0x{code:08x}'


@dataclass(frozen=True)
class CaptureFormat:
    width: int
    height: int
    fps: float
    fourcc: str = ''

    def __str__(self):
        fourcc = f'{self.fourcc} ' if self.fourcc else ''
        fps = f'{self.fps:g} fps' if self.fps > 0 else 'unknown fps'
        return f'{fourcc}{self.width}x{self.height} @ {fps}'


def format_mismatch(requested: CaptureFormat, actual: CaptureFormat) -> str | None:
    """A warning when a device delivers something else than asked for, else None."""
    differences = []
    if (actual.width, actual.height) != (requested.width, requested.height):
        differences.append('size')
    if requested.fps > 0 and actual.fps > 0 and abs(actual.fps - requested.fps) > 0.5:
        differences.append('frame rate')
    if requested.fourcc and actual.fourcc and actual.fourcc.upper() != requested.fourcc.upper():
        differences.append('pixel format')
    if not differences:
        return None
    return (f'asked for {requested}, the device delivers {actual} '
            f'(different {", ".join(differences)})')


class FrameSource:
    """Interface of every frame source."""

    kind = 'abstract'
    paced = True  # True: the node paces reads to `fps`; False: the source sets the rate (a camera)

    def __init__(self):
        self._notices: list[str] = []

    @property
    def description(self) -> str:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def grab(self) -> bool:
        raise NotImplementedError

    def retrieve(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def nominal_fps(self) -> float:
        """Frame rate the source claims to deliver, 0 when unknown (for gap accounting)."""
        return 0.0

    def details(self) -> dict:
        """Extra key/values for /diagnostics."""
        return {}

    def notice(self, message: str) -> None:
        self._notices.append(message)

    def take_notices(self) -> list[str]:
        """Warnings raised since the last call (the capture loop logs them)."""
        notices, self._notices = self._notices, []
        return notices


class _CvCaptureSource(FrameSource):
    """Shared grab/retrieve for sources backed by cv2.VideoCapture."""

    def __init__(self):
        super().__init__()
        self._cap = None

    def grab(self) -> bool:
        if self._cap is None:
            raise SourceLost(f'{self.description} is not open')
        if not self._cap.grab():
            raise SourceLost(f'reading from {self.description} failed')
        return True

    def retrieve(self) -> np.ndarray:
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise SourceLost(f'decoding a frame from {self.description} failed')
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

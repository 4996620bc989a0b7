"""Where frames come from: V4L2 devices, GStreamer pipelines, video files,
image folders and a synthetic test pattern. Plain Python + OpenCV, no ROS.

A source is opened, then read with `grab()` (wait for / fetch the next frame;
the caller takes the capture stamp right after it) and `retrieve()` (decode it).
Failures are exceptions the capture loop understands:
- `SourceUnavailable`: opening failed; trying again later may work.
- `SourceLost`: the source went away while running; close and reopen.
- `ValueError`: a configuration that can never work (bad source string,
  OpenCV without GStreamer); reported at start-up.
`grab()` returning False means a clean end of stream (a file with loop off).
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

import cv2
import numpy as np

SOURCE_GRAMMAR = (
    'synthetic | test_pattern (moving test pattern with a frame counter); '
    'device:<N> | device:<path> | <N> | /dev/video<N> | /dev/v4l/by-id/... (V4L2 camera); '
    'gst:<pipeline> or any string containing "!" (GStreamer pipeline; an appsink is appended '
    'when missing); file:<path> or a path ending in a video extension (video file); '
    'dir:<path>, an existing directory or a path ending in "/" (folder of images, name order)')

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg', '.mpeg', '.ts',
                    '.wmv', '.flv', '.mjpg', '.mjpeg', '.h264', '.h265')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                    '.pnm')


class SourceError(Exception):
    """Base of the recoverable source failures."""


class SourceUnavailable(SourceError):
    """The source could not be opened (now); retrying later may succeed."""


class SourceLost(SourceError):
    """The source failed while running (removed, unplugged, read error)."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str    # 'device' | 'gstreamer' | 'file' | 'folder' | 'synthetic'
    target: str  # device index or path, pipeline, file or folder path; '' for synthetic


def parse_source(text: str) -> SourceSpec:
    """Turn the `source` parameter into a SourceSpec; ValueError if it makes no sense."""
    raw = text
    text = (text or '').strip()
    if not text:
        raise ValueError(f'parameter source is empty; expected {SOURCE_GRAMMAR}')
    lower = text.lower()
    if lower in ('synthetic', 'test_pattern', 'testpattern', 'synthetic:', 'test_pattern:'):
        return SourceSpec('synthetic', '')
    prefix, sep, rest = text.partition(':')
    prefix = prefix.lower() if sep else ''
    if prefix == 'gst':
        if not rest.strip():
            raise ValueError('source "gst:" needs a pipeline, e.g. gst:libcamerasrc ! videoconvert ! appsink')
        return SourceSpec('gstreamer', rest.strip())
    if '!' in text:
        return SourceSpec('gstreamer', text)
    if prefix == 'device':
        return SourceSpec('device', _device_target(rest.strip(), raw))
    if lower.startswith('file://'):
        return SourceSpec('file', _path(text[len('file://'):], raw))
    if prefix == 'file':
        return SourceSpec('file', _path(rest, raw))
    if prefix == 'dir':
        return SourceSpec('folder', _path(rest, raw))
    if text.isdigit():
        return SourceSpec('device', text)
    if text.startswith('/dev/'):
        return SourceSpec('device', text)
    if prefix and len(prefix) > 1 and '/' not in prefix:  # 'bogus:xyz' (but not C:\ paths)
        raise ValueError(f'unknown source type {prefix!r} in source={raw!r}; expected {SOURCE_GRAMMAR}')
    path = os.path.expanduser(text)
    if path.lower().endswith(VIDEO_EXTENSIONS):
        return SourceSpec('file', path)
    if path.endswith('/') or os.path.isdir(path):
        return SourceSpec('folder', path.rstrip('/') or '/')
    raise ValueError(f'cannot tell what kind of source {raw!r} is; expected {SOURCE_GRAMMAR}')


def _device_target(rest: str, raw: str) -> str:
    if rest.isdigit() or rest.startswith('/'):
        return rest
    raise ValueError(f'source={raw!r}: after "device:" give an index (device:0) or a path '
                     '(device:/dev/video0, device:/dev/v4l/by-id/...)')


def _path(rest: str, raw: str) -> str:
    rest = rest.strip()
    if not rest:
        raise ValueError(f'source={raw!r} has no path')
    return os.path.expanduser(rest)


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


class V4L2DeviceSource(_CvCaptureSource):
    kind = 'device'
    paced = False

    def __init__(self, device: str, width: int, height: int, fps: float, fourcc: str = 'MJPG',
                 read_timeout_ms: int = 2000):
        super().__init__()
        self.device = device
        self.path = f'/dev/video{device}' if device.isdigit() else device
        self.requested = CaptureFormat(width, height, fps, fourcc.upper())
        self.actual: CaptureFormat | None = None
        self.mismatch: str | None = None
        self._read_timeout_ms = read_timeout_ms

    @property
    def description(self) -> str:
        return f'V4L2 device {self.path}'

    def _tried(self) -> str:
        return f'tried the OpenCV V4L2 backend asking for {self.requested}'

    def open(self) -> None:
        if not os.path.exists(self.path):
            raise SourceUnavailable(
                f'cannot open {self.description}: {self.path} does not exist ({self._tried()}; '
                'is the camera plugged in? `v4l2-ctl --list-devices` lists the devices)')
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise SourceUnavailable(
                f'cannot open {self.description}: permission denied ({self._tried()}; '
                'add the user to the "video" group)')
        target = int(self.device) if self.device.isdigit() else self.device
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(
                f'cannot open {self.description}: OpenCV refused it ({self._tried()}; '
                'is it a capture node? it may be busy in another program)')
        if self.requested.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.requested.fourcc[:4].ljust(4)))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.requested.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.requested.height)
        cap.set(cv2.CAP_PROP_FPS, self.requested.fps)
        if hasattr(cv2, 'CAP_PROP_READ_TIMEOUT_MSEC'):  # notice an unplugged camera quickly
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_ms)
        self.actual = CaptureFormat(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                    int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                                    float(cap.get(cv2.CAP_PROP_FPS)),
                                    fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC)))
        self.mismatch = format_mismatch(self.requested, self.actual)
        if self.mismatch:
            self.notice(f'{self.description}: {self.mismatch}')
        self._cap = cap

    def grab(self) -> bool:
        if not os.path.exists(self.path):
            raise SourceLost(f'{self.description} disappeared ({self.path} is gone)')
        return super().grab()

    def nominal_fps(self) -> float:
        return self.actual.fps if self.actual and self.actual.fps > 0 else self.requested.fps

    def details(self) -> dict:
        values = {'requested_format': str(self.requested)}
        if self.actual is not None:
            values['actual_format'] = str(self.actual)
        return values


def opencv_has_gstreamer() -> bool:
    try:
        from cv2 import videoio_registry
        return bool(videoio_registry.hasBackend(cv2.CAP_GSTREAMER))
    except (ImportError, AttributeError):  # very old OpenCV: look at the build summary
        info = cv2.getBuildInformation()
        match = re.search(r'GStreamer:\s*(\w+)', info)
        return bool(match and match.group(1).upper() == 'YES')


class GStreamerSource(_CvCaptureSource):
    kind = 'gstreamer'
    paced = False  # live pipelines (libcamerasrc, v4l2src) set their own rate

    def __init__(self, pipeline: str):
        super().__init__()
        if not opencv_has_gstreamer():
            raise ValueError(
                f'source is a GStreamer pipeline, but this OpenCV ({cv2.__version__}) was built '
                'without GStreamer (opencv-python-headless from PyPI is); on the Pi use the '
                'system OpenCV (apt install python3-opencv) and do not pip-install opencv-python '
                'over it, or use a V4L2 source (device:0)')
        if 'appsink' not in pipeline:
            pipeline += ' ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1'
        self.pipeline = pipeline

    @property
    def description(self) -> str:
        return f'GStreamer pipeline "{self.pipeline}"'

    def open(self) -> None:
        cap = cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(
                f'cannot start {self.description} (check it with gst-launch-1.0; the camera may '
                'be missing or busy)')
        self._cap = cap

    def nominal_fps(self) -> float:
        return float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0


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


# --- synthetic test pattern -------------------------------------------------
COUNTER_BITS = 24


def _counter_band(width: int, height: int) -> tuple[int, float]:
    """Height of the counter band and width of one bit block."""
    return max(6, height // 10), width / COUNTER_BITS


def draw_frame_counter(image: np.ndarray, counter: int) -> None:
    """Write `counter` as black/white blocks across the top band (survives JPEG and resizing)."""
    height, width = image.shape[:2]
    band, block = _counter_band(width, height)
    value = counter % (1 << COUNTER_BITS)
    for bit in range(COUNTER_BITS):
        on = (value >> (COUNTER_BITS - 1 - bit)) & 1
        image[:band, int(round(bit * block)):int(round((bit + 1) * block))] = 255 if on else 0


def decode_frame_counter(image: np.ndarray) -> int:
    """Read back the counter written by draw_frame_counter (sampling block centres)."""
    height, width = image.shape[:2]
    band, block = _counter_band(width, height)
    gray = image if image.ndim == 2 else image.mean(axis=2)
    value = 0
    for bit in range(COUNTER_BITS):
        x0 = int(bit * block + block * 0.3)
        x1 = max(x0 + 1, int(bit * block + block * 0.7))
        y0, y1 = band // 4, max(band // 4 + 1, (3 * band) // 4)
        value = (value << 1) | int(gray[y0:y1, x0:x1].mean() > 127)
    return value


class TestPatternRenderer:
    """A moving colour pattern with the frame number on it; cheap enough for 30 fps."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        ys, xs = np.mgrid[0:height, 0:2 * width]
        # Periodic in x with period `width`, so a sliding window of it wraps seamlessly.
        phase = 2 * np.pi * xs / width
        base = np.stack([127 + 120 * np.sin(phase),
                         127 + 120 * np.sin(phase + 2.1 + ys / max(1, height) * 3),
                         127 + 120 * np.cos(phase + ys / max(1, height) * 6)], axis=-1)
        self._base = np.clip(base, 0, 255).astype(np.uint8)

    def render(self, counter: int) -> np.ndarray:
        shift = (counter * 4) % self.width
        image = self._base[:, shift:shift + self.width].copy()
        bar = (counter * 8) % self.width  # a bright bar moving faster than the background
        image[:, bar:bar + max(2, self.width // 80)] = 255
        draw_frame_counter(image, counter)
        band, _ = _counter_band(self.width, self.height)
        scale = max(0.4, self.height / 360)
        cv2.putText(image, f'frame {counter}', (8, band + int(30 * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(2 * scale)),
                    cv2.LINE_AA)
        return image


class TestPatternSource(FrameSource):
    kind = 'synthetic'
    __test__ = False  # not a pytest class

    def __init__(self, width: int, height: int):
        super().__init__()
        self._renderer = TestPatternRenderer(width, height)
        self.counter = -1

    @property
    def description(self) -> str:
        return 'synthetic test pattern'

    def open(self) -> None:
        pass

    def grab(self) -> bool:
        self.counter += 1
        return True

    def retrieve(self) -> np.ndarray:
        return self._renderer.render(self.counter)


def create_source(spec: SourceSpec, *, width: int, height: int, fps: float,
                  fourcc: str = 'MJPG', loop: bool = True) -> FrameSource:
    if spec.kind == 'device':
        return V4L2DeviceSource(spec.target, width, height, fps, fourcc)
    if spec.kind == 'gstreamer':
        return GStreamerSource(spec.target)
    if spec.kind == 'file':
        return VideoFileSource(spec.target, loop)
    if spec.kind == 'folder':
        return ImageFolderSource(spec.target, loop)
    if spec.kind == 'synthetic':
        return TestPatternSource(width, height)
    raise ValueError(f'unknown source kind {spec.kind!r}')

"""Live sources that set their own rate: V4L2 cameras and GStreamer pipelines."""
from __future__ import annotations

import os
import re

import cv2

from rover_camera.sources.base import (CaptureFormat, SourceLost, SourceUnavailable, _CvCaptureSource,
                                       format_mismatch, fourcc_to_str)


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

"""Where frames come from: V4L2 devices, GStreamer pipelines, video files,
image folders and a synthetic test pattern. Plain Python + OpenCV, no ROS.

One module per subject (spec: the `source` grammar; base: the interface and format
checks; device: V4L2 and GStreamer; video_file; image_folder; pattern: the synthetic
test pattern); this
package holds the factory and exports every public name, so
`from rover_camera.sources import ...` is the one import for users.

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

# the public names, as before the split (noqa: re-exported)
from rover_camera.sources.base import (  # noqa: F401
    CaptureFormat, FrameSource, SourceError, SourceLost, SourceUnavailable, format_mismatch, fourcc_to_str)
from rover_camera.sources.device import GStreamerSource, V4L2DeviceSource, opencv_has_gstreamer  # noqa: F401
from rover_camera.sources.image_folder import IMAGE_EXTENSIONS, ImageFolderSource, list_images  # noqa: F401
from rover_camera.sources.pattern import (  # noqa: F401
    COUNTER_BITS, TestPatternRenderer, TestPatternSource, decode_frame_counter, draw_frame_counter)
from rover_camera.sources.spec import SOURCE_GRAMMAR, VIDEO_EXTENSIONS, SourceSpec, parse_source  # noqa: F401
from rover_camera.sources.video_file import VideoFileSource  # noqa: F401


def create_source(spec: SourceSpec, *, width: int, height: int, fps: float,
                  fourcc: str = 'MJPG', loop: bool = True) -> FrameSource:
    """The source of a parsed `source` parameter (not opened yet)."""
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

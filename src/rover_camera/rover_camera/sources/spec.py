"""The `source` parameter's grammar: a string -> SourceSpec (which kind, which target)."""
from __future__ import annotations

import os
from dataclasses import dataclass

SOURCE_GRAMMAR = (
    'synthetic | test_pattern (moving test pattern with a frame counter); '
    'device:<N> | device:<path> | <N> | /dev/video<N> | /dev/v4l/by-id/... (V4L2 camera); '
    'gst:<pipeline> or any string containing "!" (GStreamer pipeline; an appsink is appended '
    'when missing); file:<path> or a path ending in a video extension (video file); '
    'dir:<path>, an existing directory or a path ending in "/" (folder of images, name order)')

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg', '.mpeg', '.ts',
                    '.wmv', '.flv', '.mjpg', '.mjpeg', '.h264', '.h265')


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

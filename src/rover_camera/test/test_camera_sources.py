"""Source string grammar, the file/folder/test-pattern sources, format checks. No ROS."""
import os
import shutil

import cv2
import numpy as np
import pytest

from rover_camera import sources as src
from rover_camera.sources import (CaptureFormat, SourceLost, SourceSpec, SourceUnavailable,
                                  format_mismatch, parse_source)


@pytest.mark.parametrize('text, kind, target', [
    ('synthetic', 'synthetic', ''),
    ('Test_Pattern', 'synthetic', ''),
    ('device:0', 'device', '0'),
    ('device:/dev/v4l/by-id/usb-cam-video-index0', 'device', '/dev/v4l/by-id/usb-cam-video-index0'),
    ('2', 'device', '2'),
    ('/dev/video1', 'device', '/dev/video1'),
    ('gst:libcamerasrc ! videoconvert ! appsink', 'gstreamer', 'libcamerasrc ! videoconvert ! appsink'),
    ('v4l2src device=/dev/video0 ! appsink', 'gstreamer', 'v4l2src device=/dev/video0 ! appsink'),
    ('file:/data/run.bin', 'file', '/data/run.bin'),
    ('file:///data/run.mkv', 'file', '/data/run.mkv'),
    ('/data/drive.MP4', 'file', '/data/drive.MP4'),
    ('clips/lap.avi', 'file', 'clips/lap.avi'),
    ('dir:/data/frames', 'folder', '/data/frames'),
    ('/data/frames/', 'folder', '/data/frames'),
    ('  synthetic  ', 'synthetic', ''),
])
def test_parse_source_grammar(text, kind, target):
    assert parse_source(text) == SourceSpec(kind, target)


def test_existing_directory_is_a_folder_source(tmp_path):
    assert parse_source(str(tmp_path)) == SourceSpec('folder', str(tmp_path))


def test_user_home_is_expanded():
    assert parse_source('file:~/lap.mp4').target == os.path.expanduser('~/lap.mp4')


@pytest.mark.parametrize('text, message', [
    ('', 'empty'),
    ('bogus:xyz', "unknown source type 'bogus'"),
    ('device:front', 'index'),
    ('file:', 'no path'),
    ('gst:', 'needs a pipeline'),
    ('/data/notes.txt', 'cannot tell'),
    ('camera', 'cannot tell'),
])
def test_parse_source_rejects_nonsense_with_the_grammar(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_source(text)
    if message not in ('index', 'no path', 'needs a pipeline'):
        assert 'synthetic' in str(info.value) and 'device:' in str(info.value)


def test_format_mismatch_names_what_differs():
    asked = CaptureFormat(640, 360, 30.0, 'MJPG')
    assert format_mismatch(asked, CaptureFormat(640, 360, 30.0, 'MJPG')) is None
    assert format_mismatch(asked, CaptureFormat(640, 360, 30.2, 'mjpg')) is None
    text = format_mismatch(asked, CaptureFormat(640, 480, 15.0, 'YUYV'))
    assert 'MJPG 640x360 @ 30 fps' in text and 'YUYV 640x480 @ 15 fps' in text
    assert 'size' in text and 'frame rate' in text and 'pixel format' in text
    assert format_mismatch(asked, CaptureFormat(640, 360, 0.0, '')) is None  # unknown is not a mismatch
    assert src.fourcc_to_str(cv2.VideoWriter_fourcc(*'YUYV')) == 'YUYV'
    assert src.fourcc_to_str(0) == ''


def test_missing_device_error_names_device_and_request():
    device = src.V4L2DeviceSource('/dev/video_rover_test_missing', 640, 360, 30.0, 'MJPG')
    with pytest.raises(SourceUnavailable) as info:
        device.open()
    text = str(info.value)
    assert '/dev/video_rover_test_missing' in text and 'does not exist' in text
    assert 'V4L2' in text and 'MJPG 640x360 @ 30 fps' in text
    assert src.V4L2DeviceSource('3', 640, 360, 30.0).path == '/dev/video3'


def test_gstreamer_without_support_is_a_config_error():
    if src.opencv_has_gstreamer():
        source = src.GStreamerSource('videotestsrc')
        assert source.pipeline.endswith('appsink drop=true max-buffers=1')
    else:
        with pytest.raises(ValueError, match='without GStreamer'):
            src.create_source(parse_source('gst:videotestsrc ! appsink'), width=8, height=8, fps=1.0)


def test_frame_counter_survives_jpeg_and_resizing():
    renderer = src.TestPatternRenderer(160, 120)
    for counter in (0, 1, 37, 4095, 123456, (1 << src.COUNTER_BITS) - 1):
        image = renderer.render(counter)
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        assert src.decode_frame_counter(image) == counter
        ok, jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 60])
        assert src.decode_frame_counter(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)) == counter
        assert src.decode_frame_counter(cv2.resize(image, (320, 240))) == counter


def test_test_pattern_moves_and_counts():
    source = src.TestPatternSource(64, 48)
    source.open()
    frames = []
    for _ in range(3):
        assert source.grab()
        frames.append(source.retrieve())
    assert [src.decode_frame_counter(f) for f in frames] == [0, 1, 2]
    assert not np.array_equal(frames[0][20:], frames[1][20:])  # below the counter band, it moves


def write_video(path, count, size=(96, 64), fps=30.0, fourcc='mp4v'):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f'cannot write {fourcc} video {path}'
    renderer = src.TestPatternRenderer(*size)
    for i in range(count):
        writer.write(renderer.render(i))
    writer.release()


def read_all(source, limit):
    counters = []
    while len(counters) < limit and source.grab():
        counters.append(src.decode_frame_counter(source.retrieve()))
    return counters


@pytest.mark.parametrize('name, fourcc', [('clip.mp4', 'mp4v'), ('clip.avi', 'MJPG')])
def test_video_file_plays_in_order_and_loops(tmp_path, name, fourcc):
    path = tmp_path / name
    write_video(path, 5, fourcc=fourcc)
    looping = src.create_source(parse_source(str(path)), width=96, height=64, fps=30.0, loop=True)
    looping.open()
    assert read_all(looping, 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert looping.details()['loops'] == 2
    looping.close()
    once = src.VideoFileSource(str(path), loop=False)
    once.open()
    assert read_all(once, 12) == [0, 1, 2, 3, 4]
    assert once.grab() is False
    once.close()


def test_video_file_removed_while_playing_is_lost_then_reopens(tmp_path):
    path = tmp_path / 'clip.mp4'
    write_video(path, 5)
    source = src.VideoFileSource(str(path))
    source.open()
    assert read_all(source, 2) == [0, 1]
    moved = tmp_path / 'elsewhere.mp4'
    path.rename(moved)
    with pytest.raises(SourceLost, match='disappeared'):
        source.grab()
    source.close()
    with pytest.raises(SourceUnavailable, match='no such file'):
        source.open()
    moved.rename(path)
    source.open()
    assert read_all(source, 2) == [0, 1]
    source.close()


def test_video_file_that_is_not_a_video(tmp_path):
    path = tmp_path / 'broken.mp4'
    path.write_bytes(b'this is not a video' * 10)
    with pytest.raises(SourceUnavailable, match='broken.mp4'):
        src.VideoFileSource(str(path)).open()


def write_images(folder, counters, size=(64, 48)):
    renderer = src.TestPatternRenderer(*size)
    folder.mkdir(exist_ok=True)
    for i in counters:
        cv2.imwrite(str(folder / f'frame{i}.png'), renderer.render(i))


def test_image_folder_natural_order_loop_and_end(tmp_path):
    folder = tmp_path / 'frames'
    write_images(folder, [0, 1, 2, 10, 11])  # natural order puts frame10 after frame2
    (folder / 'notes.txt').write_text('not an image')
    looping = src.create_source(parse_source(f'dir:{folder}'), width=64, height=48, fps=10.0)
    looping.open()
    assert read_all(looping, 7) == [0, 1, 2, 10, 11, 0, 1]
    once = src.ImageFolderSource(str(folder), loop=False)
    once.open()
    assert read_all(once, 10) == [0, 1, 2, 10, 11]


def test_image_folder_skips_unreadable_and_follows_changes(tmp_path):
    folder = tmp_path / 'frames'
    write_images(folder, [0, 1, 2, 3])
    (folder / 'frame1.png').write_bytes(b'garbage')
    source = src.ImageFolderSource(str(folder))
    source.open()
    assert read_all(source, 2) == [0, 2]
    assert source.skipped_files == 1
    assert 'frame1.png' in ' '.join(source.take_notices())
    os.remove(folder / 'frame3.png')  # listed but gone: carry on with the rest
    write_images(folder, [4])
    assert read_all(source, 3) == [4, 0, 2]


def test_image_folder_emptied_is_lost_and_reopens_when_refilled(tmp_path):
    folder = tmp_path / 'frames'
    write_images(folder, [0, 1, 2])
    source = src.ImageFolderSource(str(folder))
    source.open()
    assert read_all(source, 1) == [0]
    aside = tmp_path / 'aside'
    shutil.move(str(folder), str(aside))
    folder.mkdir()
    with pytest.raises(SourceLost, match='no images'):
        source.grab()
    with pytest.raises(SourceUnavailable, match='holds no images'):
        source.open()
    os.rmdir(folder)
    with pytest.raises(SourceUnavailable, match='no such directory'):
        source.open()
    shutil.move(str(aside), str(folder))
    source.open()
    assert read_all(source, 2) == [0, 1]

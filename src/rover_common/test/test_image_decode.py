"""The ROS-free decoder of bag frames (rover_dataset and rover_quantize), checked against the
online path: what the offline tools read is what the policy node sees."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time

from rover_common import image_conversion, image_decode

# encoding -> cv2 conversion from BGR
FROM_BGR = {'bgr8': None, 'rgb8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_BGR2GRAY,
            'bgra8': cv2.COLOR_BGR2BGRA, 'rgba8': cv2.COLOR_BGR2RGBA}


def raw_message(pixels, encoding, padding=0):
    """A rosbags-like Image (plain attributes, not an rclpy message), rows padded by `padding` bytes."""
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    padded = np.concatenate([row, np.full((h, padding), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=padded.shape[1],
                           data=np.ascontiguousarray(padded).reshape(-1))


@pytest.mark.parametrize('encoding', sorted(FROM_BGR))
@pytest.mark.parametrize('padding', [0, 5])
def test_raw_encodings_decode_to_the_rgb_the_policy_node_sees(encoding, padding):
    bgr = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    pixels = bgr if FROM_BGR[encoding] is None else cv2.cvtColor(bgr, FROM_BGR[encoding])
    raw = raw_message(pixels, encoding, padding)
    rgb = image_decode.decode_rgb(raw, 'sensor_msgs/msg/Image')
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 9, 3) and rgb.flags['C_CONTIGUOUS']
    # the online conversion (rclpy message, cv_bridge or numpy) of the same bytes, as RGB
    msg = image_conversion.bgr_to_image_msg(bgr, Time(), 'camera')
    msg.encoding, msg.step, msg.data = encoding, raw.step, raw.data.tobytes()
    assert np.array_equal(rgb, image_conversion.image_msg_to_bgr(msg)[..., ::-1])
    expected = bgr if encoding != 'mono8' else cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    assert np.array_equal(rgb, expected[..., ::-1])


def test_compressed_frames_decode_to_rgb():
    bgr = np.zeros((8, 10, 3), np.uint8)
    bgr[:, :5] = (255, 0, 0)  # blue left half, in BGR
    for ext in ('.png', '.jpg'):
        ok, data = cv2.imencode(ext, bgr)
        assert ok
        msg = SimpleNamespace(format=ext[1:], data=data.tobytes())
        rgb = image_decode.decode_rgb(msg, 'sensor_msgs/msg/CompressedImage')
        assert rgb.shape == (8, 10, 3)
        assert np.allclose(rgb[4, 1], (0, 0, 255), atol=8) and np.allclose(rgb[4, 8], (0, 0, 0), atol=8)


def test_undecodable_frames_raise_one_error_type():
    ok = raw_message(np.zeros((4, 4, 3), np.uint8), 'rgb8')
    cases = [
        (SimpleNamespace(**{**vars(ok), 'encoding': '16UC1'}), 'Image', 'unsupported image encoding'),
        (SimpleNamespace(**{**vars(ok), 'data': ok.data[:-1]}), 'Image', 'too short'),
        (SimpleNamespace(**{**vars(ok), 'step': 11}), 'Image', 'too short'),  # step < a row
        (SimpleNamespace(format='jpeg', data=b'not a jpeg'), 'CompressedImage', 'cannot decode'),
    ]
    for msg, kind, message in cases:
        with pytest.raises(image_decode.ImageDecodeError, match=message):
            image_decode.decode_rgb(msg, f'sensor_msgs/msg/{kind}')
    assert issubclass(image_decode.ImageDecodeError, ValueError)


def test_the_decoder_imports_nothing_from_ros():
    import ast
    tree = ast.parse(open(image_decode.__file__).read())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {'__future__', 'cv2', 'numpy'}, modules

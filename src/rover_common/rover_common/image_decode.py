"""Camera messages read from bags -> RGB arrays, without ROS (numpy and cv2 only).

The offline tools (rover_dataset, rover_quantize) read bags with `rosbags`,
whose messages have the fields of sensor_msgs/Image and CompressedImage but are
not rclpy messages, so rover_common.image_conversion (which builds rclpy
messages) is not for them. Both decode frames here, so a dataset and the
quantizer's calibration frames come from the same pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

# sensor_msgs/Image encodings the camera path can produce -> channels
CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


class ImageDecodeError(ValueError):
    """The message is not a frame we can decode (the callers turn it into their own error)."""


def is_compressed(msgtype: str) -> bool:
    """For a message type name such as 'sensor_msgs/msg/CompressedImage'."""
    return msgtype.endswith('CompressedImage')


def raw_pixels(msg) -> np.ndarray:
    """H x W x channels uint8 pixels of a sensor_msgs/Image (rgb8/bgr8/mono8/rgba8/bgra8), row
    padding dropped; the checks every conversion needs (encoding, step, data size)."""
    enc = msg.encoding
    if enc not in CHANNELS:
        raise ImageDecodeError(f'unsupported image encoding {enc!r}; expected one of {", ".join(CHANNELS)}')
    ch, h, w, step = CHANNELS[enc], int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, np.uint8).reshape(-1)
    if step < w * ch or data.size < step * h:
        raise ImageDecodeError(f'image data too short: {data.size} bytes for {h} rows of step {step}')
    return data[:step * h].reshape(h, step)[:, :w * ch].reshape(h, w, ch)


def raw_to_rgb(msg) -> np.ndarray:
    """H x W x 3 uint8 RGB of a sensor_msgs/Image (rgb8/bgr8/mono8/rgba8/bgra8); rows may be padded."""
    px, enc = raw_pixels(msg), msg.encoding
    if enc == 'rgb8':
        return px.copy()
    if enc == 'bgr8':
        return px[..., ::-1].copy()
    if enc == 'mono8':
        return np.repeat(px, 3, axis=2)
    if enc == 'rgba8':
        return px[..., :3].copy()
    return px[..., 2::-1].copy()  # bgra8


_TO_BGR = {'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR, 'rgba8': cv2.COLOR_RGBA2BGR,
           'mono8': cv2.COLOR_GRAY2BGR}


def pixels_to_bgr(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """H x W x 3 uint8 BGR (a new array) of raw_pixels() of an image in `encoding`."""
    return pixels.copy() if encoding == 'bgr8' else cv2.cvtColor(pixels, _TO_BGR[encoding])


def compressed_to_rgb(msg) -> np.ndarray:
    """H x W x 3 uint8 RGB of a sensor_msgs/CompressedImage (JPEG or PNG)."""
    bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f'cannot decode a compressed image (format {msg.format!r})')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_rgb(msg, msgtype: str) -> np.ndarray:
    """H x W x 3 uint8 RGB of an Image or CompressedImage message of type `msgtype`."""
    return compressed_to_rgb(msg) if is_compressed(msgtype) else raw_to_rgb(msg)

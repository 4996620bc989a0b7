"""The one place that turns images into messages and back.

cv_bridge is used when it can be imported (a full ROS install, e.g. the Pi);
otherwise a numpy conversion with the same behaviour for the encodings we use
(the pixel reading is rover_common.image_decode's, shared with the bag readers).
"""
import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from rover_common import image_decode

try:  # the tests inject a stand-in (test_image_conversion_contract.py)
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
except ImportError:  # the PyPI set-up has no cv_bridge
    _BRIDGE = None


def backend_name() -> str:
    return 'cv_bridge' if _BRIDGE is not None else 'numpy'


def bgr_to_image_msg(bgr: np.ndarray, stamp, frame_id: str) -> Image:
    """A bgr8 sensor_msgs/Image of an HxWx3 uint8 array."""
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f'expected HxWx3 uint8 BGR, got {bgr.dtype} {bgr.shape}')
    if _BRIDGE is not None:
        msg = _BRIDGE.cv2_to_imgmsg(bgr, encoding='bgr8')
    else:
        msg = Image()
        msg.height, msg.width = bgr.shape[:2]
        msg.encoding = 'bgr8'
        msg.is_bigendian = 0
        msg.step = bgr.shape[1] * 3
        msg.data = np.ascontiguousarray(bgr).tobytes()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def image_msg_to_bgr(msg: Image) -> np.ndarray:
    """An HxWx3 uint8 BGR array of a sensor_msgs/Image (8-bit encodings)."""
    # checked (image_decode) for both branches: cv_bridge would raise numpy's TypeError for
    # short data and silently read past a step shorter than a row
    try:
        pixels = image_decode.raw_pixels(msg)
    except image_decode.ImageDecodeError as exc:  # this API's error is a plain ValueError
        raise ValueError(str(exc)) from None
    # cv_bridge's Python reads rows of step // channels whole pixels, so it needs the step to be
    # a whole number of pixels; the numpy path handles any row padding
    if _BRIDGE is not None and msg.step % pixels.shape[2] == 0:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding='bgr8')
    return image_decode.pixels_to_bgr(pixels, msg.encoding)


def bgr_to_compressed_msg(bgr: np.ndarray, stamp, frame_id: str, quality: int = 80) -> CompressedImage:
    ok, encoded = cv2.imencode('.jpg', bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError('JPEG encoding failed')
    msg = CompressedImage()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.format = 'jpeg'
    msg.data = encoded.tobytes()
    return msg


def compressed_msg_to_bgr(msg: CompressedImage) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f'could not decode compressed image (format {msg.format!r})')
    return pixels

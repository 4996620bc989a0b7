"""The image conversion contract, over both branches of rover_common.image_conversion.

On the Pi (a full ROS install) the conversion goes through cv_bridge; on a PyPI set-up,
as in CI, through numpy. So that the branch the car runs is tested too, a stand-in for
cv_bridge is injected: it follows the Python API and the behaviour of cv_bridge's
python/cv_bridge/core.py (ros-perception/vision_opencv, ROS 2 branches) -- its rows of
`step / bytes per pixel` pixels, the is_bigendian swap, CvBridgeError (a TypeError) from
the C++ getCvType/cvtColor2 and numpy's own TypeError for a too-short buffer. Both
branches must give the same pixels and the same errors for every encoding we decode.
"""
import contextlib
import importlib
import re
import sys
import types

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image

from rover_common import image_conversion, image_decode


class CvBridgeError(TypeError):
    """cv_bridge's error for a failed conversion."""


# What the C++ getCvType knows: the sensor_msgs encodings (the 8- and 16-bit colour ones,
# yuv422, bayer) and the OpenCV type names such as 8UC3.
_NAMED_TYPES = {
    'mono8': ('uint8', 1), 'mono16': ('uint16', 1), 'yuv422': ('uint8', 2),
    **{f'{c}{d}': (f'uint{d}', len(c)) for c in ('bgr', 'rgb', 'bgra', 'rgba') for d in (8, 16)},
    **{f'bayer_{p}{d}': (f'uint{d}', 1) for p in ('rggb', 'bggr', 'gbrg', 'grbg') for d in (8, 16)},
}
_DEPTHS = {'8U': 'uint8', '8S': 'int8', '16U': 'uint16', '16S': 'int16', '32S': 'int32', '32F': 'float32',
           '64F': 'float64'}
# The C++ cvtColor2 for the 8-bit colour encodings (it converts more; we use these)
_COLOUR_CODES = {
    ('rgb8', 'bgr8'): cv2.COLOR_RGB2BGR, ('bgra8', 'bgr8'): cv2.COLOR_BGRA2BGR,
    ('rgba8', 'bgr8'): cv2.COLOR_RGBA2BGR, ('mono8', 'bgr8'): cv2.COLOR_GRAY2BGR,
    ('bgr8', 'rgb8'): cv2.COLOR_BGR2RGB, ('bgr8', 'mono8'): cv2.COLOR_BGR2GRAY,
}


def _get_cv_type(encoding):
    if encoding in _NAMED_TYPES:
        return _NAMED_TYPES[encoding]
    match = re.fullmatch(r'(8U|8S|16U|16S|32S|32F|64F)(?:C([0-9]+))?', encoding)
    if match:
        return _DEPTHS[match[1]], int(match[2] or 1)
    raise RuntimeError(f'Unrecognized image encoding [{encoding}]')


def _cvt_color2(image, src, dst):
    for encoding in (src, dst):
        _get_cv_type(encoding)
    if src == dst:
        return image.copy()
    if (src, dst) not in _COLOUR_CODES:
        raise RuntimeError(f'Unsupported conversion from [{src}] to [{dst}]')
    return cv2.cvtColor(image, _COLOUR_CODES[src, dst])


class CvBridge:
    """cv_bridge.CvBridge's conversions, with its Python layer as in core.py."""

    def encoding_to_dtype_with_channels(self, encoding):
        try:
            return _get_cv_type(encoding)
        except RuntimeError as e:
            raise CvBridgeError(e)

    def imgmsg_to_cv2(self, img_msg, desired_encoding='passthrough'):
        dtype, n_channels = self.encoding_to_dtype_with_channels(img_msg.encoding)
        dtype = np.dtype(dtype).newbyteorder('>' if img_msg.is_bigendian else '<')
        img_buf = np.asarray(img_msg.data, dtype=dtype) if isinstance(img_msg.data, list) else img_msg.data
        # rows of step / bytes-per-pixel whole pixels, without strides: as cv_bridge does
        if n_channels == 1:
            im = np.ndarray(shape=(img_msg.height, int(img_msg.step / dtype.itemsize)), dtype=dtype, buffer=img_buf)
            im = np.ascontiguousarray(im[:img_msg.height, :img_msg.width])
        else:
            im = np.ndarray(shape=(img_msg.height, int(img_msg.step / dtype.itemsize / n_channels), n_channels),
                            dtype=dtype, buffer=img_buf)
            im = np.ascontiguousarray(im[:img_msg.height, :img_msg.width, :])
        if img_msg.is_bigendian == (sys.byteorder == 'little'):
            im = im.byteswap().view(im.dtype.newbyteorder())  # core.py's byteswap().newbyteorder(), numpy 2
        if desired_encoding == 'passthrough':
            return im
        try:
            return _cvt_color2(im, img_msg.encoding, desired_encoding)
        except RuntimeError as e:
            raise CvBridgeError(e)

    def cv2_to_imgmsg(self, cvim, encoding='passthrough', header=None):
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError('Your input type is not a numpy array')
        img_msg = Image()
        img_msg.height, img_msg.width = cvim.shape[0], cvim.shape[1]
        if header is not None:
            img_msg.header = header
        cv_type = (np.dtype(cvim.dtype).name, 1 if cvim.ndim < 3 else cvim.shape[2])
        if encoding == 'passthrough':
            img_msg.encoding = f'{next(k for k, v in _DEPTHS.items() if v == cv_type[0])}C{cv_type[1]}'
        else:
            img_msg.encoding = encoding
            if self.encoding_to_dtype_with_channels(encoding) != cv_type:
                raise CvBridgeError(f'encoding specified as {encoding}, but image has incompatible type {cv_type}')
        if cvim.dtype.byteorder == '>':
            img_msg.is_bigendian = True
        img_msg.data.frombytes(cvim.tobytes())
        img_msg.step = len(img_msg.data) // img_msg.height
        return img_msg

    def compressed_imgmsg_to_cv2(self, cmprs_img_msg, desired_encoding='passthrough'):
        buf = np.ndarray(shape=(1, len(cmprs_img_msg.data)), dtype=np.uint8, buffer=cmprs_img_msg.data)
        im = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR)
        if desired_encoding == 'passthrough':
            return im
        try:
            return _cvt_color2(im, 'bgr8', desired_encoding)
        except RuntimeError as e:
            raise CvBridgeError(e)

    def cv2_to_compressed_imgmsg(self, cvim, dst_format='jpg'):
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError('Your input type is not a numpy array')
        msg = CompressedImage()
        msg.format = dst_format
        try:
            msg.data.frombytes(np.array(cv2.imencode('.' + dst_format, cvim)[1]).tobytes())
        except RuntimeError as e:
            raise CvBridgeError(e)
        return msg


BRANCHES = ('numpy', 'cv_bridge')


@contextlib.contextmanager
def branch_module(name):
    """image_conversion re-imported with the stand-in cv_bridge, or with cv_bridge missing
    (None in sys.modules makes the import fail, also where cv_bridge is installed)."""
    standin = None
    if name == 'cv_bridge':
        standin = types.ModuleType('cv_bridge')
        standin.CvBridge, standin.CvBridgeError = CvBridge, CvBridgeError
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, 'cv_bridge', standin)
            module = importlib.reload(image_conversion)
            assert module.backend_name() == name
            yield module
    finally:
        importlib.reload(image_conversion)  # back to what this machine has


@pytest.fixture(params=BRANCHES)
def branch(request):
    with branch_module(request.param) as module:
        yield module


def outcome(convert, *args):
    """Pixels, or the error as the caller sees it (type and message)."""
    try:
        return ('pixels', convert(*args))
    except Exception as exc:  # the contract covers which exception, so catch all
        return ('error', type(exc).__name__, str(exc))


def same(a, b):
    if a[0] != b[0] or a[0] == 'error':
        return a == b
    return a[1].dtype == b[1].dtype and np.array_equal(a[1], b[1])


SOURCE = np.random.default_rng(7).integers(0, 256, (5, 7, 4), dtype=np.uint8)  # BGR + an alpha
BGR = np.ascontiguousarray(SOURCE[..., :3])
# the frame in each encoding we decode, and the BGR image a decoder must return for it
IN_ENCODING = {'bgr8': BGR, 'rgb8': BGR[..., ::-1], 'bgra8': SOURCE, 'rgba8': SOURCE[..., [2, 1, 0, 3]],
               'mono8': cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)}
EXPECTED = {e: cv2.cvtColor(IN_ENCODING['mono8'], cv2.COLOR_GRAY2BGR) if e == 'mono8' else BGR
            for e in IN_ENCODING}


def message(encoding, pixels, pad=0, extra=0, is_bigendian=0, height=None, width=None):
    """An Image of `pixels` with `pad` bytes at the end of each row and `extra` after the last."""
    rows = pixels.reshape(pixels.shape[0], -1)
    padded = np.zeros((rows.shape[0], rows.shape[1] + pad), np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(encoding=encoding, is_bigendian=is_bigendian, step=padded.shape[1],
                height=pixels.shape[0] if height is None else height, width=pixels.shape[1] if width is None else width)
    msg.data = padded.tobytes() + bytes(extra)
    return msg


def decode_cases():
    for encoding, pixels in IN_ENCODING.items():
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        yield f'{encoding}-tight', message(encoding, pixels), EXPECTED[encoding]
        yield f'{encoding}-padded-one-pixel', message(encoding, pixels, pad=channels), EXPECTED[encoding]
        yield f'{encoding}-padded-odd-bytes', message(encoding, pixels, pad=channels + 1), EXPECTED[encoding]
        yield f'{encoding}-trailing-bytes', message(encoding, pixels, extra=5), EXPECTED[encoding]
        yield f'{encoding}-big-endian-flag', message(encoding, pixels, is_bigendian=1), EXPECTED[encoding]
        short = message(encoding, pixels)
        short.data = short.data.tobytes()[:-1]
        yield f'{encoding}-data-short', short, ValueError
        yield f'{encoding}-step-short', message(encoding, pixels, width=pixels.shape[1] + 1), ValueError
    for encoding in ('16UC1', 'mono16', 'yuv422', 'bgr16', 'nonsense', ''):
        yield f'unsupported-{encoding or "empty"}', message(encoding, BGR), ValueError


CASES = list(decode_cases())
assert set(IN_ENCODING) == set(image_decode.CHANNELS), 'a decoded encoding has no contract case'


@pytest.mark.parametrize('msg, expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_image_msg_to_bgr_contract(msg, expected):
    """Each branch returns the expected BGR pixels (HxWx3 uint8) or a ValueError, and both
    branches give the same pixels and the same error message."""
    results = {}
    for name in BRANCHES:
        with branch_module(name) as module:
            results[name] = outcome(module.image_msg_to_bgr, msg)
    if isinstance(expected, type):
        assert results['numpy'][:2] == ('error', expected.__name__), results
    else:
        assert results['numpy'][0] == 'pixels' and np.array_equal(results['numpy'][1], expected), results
    assert same(results['numpy'], results['cv_bridge']), results


def test_bgr_to_image_msg_contract(branch):
    """The bgr8 message each branch writes (also from a non-contiguous view) decodes on
    both branches; bad arrays are refused alike."""
    view = SOURCE[:, ::2, 2::-1]  # not contiguous
    for pixels in (BGR, view):
        msg = branch.bgr_to_image_msg(pixels, Time(sec=3, nanosec=4), 'cam')
        assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == \
            ('bgr8', pixels.shape[0], pixels.shape[1], pixels.shape[1] * 3, 0)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (3, 4, 'cam')
        assert msg.data.tobytes() == np.ascontiguousarray(pixels).tobytes()
        assert np.array_equal(branch.image_msg_to_bgr(msg), pixels)
    for bad in (np.zeros((2, 2), np.uint8), np.zeros((2, 2, 4), np.uint8), np.zeros((2, 2, 3), np.float32)):
        with pytest.raises(ValueError, match='expected HxWx3 uint8 BGR'):
            branch.bgr_to_image_msg(bad, Time(), 'cam')


def test_our_jpeg_decodes_alike_through_cv_bridge(branch):
    """What a cv_bridge user (rqt, image_transport) decodes from camera/image_raw/compressed."""
    y, x = np.mgrid[0:48, 0:64]
    smooth = np.stack([x * 3, y * 4, x + y], axis=-1).astype(np.uint8)  # JPEG keeps it close
    msg = branch.bgr_to_compressed_msg(smooth, Time(), 'cam', quality=90)
    assert msg.format == 'jpeg'
    ours = branch.compressed_msg_to_bgr(msg)
    assert np.array_equal(CvBridge().compressed_imgmsg_to_cv2(msg, desired_encoding='bgr8'), ours)
    assert np.abs(ours.astype(int) - smooth).mean() < 3

"""Camera calibration: the camera_calibration_parsers YAML format <-> CameraInfo.

The YAML is what `ros2 run camera_calibration cameracalibrator` writes:
image_width, image_height, camera_name, camera_matrix {rows, cols, data},
distortion_model, distortion_coefficients, rectification_matrix,
projection_matrix.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote

import yaml


@dataclass
class Calibration:
    width: int
    height: int
    camera_name: str = ''
    distortion_model: str = ''
    d: list = field(default_factory=list)
    k: list = field(default_factory=lambda: [0.0] * 9)
    r: list = field(default_factory=lambda: [0.0] * 9)
    p: list = field(default_factory=lambda: [0.0] * 12)

    @property
    def calibrated(self) -> bool:
        return self.k[0] != 0.0


def uncalibrated(width: int, height: int) -> Calibration:
    """What camera_info_manager publishes without a calibration: the size, zero matrices."""
    return Calibration(width=width, height=height)


def url_to_path(url: str) -> str:
    """file:///abs.yaml, file://~/x.yaml, package://pkg/rel.yaml or a plain path."""
    url = url.strip()
    if url.startswith('file://'):
        return os.path.expanduser(unquote(url[len('file://'):]))
    if url.startswith('package://'):
        package, _, relative = url[len('package://'):].partition('/')
        try:
            from ament_index_python.packages import get_package_share_directory
        except ImportError:
            raise ValueError(f'camera_info_url {url}: package:// needs ament_index_python') from None
        try:
            share = get_package_share_directory(package)
        except Exception as exc:  # PackageNotFoundError and friends
            raise ValueError(f'camera_info_url {url}: package {package!r} not found ({exc})') from None
        return os.path.join(share, relative)
    if '://' in url:
        raise ValueError(f'camera_info_url {url}: only file:// and package:// URLs are supported')
    return os.path.expanduser(url)


def _matrix(doc: dict, key: str, rows: int | None, cols: int | None, default=None) -> list:
    if key not in doc:
        if default is not None:
            return default
        raise ValueError(f'missing {key}')
    entry = doc[key]
    if not isinstance(entry, dict) or 'data' not in entry:
        raise ValueError(f'{key} must be a mapping with rows, cols and data')
    data = entry['data']
    if not isinstance(data, list):
        raise ValueError(f'{key}.data must be a list')
    r = int(entry.get('rows', rows if rows is not None else 1))
    c = int(entry.get('cols', cols if cols is not None else len(data)))
    if (rows is not None and r != rows) or (cols is not None and c != cols) or len(data) != r * c:
        expected = f'{rows}x{cols}' if rows is not None and cols is not None else f'{r}x{c}'
        raise ValueError(f'{key} must be {expected} with {r * c} values, '
                         f'got rows={r} cols={c} and {len(data)} values')
    try:
        return [float(v) for v in data]
    except (TypeError, ValueError):
        raise ValueError(f'{key}.data must hold numbers') from None


def parse_calibration(text: str, origin: str = 'calibration') -> Calibration:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f'{origin}: not valid YAML ({exc})') from None
    if not isinstance(doc, dict):
        raise ValueError(f'{origin}: expected a YAML mapping in camera_calibration_parsers format')
    try:
        width, height = int(doc['image_width']), int(doc['image_height'])
        if width <= 0 or height <= 0:
            raise ValueError('image_width and image_height must be positive')
        d = _matrix(doc, 'distortion_coefficients', 1, None, default=[])
        return Calibration(
            width=width, height=height,
            camera_name=str(doc.get('camera_name', '') or ''),
            distortion_model=str(doc.get('distortion_model', 'plumb_bob' if d else '') or ''),
            d=d,
            k=_matrix(doc, 'camera_matrix', 3, 3),
            r=_matrix(doc, 'rectification_matrix', 3, 3,
                      default=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
            p=_matrix(doc, 'projection_matrix', 3, 4))
    except KeyError as exc:
        raise ValueError(f'{origin}: missing {exc.args[0]}') from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{origin}: {exc}') from None


def load_calibration(url: str) -> Calibration:
    path = url_to_path(url)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f'camera_info_url {url}: cannot read {path} ({exc.strerror})') from None
    return parse_calibration(text, origin=f'camera_info_url {url}')


def to_camera_info_msg(calibration: Calibration, frame_id: str = ''):
    """A sensor_msgs/CameraInfo (stamp left for the publisher to set per frame)."""
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = calibration.width, calibration.height
    msg.distortion_model = calibration.distortion_model
    msg.d = list(calibration.d)
    msg.k = list(calibration.k)
    msg.r = list(calibration.r)
    msg.p = list(calibration.p)
    return msg

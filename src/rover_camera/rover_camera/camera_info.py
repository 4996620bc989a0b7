"""Camera calibration like camera_info_manager: URLs, YAML and INI files <-> CameraInfo.

Formats (camera_calibration_parsers; `ros2 run camera_calibration cameracalibrator`
writes both into /tmp/calibrationdata.tar.gz):
- YAML (ost.yaml): image_width, image_height, camera_name, camera_matrix {rows, cols,
  data}, distortion_model, distortion_coefficients, rectification_matrix, projection_matrix.
- INI (ost.txt, or *.ini): "# oST version 5.0 parameters", [image] width/height, then
  [camera_name] with "camera matrix", "distortion", "rectification", "projection" rows.
URLs: file:///abs, package://pkg/rel, a plain path; the scheme is case-insensitive;
${NAME} (the camera name) and ${ROS_HOME} (else ~/.ros) are substituted; an empty URL
means file://${ROS_HOME}/camera_info/${NAME}.yaml, camera_info_manager's default.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from urllib.parse import unquote

import yaml

DEFAULT_URL = 'file://${ROS_HOME}/camera_info/${NAME}.yaml'
_NAME = re.compile(r'^[A-Za-z0-9_]+$')  # what camera_info_manager accepts as a camera name


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


def valid_camera_name(name: str) -> bool:
    return bool(_NAME.match(name))


def ros_home() -> str:
    return os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')


def resolve_url(url: str, camera_name: str) -> str:
    """Substitute ${NAME} and ${ROS_HOME}; an empty URL is camera_info_manager's default."""
    url = url.strip() or DEFAULT_URL
    resolved = url.replace('${NAME}', camera_name).replace('${ROS_HOME}', ros_home())
    unknown = re.search(r'\$\{[^}]*\}', resolved)
    if unknown:
        raise ValueError(f'camera_info_url {url}: unknown substitution {unknown.group(0)} '
                         '(known: ${NAME}, ${ROS_HOME})')
    return resolved


def url_to_path(url: str) -> str:
    """file:///abs.yaml, file://~/x.yaml, package://pkg/rel.yaml or a plain path (scheme in any case)."""
    url = url.strip()
    scheme, sep, rest = url.partition('://')
    scheme = scheme.lower() if sep else ''
    if scheme == 'file':
        return os.path.expanduser(unquote(rest))
    if scheme == 'package':
        package, _, relative = rest.partition('/')
        try:
            from ament_index_python.packages import get_package_share_directory
        except ImportError:
            raise ValueError(f'camera_info_url {url}: package:// needs ament_index_python') from None
        try:
            share = get_package_share_directory(package)
        except Exception as exc:  # PackageNotFoundError and friends
            raise ValueError(f'camera_info_url {url}: package {package!r} not found ({exc})') from None
        return os.path.join(share, relative)
    if sep:
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
    """A calibration in either format: INI when it has an [image] section, else YAML."""
    if any(line.strip() == '[image]' for line in text.splitlines()):
        return parse_ini(text, origin)
    return parse_yaml(text, origin)


def parse_yaml(text: str, origin: str = 'calibration') -> Calibration:
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


_INI_KEYS = ('width', 'height', 'camera matrix', 'distortion', 'rectification', 'projection')
_INI_MODELS = {5: 'plumb_bob', 8: 'rational_polynomial'}  # as camera_calibration_parsers reads them


def parse_ini(text: str, origin: str = 'calibration') -> Calibration:
    """cameracalibrator's ost.txt: keyword lines, each followed by rows of numbers."""
    values: dict[str, list[float]] = {}
    camera_name, key = '', None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        if line.startswith('[') and line.endswith(']'):
            if line != '[image]':
                camera_name = line[1:-1]
            key = None
        elif line.lower() in _INI_KEYS:
            key = line.lower()
            values[key] = []
        elif key is None:
            raise ValueError(f'{origin}: line {number}: {line!r} outside a known entry')
        else:
            try:
                values[key] += [float(v) for v in line.split()]
            except ValueError:
                raise ValueError(f'{origin}: line {number}: {key} must hold numbers') from None
    try:
        size = values['width'], values['height']
        if any(len(v) != 1 or v[0] <= 0 or v[0] != int(v[0]) for v in size):
            raise ValueError('width and height must be one positive whole number each')
        d = values.get('distortion', [])
        if d and len(d) not in _INI_MODELS:
            raise ValueError(f'distortion must have 5 or 8 values, got {len(d)}')
        matrices = {'camera matrix': 9, 'rectification': 9, 'projection': 12}
        for name, count in matrices.items():
            if len(values[name]) != count:
                raise ValueError(f'{name} must have {count} values, got {len(values[name])}')
    except KeyError as exc:
        raise ValueError(f'{origin}: missing {exc.args[0]}') from None
    except ValueError as exc:
        raise ValueError(f'{origin}: {exc}') from None
    return Calibration(width=int(size[0][0]), height=int(size[1][0]), camera_name=camera_name,
                       distortion_model=_INI_MODELS.get(len(d), ''), d=d, k=values['camera matrix'],
                       r=values['rectification'], p=values['projection'])


def load_calibration(url: str) -> Calibration:
    path = url_to_path(url)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f'camera_info_url {url}: cannot read {path} ({exc.strerror})') from None
    return parse_calibration(text, origin=f'camera_info_url {url}')


def _numbers(values) -> str:
    return ', '.join(repr(float(v)) for v in values)


def to_yaml(calibration: Calibration) -> str:
    """camera_calibration_parsers' YAML layout."""
    c = calibration

    def matrix(name, rows, cols, data):
        return f'{name}:\n  rows: {rows}\n  cols: {cols}\n  data: [{_numbers(data)}]\n'
    return (f'image_width: {c.width}\nimage_height: {c.height}\n'
            f'camera_name: {c.camera_name}\n'
            + matrix('camera_matrix', 3, 3, c.k)
            + f'distortion_model: {c.distortion_model or "plumb_bob"}\n'
            + matrix('distortion_coefficients', 1, len(c.d), c.d)
            + matrix('rectification_matrix', 3, 3, c.r)
            + matrix('projection_matrix', 3, 4, c.p))


def to_ini(calibration: Calibration) -> str:
    """cameracalibrator's ost.txt layout."""
    c = calibration

    def rows(data, cols):
        return ''.join(' '.join(f'{v:f}' for v in data[i:i + cols]) + '\n'
                       for i in range(0, len(data), cols))
    return (f'# oST version 5.0 parameters\n\n\n[image]\n\nwidth\n{c.width}\n\nheight\n{c.height}\n\n'
            f'[{c.camera_name or "camera"}]\n\ncamera matrix\n{rows(c.k, 3)}\n'
            f'distortion\n{rows(c.d, max(1, len(c.d)))}\nrectification\n{rows(c.r, 3)}\n'
            f'projection\n{rows(c.p, 4)}')


def save_calibration(calibration: Calibration, url: str) -> str:
    """Write where `url` points (INI for .ini/.txt, YAML for .yaml/.yml), atomically; the path."""
    path = url_to_path(url)
    extension = os.path.splitext(path)[1].lower()
    if extension in ('.ini', '.txt'):
        if calibration.d and len(calibration.d) not in _INI_MODELS:
            raise ValueError(f'{path}: the INI format holds 5 or 8 distortion values, not {len(calibration.d)}')
        text = to_ini(calibration)
    elif extension in ('.yaml', '.yml'):
        text = to_yaml(calibration)
    else:
        raise ValueError(f'camera_info_url {url}: cannot save to {extension or "no"} extension '
                         '(use .yaml, .yml, .ini or .txt)')
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.camera_info_', dir=directory)
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            os.replace(tmp, path)  # a reader never sees half a file
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise ValueError(f'cannot save the calibration to {path} ({exc.strerror})') from None
    return path


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


def from_camera_info_msg(msg, camera_name: str = '') -> Calibration:
    """What a set_camera_info request carries, as a Calibration (binning and ROI not kept)."""
    return Calibration(width=int(msg.width), height=int(msg.height), camera_name=camera_name,
                       distortion_model=msg.distortion_model, d=[float(v) for v in msg.d],
                       k=[float(v) for v in msg.k], r=[float(v) for v in msg.r],
                       p=[float(v) for v in msg.p])


def full_frame_problem(msg) -> str | None:
    """Why a CameraInfo's binning/ROI cannot apply to this camera's full, unbinned frames, or None."""
    binning = [b for b in (msg.binning_x, msg.binning_y) if b not in (0, 1)]
    if binning:
        return (f'binning {msg.binning_x}x{msg.binning_y} is not supported: the camera publishes '
                'unbinned frames (send binning 0 or 1)')
    roi = msg.roi
    full = (roi.x_offset, roi.y_offset) == (0, 0) and (roi.width, roi.height) in ((0, 0), (msg.width, msg.height))
    if not full:
        return (f'roi {roi.width}x{roi.height}+{roi.x_offset}+{roi.y_offset} is not supported: the camera '
                'publishes full frames (send an all-zero roi)')
    return None

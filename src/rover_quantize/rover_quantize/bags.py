"""Frames + paired state from rosbag2 directories (MCAP or SQLite3), read with `rosbags`.

No ROS install is needed: messages come out of rosbags as plain dataclasses, so images
are decoded here with numpy/OpenCV (Image: rgb8/bgr8/mono8/rgba8/bgra8; CompressedImage:
jpeg/png). Each frame is paired with the nearest `rover/state` (geometry_msgs/TwistStamped:
[angular.z, linear.x] = [steering, throttle]) by header stamp (log time when a stamp is 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import BagError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
STATE_TYPE = 'geometry_msgs/msg/TwistStamped'
_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


@dataclass
class Frame:
    image: np.ndarray          # H x W x 3 uint8 RGB, resized to the model input
    state: np.ndarray          # float32 [state_dim]
    stamp_ns: int
    bag: str
    index: int                 # position among all image messages of all bags (global)


@dataclass
class BagIndex:
    """What a first, cheap pass over the bags found (no image decoding)."""
    bags: list
    image_topic: dict = field(default_factory=dict)    # bag -> resolved topic name
    image_type: dict = field(default_factory=dict)     # bag -> msgtype
    counts: dict = field(default_factory=dict)         # bag -> number of image messages
    state_times: dict = field(default_factory=dict)    # bag -> np.int64 stamps (sorted)
    state_values: dict = field(default_factory=dict)   # bag -> float32 [n, 2]
    notes: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def _open(bag: Path):
    from rosbags.highlevel import AnyReader
    bag = Path(bag)
    if not bag.exists():
        raise BagError(f'bag not found: {bag}')
    if bag.is_file():  # a bare .mcap/.db3 next to its metadata.yaml: open the directory
        bag = bag.parent
    try:
        reader = AnyReader([bag], default_typestore=_typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several types; all mean the same to the user
        raise BagError(f'cannot open bag {bag}: {exc}') from None
    return reader


def _match_topic(wanted: str, topics: list[str]) -> str | None:
    """'camera/image_raw' matches '/camera/image_raw' and a namespaced '/car/camera/image_raw'."""
    wanted = wanted.strip()
    exact = [t for t in topics if t == wanted or t == '/' + wanted.lstrip('/')]
    if exact:
        return exact[0]
    if not wanted.startswith('/'):
        suffix = [t for t in topics if t.endswith('/' + wanted)]
        if len(suffix) == 1:
            return suffix[0]
    return None


def _topics_text(reader) -> str:
    pairs = sorted({(c.topic, c.msgtype) for c in reader.connections})
    return ', '.join(f'{t} ({m})' for t, m in pairs) or 'none'


def _stamp_ns(msg, log_time: int) -> int:
    header = getattr(msg, 'header', None)
    if header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns > 0:
            return ns
    return int(log_time)


def _read_error(bag, exc) -> BagError:
    return BagError(f'cannot read bag {bag}: {type(exc).__name__}: {exc} (truncated or corrupt?)')


def index_bags(bags, image_topic: str, state_topic: str | None, state_dim: int) -> BagIndex:
    """First pass: find the topics, count image messages, load the (small) state series."""
    if not bags:
        raise BagError('no bags given')
    idx = BagIndex(bags=[str(b) for b in bags])
    for bag in bags:
        reader = _open(bag)
        try:
            topics = sorted({c.topic for c in reader.connections})
            topic = _match_topic(image_topic, topics)
            if topic is None and _match_topic(image_topic.rstrip('/') + '/compressed', topics):
                topic = _match_topic(image_topic.rstrip('/') + '/compressed', topics)
                idx.notes.append(f'{bag}: {image_topic} not recorded, using {topic}')
            if topic is None:
                raise BagError(f'bag {bag} has no image topic {image_topic!r}; topics in it: '
                               f'{_topics_text(reader)}')
            conns = [c for c in reader.connections if c.topic == topic]
            msgtype = conns[0].msgtype
            if msgtype not in IMAGE_TYPES:
                raise BagError(f'{bag}: topic {topic} is {msgtype}, expected sensor_msgs/Image or CompressedImage')
            try:
                count = sum(1 for _ in reader.messages(connections=conns))
            except BagError:
                raise
            except Exception as exc:
                raise _read_error(bag, exc) from None
            if count == 0:
                raise BagError(f'bag {bag}: topic {topic} has no messages')
            idx.image_topic[str(bag)], idx.image_type[str(bag)], idx.counts[str(bag)] = topic, msgtype, count

            times, values = [], []
            if state_dim:
                if not state_topic:
                    raise BagError('the model has a state input but no state topic was given')
                stopic = _match_topic(state_topic, topics)
                if stopic is None:
                    raise BagError(f'bag {bag} has no state topic {state_topic!r}; topics in it: '
                                   f'{_topics_text(reader)}')
                sconns = [c for c in reader.connections if c.topic == stopic]
                if sconns[0].msgtype != STATE_TYPE:
                    raise BagError(f'{bag}: topic {stopic} is {sconns[0].msgtype}, expected {STATE_TYPE}')
                if state_dim != 2:
                    raise BagError(f'the model expects a {state_dim}-D state; {STATE_TYPE} gives 2 '
                                   '([angular.z, linear.x])')
                try:
                    for conn, log_time, raw in reader.messages(connections=sconns):
                        msg = reader.deserialize(raw, conn.msgtype)
                        times.append(_stamp_ns(msg, log_time))
                        values.append((msg.twist.angular.z, msg.twist.linear.x))
                except Exception as exc:
                    raise _read_error(bag, exc) from None
                if not times:
                    raise BagError(f'bag {bag}: state topic {stopic} has no messages')
            order = np.argsort(np.asarray(times, np.int64), kind='stable')
            idx.state_times[str(bag)] = np.asarray(times, np.int64)[order]
            idx.state_values[str(bag)] = np.asarray(values, np.float32).reshape(-1, 2)[order]
        finally:
            reader.close()
    return idx


def split_indices(total: int, n_calib: int, n_valid: int) -> tuple[list[int], list[int]]:
    """Calibration and validation frame indices, both spread over [0, total), disjoint.

    n_calib + n_valid positions are spaced evenly over the whole recording; every
    k-th of them goes to validation so both sets cover the beginning, middle and end.
    """
    if total < 2:
        raise BagError(f'need at least 2 frames (1 calibration + 1 validation), the bags have {total}')
    want = n_calib + n_valid
    if want > total:  # shrink both proportionally, keep at least one each
        n_valid = max(1, min(total - 1, round(total * n_valid / want)))
        n_calib = total - n_valid
        want = total
    positions = np.unique(np.linspace(0, total - 1, want).round().astype(int))
    step = len(positions) / n_valid
    valid_slots = {min(len(positions) - 1, int(step * i + step / 2)) for i in range(n_valid)}
    valid = [int(p) for i, p in enumerate(positions) if i in valid_slots]
    calib = [int(p) for i, p in enumerate(positions) if i not in valid_slots]
    return calib, valid


def decode_image(msg, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 RGB from a rosbags sensor_msgs Image/CompressedImage."""
    if msgtype.endswith('CompressedImage'):
        data = np.frombuffer(bytes(msg.data), np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise BagError(f'cannot decode compressed image (format {msg.format!r})')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    enc = msg.encoding
    if enc not in _CHANNELS:
        raise BagError(f'unsupported image encoding {enc!r}; expected one of {", ".join(_CHANNELS)}')
    ch = _CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, np.uint8).reshape(-1)
    if step < w * ch or data.size < step * h:
        raise BagError(f'image data too short: {data.size} bytes for {h} rows of step {step}')
    px = data[:step * h].reshape(h, step)[:, :w * ch].reshape(h, w, ch)
    if enc == 'rgb8':
        return px.copy()
    if enc == 'bgr8':
        return px[..., ::-1].copy()
    if enc == 'mono8':
        return np.repeat(px, 3, axis=2)
    if enc == 'rgba8':
        return px[..., :3].copy()
    return px[..., 2::-1].copy()  # bgra8


def fit_image(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize to the model's H x W (INTER_AREA; the policy node does the same)."""
    h, w = hw
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def _nearest_state(idx: BagIndex, bag: str, stamp: int, state_dim: int) -> np.ndarray:
    if not state_dim:
        return np.zeros(0, np.float32)
    times, values = idx.state_times[bag], idx.state_values[bag]
    i = int(np.searchsorted(times, stamp))
    candidates = [j for j in (i - 1, i) if 0 <= j < len(times)]
    best = min(candidates, key=lambda j: abs(int(times[j]) - stamp))
    return values[best].astype(np.float32)


def load_frames(idx: BagIndex, wanted: list[int], hw: tuple[int, int], state_dim: int,
                progress: bool = True, desc: str = 'reading frames') -> list[Frame]:
    """Decode the frames at the given global indices (order of `wanted` kept)."""
    from tqdm import tqdm
    wanted_set = set(wanted)
    found: dict[int, Frame] = {}
    offset = 0
    bar = tqdm(total=len(wanted_set), desc=desc, unit='frame', disable=not progress, leave=False)
    for bag in idx.bags:
        count = idx.counts[bag]
        local = {g - offset for g in wanted_set if offset <= g < offset + count}
        if local:
            reader = _open(bag)
            try:
                conns = [c for c in reader.connections if c.topic == idx.image_topic[bag]]
                for i, (conn, log_time, raw) in enumerate(reader.messages(connections=conns)):
                    if i not in local:
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    stamp = _stamp_ns(msg, log_time)
                    rgb = fit_image(decode_image(msg, conn.msgtype), hw)
                    found[offset + i] = Frame(rgb, _nearest_state(idx, bag, stamp, state_dim), stamp, bag, offset + i)
                    bar.update(1)
                    if len(found) == len(wanted_set):
                        break
            except BagError:
                raise
            except Exception as exc:
                raise _read_error(bag, exc) from None
            finally:
                reader.close()
        offset += count
    bar.close()
    missing = wanted_set - set(found)
    if missing:
        raise BagError(f'{len(missing)} frame(s) could not be read back (bag changed or truncated?)')
    return [found[g] for g in wanted]


def write_test_bag(path, *, storage: str = 'mcap', n_frames: int = 20, image_type: str = 'raw',
                   hw=(48, 64), encoding: str = 'bgr8', fps: float = 30.0, seed: int = 0,
                   image_topic: str = '/camera/image_raw', state_topic: str | None = '/rover/state',
                   frames: np.ndarray | None = None) -> Path:
    """Write a small rosbag2 with synthetic camera frames and TwistStamped state (tests, demo)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from .calibration import synthetic_frames
    ts = _typestore()
    Image = ts.types['sensor_msgs/msg/Image']
    CompressedImage = ts.types['sensor_msgs/msg/CompressedImage']
    TwistStamped = ts.types['geometry_msgs/msg/TwistStamped']
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    Twist = ts.types['geometry_msgs/msg/Twist']
    Vector3 = ts.types['geometry_msgs/msg/Vector3']
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    rgb_frames = frames if frames is not None else synthetic_frames(n_frames, hw[0], hw[1], seed=seed)
    start = 1_700_000_000_000_000_000
    period = int(1e9 / fps)
    path = Path(path)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        if image_type == 'raw':
            img_conn = writer.add_connection(image_topic, Image.__msgtype__, typestore=ts)
        else:
            img_conn = writer.add_connection(image_topic.rstrip('/') + '/compressed'
                                             if not image_topic.endswith('compressed') else image_topic,
                                             CompressedImage.__msgtype__, typestore=ts)
        st_conn = writer.add_connection(state_topic, TwistStamped.__msgtype__, typestore=ts) if state_topic else None
        for i, rgb in enumerate(rgb_frames):
            t = start + i * period
            header = Header(stamp=Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000), frame_id='camera')
            if image_type == 'raw':
                if encoding == 'bgr8':
                    px = rgb[..., ::-1]
                elif encoding == 'mono8':
                    px = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
                else:
                    px = rgb
                px = np.ascontiguousarray(px)
                msg = Image(header=header, height=px.shape[0], width=px.shape[1], encoding=encoding,
                            is_bigendian=0, step=px.shape[1] * px.shape[2], data=px.reshape(-1))
            else:
                ok, enc = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
                msg = CompressedImage(header=header, format='jpeg', data=enc.reshape(-1))
            writer.write(img_conn, t, ts.serialize_cdr(msg, msg.__msgtype__))
            if st_conn is not None:
                phase = i / max(1, len(rgb_frames))
                twist = Twist(linear=Vector3(x=0.3 + 0.2 * np.sin(6.28 * phase), y=0.0, z=0.0),
                              angular=Vector3(x=0.0, y=0.0, z=0.5 * np.cos(6.28 * phase)))
                st = TwistStamped(header=Header(stamp=Time(sec=(t - 5_000_000) // 1_000_000_000,
                                                           nanosec=(t - 5_000_000) % 1_000_000_000),
                                                frame_id='base_link'), twist=twist)
                writer.write(st_conn, t - 5_000_000, ts.serialize_cdr(st, st.__msgtype__))
    return path

"""Read what the converter needs from a rosbag2 (directory, MCAP or SQLite3, or a bare .mcap).

A focused reader on `rosbags` (no ROS install): a first pass loads the small series
(state, commands, mode, e-stop, episode markers) and only the capture stamps of the
camera messages; frames are decoded in a second pass, one at a time, while the video is
encoded. Frames are decoded by rover_common.image_decode (ROS-free, shared with
rover_quantize): `pip install ./src/rover_common ./src/rover_dataset`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rover_common import image_decode

from .errors import DatasetError

RAW, COMPRESSED = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'
TWIST = 'geometry_msgs/msg/TwistStamped'
STRING, BOOL = 'std_msgs/msg/String', 'std_msgs/msg/Bool'

# Contract topic names (relative: they match '/name' and any namespace '/ns/name').
TOPICS = {
    'raw': 'camera/image_raw',
    'compressed': 'camera/image_raw/compressed',
    'state': 'rover/state',
    'cmd': 'rover/cmd',
    'teleop': 'teleop/cmd',
    'mode': 'rover/mode',
    'estop': 'rover/estop',
    'episode': 'rover/episode',
}


@dataclass
class Series:
    """Time-stamped values sorted by time (ns)."""
    times: np.ndarray
    values: np.ndarray

    def __len__(self):
        return len(self.times)


@dataclass
class BagData:
    path: str
    image_topic: str
    image_type: str
    image_stamps: np.ndarray          # capture stamps (header), ns, in message order
    image_log: np.ndarray             # log (receive) times, ns, in message order
    state: Series | None
    cmd: Series | None
    cmd_topic: str
    mode: Series | None               # values: str
    estop: Series | None              # values: bool
    episode: Series | None            # values: bool
    size_bytes: int = 0
    notes: list = field(default_factory=list)


def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def open_reader(path: Path):
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise DatasetError(f'bag not found: {path}')
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several types; all mean "not a readable bag"
        raise DatasetError(f'cannot open bag {path}: {exc}') from None
    return reader


def bag_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def match_topic(name: str, topics, namespace: str | None = None) -> str | None:
    """'rover/state' matches '/rover/state' and '/car1/rover/state'; --namespace picks one car."""
    if namespace:
        wanted = '/' + namespace.strip('/') + '/' + name
        return wanted if wanted in topics else None
    candidates = [t for t in topics if t == '/' + name or t.endswith('/' + name)]
    if len(candidates) > 1:
        raise DatasetError(f'several topics match {name!r} ({", ".join(sorted(candidates))}); '
                           'pick one car with --namespace')
    return candidates[0] if candidates else None


def _cdr_stamp(raw: bytes) -> int:
    """header.stamp straight from the CDR bytes (first field of Image/CompressedImage/TwistStamped)."""
    endian = '<' if raw[1] == 1 else '>'
    sec, nsec = struct.unpack_from(endian + 'iI', raw, 4)
    return sec * 1_000_000_000 + nsec


def _describe(reader) -> str:
    return ', '.join(sorted({f'{c.topic} ({c.msgtype})' for c in reader.connections})) or 'none'


def read_bag(path, namespace: str | None = None) -> BagData:
    """First pass over one bag: image stamps and every small series."""
    path = Path(path)
    reader = open_reader(path)
    try:
        conns = {}
        for c in reader.connections:
            conns.setdefault(c.topic, []).append(c)
        topics = set(conns)
        raw_t = match_topic(TOPICS['raw'], topics, namespace)
        comp_t = match_topic(TOPICS['compressed'], topics, namespace)
        # raw frames are lossless, so they win when both were recorded
        image_topic = raw_t if raw_t and (comp_t is None or _has_messages(conns[raw_t])) else comp_t
        if image_topic is None:
            raise DatasetError(f'bag {path} has no camera images ({TOPICS["raw"]} or '
                               f'{TOPICS["compressed"]}); topics in it: {_describe(reader)}')
        image_type = conns[image_topic][0].msgtype
        if image_type not in (RAW, COMPRESSED):
            raise DatasetError(f'{path}: {image_topic} is {image_type}, expected {RAW} or {COMPRESSED}')

        notes = []
        cmd_topic = match_topic(TOPICS['cmd'], topics, namespace)
        if cmd_topic is None:
            cmd_topic = match_topic(TOPICS['teleop'], topics, namespace)
            if cmd_topic is not None:
                notes.append(f'{path.name}: no {TOPICS["cmd"]} recorded, using the human command '
                             f'{cmd_topic} as the action (not arbitrated)')
        state_topic = match_topic(TOPICS['state'], topics, namespace)
        small = {name: match_topic(TOPICS[name], topics, namespace) for name in ('mode', 'estop', 'episode')}

        wanted = {image_topic: 'image'}
        for topic, role in ((cmd_topic, 'cmd'), (state_topic, 'state'), (small['mode'], 'mode'),
                            (small['estop'], 'estop'), (small['episode'], 'episode')):
            if topic is not None:
                wanted[topic] = role
        expected = {'cmd': TWIST, 'state': TWIST, 'mode': STRING, 'estop': BOOL, 'episode': BOOL}
        for topic, role in wanted.items():
            got = conns[topic][0].msgtype
            if role != 'image' and got != expected[role]:
                raise DatasetError(f'{path}: {topic} is {got}, expected {expected[role]}')

        data = {role: ([], []) for role in wanted.values()}
        img_stamps, img_log = [], []
        selected = [c for t in wanted for c in conns[t]]
        total = sum(getattr(c, 'msgcount', 0) for c in selected) or None
        bar = tqdm(total=total, desc=f'reading {path.name}', unit='msg', leave=False, disable=None)
        try:
            for conn, log_time, raw in reader.messages(connections=selected):
                bar.update(1)
                role = wanted[conn.topic]
                if role == 'image':
                    img_stamps.append(_cdr_stamp(raw))
                    img_log.append(log_time)
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                times, values = data[role]
                if role in ('cmd', 'state'):
                    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                    times.append(stamp if stamp > 0 else log_time)
                    values.append((msg.twist.angular.z, msg.twist.linear.x))
                else:  # String / Bool have no header: their log time is when they happened
                    times.append(log_time)
                    values.append(msg.data)
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f'cannot read bag {path}: {type(exc).__name__}: {exc} (truncated or corrupt?)') from None
        finally:
            bar.close()

        def series(role, dtype):
            if role not in data or not data[role][0]:
                return None
            times = np.asarray(data[role][0], np.int64)
            order = np.argsort(times, kind='stable')
            values = np.asarray(data[role][1], dtype)
            return Series(times[order], values[order])

        if not img_stamps:
            raise DatasetError(f'bag {path} has no camera images: {image_topic} has no messages')
        cmd = series('cmd', np.float32)
        if cmd is None:
            raise DatasetError(f'bag {path} has no commands ({TOPICS["cmd"]} or {TOPICS["teleop"]}); '
                               f'topics in it: {_describe(reader)}')
        state = series('state', np.float32)
        if state is None:
            raise DatasetError(f'bag {path} has no {TOPICS["state"]} (observation.state); '
                               f'topics in it: {_describe(reader)}')
        return BagData(
            path=str(path), image_topic=image_topic, image_type=image_type,
            image_stamps=np.asarray(img_stamps, np.int64), image_log=np.asarray(img_log, np.int64),
            state=state, cmd=cmd, cmd_topic=cmd_topic,
            mode=series('mode', object), estop=series('estop', bool), episode=series('episode', bool),
            size_bytes=bag_size(path), notes=notes)
    finally:
        reader.close()


def _has_messages(conns) -> bool:
    return sum(getattr(c, 'msgcount', 1) for c in conns) > 0


def decode_image(msg, msgtype: str) -> np.ndarray:
    """H x W x 3 uint8 RGB from a sensor_msgs Image (rgb8/bgr8/mono8/rgba8/bgra8) or CompressedImage;
    the decoder rover_quantize uses for its calibration frames too."""
    try:
        return image_decode.decode_rgb(msg, msgtype)
    except image_decode.ImageDecodeError as exc:
        raise DatasetError(str(exc)) from None


def iter_frames(bag: BagData, positions):
    """Yield (position, RGB frame) for the image messages at `positions` (message order), ascending."""
    wanted = sorted(set(int(p) for p in positions))
    if not wanted:
        return
    reader = open_reader(Path(bag.path))
    try:
        conns = [c for c in reader.connections if c.topic == bag.image_topic]
        k = 0
        for i, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
            if i != wanted[k]:
                continue
            yield i, decode_image(reader.deserialize(raw, conn.msgtype), conn.msgtype)
            k += 1
            if k == len(wanted):
                return
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f'cannot read bag {bag.path}: {type(exc).__name__}: {exc} (truncated or corrupt?)') from None
    finally:
        reader.close()
    if k < len(wanted):
        raise DatasetError(f'{bag.path}: {len(wanted) - k} frame(s) could not be read back (bag changed?)')

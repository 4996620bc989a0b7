"""Frames + paired state from rosbag2 recordings, read with `rosbags` (no ROS, no torch).

A bag is a rosbag2 directory (metadata.yaml + MCAP or SQLite3 files) or a lone `.mcap` /
`.db3` file, as rosbag2 itself opens. Channels whose message definition cannot be parsed
(Jazzy's service-event channels from `ros2 bag record -a`, for one) are skipped with one
note naming them; only the channels asked for must be readable.

Integrity: MCAP chunks are read one by one and their CRC checked where the writer computed
one (rosbag2 does; CRC 0 means "not computed", which is what rosbags' writer does); a chunk
that fails is skipped and its messages counted as bad. The data-section CRC is checked where
present. Every image message is checked for sanity (encoding, size, image magic) before it
can be chosen; a recording with more than MAX_BAD_FRACTION bad frames is refused.

Images are decoded with numpy/OpenCV (Image: rgb8/bgr8/mono8/rgba8/bgra8; CompressedImage:
jpeg/png). Each frame is paired with the nearest `rover/state` (geometry_msgs/TwistStamped:
[angular.z, linear.x] = [steering, throttle]) by header stamp (log time when a stamp is 0).

API for other offline tools (rover_dataset): `open_bag(path)` -> BagReader (context manager:
`.topics`, `.match_topic(name)`, `.messages(topics)` yielding (topic, msgtype, log_time_ns,
raw), `.deserialize(raw, msgtype)`, `.notes`, `.bad_messages`), `image_problem(msg,
msgtype)`, `decode_image(msg, msgtype)`, `stamp_ns(msg, log_time)`, `fit_image(rgb, hw)`.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rover_common import image_decode

from .errors import BagError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
STATE_TYPE = 'geometry_msgs/msg/TwistStamped'
_CHANNELS = image_decode.CHANNELS  # what the shared decoder reads: image_problem must agree
MAX_BAD_FRACTION = 0.1     # more bad image messages than this and the recording is refused
_MAX_SIDE = 16384          # larger "images" are corrupt headers, not cameras
_MCAP_MAGIC = b'\x89MCAP0\r\n'


@dataclass
class Frame:
    image: np.ndarray          # H x W x 3 uint8 RGB, resized to the model input
    state: np.ndarray          # float32 [state_dim]
    stamp_ns: int
    bag: str
    index: int                 # position among all usable image messages of all bags (global)


@dataclass
class BagIndex:
    """What a first pass over the bags found (every image message checked, none decoded)."""
    bags: list
    image_topic: dict = field(default_factory=dict)    # bag -> resolved topic name
    image_type: dict = field(default_factory=dict)     # bag -> msgtype
    ordinals: dict = field(default_factory=dict)       # bag -> positions of the usable image messages
    state_times: dict = field(default_factory=dict)    # bag -> np.int64 stamps (sorted)
    state_values: dict = field(default_factory=dict)   # bag -> float32 [n, 2]
    bad_frames: int = 0                                # image messages skipped (bad chunk, bad message)
    notes: list = field(default_factory=list)

    @property
    def counts(self) -> dict:
        return {bag: len(o) for bag, o in self.ordinals.items()}

    @property
    def total(self) -> int:
        return sum(len(o) for o in self.ordinals.values())


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def _first_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split('\n')[:1]).strip()
    return (text[:120] + '...') if len(text) > 120 else text or type(exc).__name__


def _parse_definition(conn) -> dict:
    """Types of one connection from its own message definition (MSG or IDL), as rosbags'
    AnyReader does, but for one connection at a time so one bad definition costs one channel."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg
    fmt = conn.msgdef.format.name
    data = conn.msgdef.data
    if fmt == 'MSG':
        return get_types_from_msg(data, conn.msgtype)
    types: dict = {}
    sep = '=' * 80 + '\n'
    for idl in (data.split(sep)[1:] if data.startswith(f'{sep}IDL: ') else [data]):
        types.update(get_types_from_idl(idl.split('\n', 1)[1] if idl.startswith('IDL: ') else idl))
    return types


class BagReader:
    """One recording, opened with rosbags' rosbag2 Reader (directory, bare .mcap or .db3)."""

    def __init__(self, path):
        from rosbags.rosbag2 import Reader
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'bag not found: {self.path}')
        if self.path.is_dir() and not (self.path / 'metadata.yaml').exists():
            lone = sorted(self.path.glob('*.mcap')) + sorted(self.path.glob('*.db3'))
            if len(lone) != 1:
                raise BagError(f'cannot open bag {self.path}: no metadata.yaml and '
                               f'{len(lone) or "no"} .mcap/.db3 file(s) in it; pass the storage file itself')
            self.path = lone[0]
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises several types; all mean the same to the user
            raise BagError(f'cannot open bag {self.path}: {_first_line(exc)}') from None
        self.notes: list[str] = []
        self.bad_messages: dict = {}   # topic -> messages lost to bad chunks
        self.bad_chunks = 0
        self.chunk_errors: list[str] = []  # one per skipped chunk: where and why
        self.crc_chunks = 0            # chunks that carry a CRC (checked)
        self.chunks = 0
        self._stores: dict = {}        # msgtype -> typestore
        self.connections = []
        skipped = []
        default = _typestore()
        for conn in self._reader.connections:
            try:
                if conn.msgdef.format.name == 'NONE':
                    if conn.msgtype not in default.types:
                        raise BagError('no definition')
                    store = default
                else:
                    from rosbags.typesys import Stores, get_typestore
                    store = get_typestore(Stores.EMPTY)
                    store.register(_parse_definition(conn))
                    if conn.msgtype not in store.types:
                        raise BagError('definition does not define the type')
            except Exception:  # noqa: BLE001 - any parse failure means: this channel is unusable
                skipped.append(f'{conn.topic} ({conn.msgtype})')
                continue
            self._stores.setdefault(conn.msgtype, store)
            self.connections.append(conn)
        if skipped:
            self.notes.append(f'{self.path}: skipped {len(skipped)} channel(s) whose message definition '
                              f'cannot be parsed: {", ".join(sorted(set(skipped)))}')
        self._check_data_crc()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def topics(self) -> dict:
        """topic -> msgtype of the readable channels."""
        return {c.topic: c.msgtype for c in self.connections}

    def topics_text(self) -> str:
        return ', '.join(f'{t} ({m})' for t, m in sorted(self.topics.items())) or 'none'

    def match_topic(self, wanted: str) -> str | None:
        """'camera/image_raw' matches '/camera/image_raw' and a namespaced '/car/camera/image_raw'."""
        topics = sorted(self.topics)
        wanted = wanted.strip()
        exact = [t for t in topics if t == wanted or t == '/' + wanted.lstrip('/')]
        if exact:
            return exact[0]
        if not wanted.startswith('/'):
            suffix = [t for t in topics if t.endswith('/' + wanted)]
            if len(suffix) == 1:
                return suffix[0]
        return None

    def deserialize(self, raw, msgtype: str):
        return self._stores[msgtype].deserialize_cdr(raw, msgtype)

    def _mcap_storages(self) -> list:
        storage = self._reader.storage
        storages = getattr(storage, 'storages', [storage])
        return [s for s in storages if type(s).__name__ == 'McapReader']

    def _check_data_crc(self):
        """MCAP's DataEnd record carries a CRC of the whole data section (0: not computed)."""
        for mcap in self._mcap_storages():
            end = mcap.data_end
            if not end or end < 13:
                continue
            with open(mcap.path, 'rb') as f:
                f.seek(end - 13)
                record = f.read(13)
                if record[:9] != b'\x0f\x04\x00\x00\x00\x00\x00\x00\x00':
                    continue
                want = struct.unpack('<I', record[9:])[0]
                if not want:
                    continue
                f.seek(0)
                crc, left = 0, end - 13
                while left:
                    block = f.read(min(left, 1 << 24))
                    if not block:
                        break
                    crc, left = zlib.crc32(block, crc), left - len(block)
            if crc != want:
                self.notes.append(f'{mcap.path}: the data section fails its CRC (corrupt somewhere); '
                                  'chunks are checked one by one')
                self._data_crc_failed = True

    def messages(self, topics):
        """(topic, msgtype, log_time_ns, raw) of the given topics, in storage order.

        MCAP files are read chunk by chunk: a chunk that fails its CRC, cannot be decompressed
        or parsed is skipped (its messages of these topics are counted in `bad_messages`)."""
        conns = [c for c in self.connections if c.topic in set(topics)]
        if not conns:
            return
        mcaps = self._mcap_storages()
        if not mcaps or not all(m.chunks for m in mcaps) or self._reader.compression_mode == 'message':
            for conn, log_time, raw in self._reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, log_time, raw
            return
        if getattr(self, '_data_crc_failed', False) and not all(self._chunk_crc(m, c) for m in mcaps
                                                                 for c in m.chunks):
            raise BagError(f'bag {self.path}: the data section fails its CRC and its chunks carry no CRC '
                           'to find the damage; the recording is corrupt')
        for mcap in mcaps:
            wanted = {cid: ch for cid, ch in mcap.channels.items() if ch.topic in {c.topic for c in conns}}
            types = {c.topic: c.msgtype for c in conns}
            with open(mcap.path, 'rb') as f:
                for chunk in sorted(mcap.chunks, key=lambda c: c.chunk_start_offset):
                    n_wanted = sum(chunk.channel_count.get(cid, 0) for cid in wanted)
                    if not n_wanted:
                        continue
                    try:
                        records = self._read_chunk(f, chunk)
                    except BagError as exc:
                        self.bad_chunks += 1
                        for cid, ch in wanted.items():
                            self.bad_messages[ch.topic] = self.bad_messages.get(ch.topic, 0) + \
                                chunk.channel_count.get(cid, 0)
                        self.chunk_errors.append(f'{mcap.path.name} byte {chunk.chunk_start_offset}: {exc}')
                        continue
                    for cid, log_time, raw in records:
                        if cid in wanted:
                            topic = wanted[cid].topic
                            yield topic, types[topic], log_time, raw

    @staticmethod
    def _chunk_crc(mcap, chunk) -> int:
        with open(mcap.path, 'rb') as f:
            f.seek(chunk.chunk_start_offset + 9 + 24)
            return struct.unpack('<I', f.read(4))[0]

    def _read_chunk(self, f, chunk) -> list:
        """The message records of one MCAP chunk: (channel id, log time, data), time-ordered."""
        from rosbags.rosbag2.storage_mcap import DECOMPRESSORS
        self.chunks += 1
        f.seek(chunk.chunk_start_offset)
        head = f.read(9 + 40 + len(chunk.compression))
        if len(head) < 49 or head[0] != 0x06:
            raise BagError('not a chunk record (index points elsewhere)')
        crc = struct.unpack('<I', head[9 + 24:9 + 28])[0]
        data = f.read(chunk.compressed_size)
        if len(data) != chunk.compressed_size:
            raise BagError('chunk cut short')
        try:
            raw = DECOMPRESSORS[chunk.compression](data, chunk.uncompressed_size)
        except Exception as exc:  # noqa: BLE001 - any decompressor failure: a damaged chunk
            raise BagError(f'cannot decompress ({_first_line(exc)})') from None
        if len(raw) != chunk.uncompressed_size:
            raise BagError('wrong decompressed size')
        if crc:
            self.crc_chunks += 1
            if zlib.crc32(raw) != crc:
                raise BagError('CRC mismatch')
        out, pos, view = [], 0, memoryview(raw)
        while pos < len(raw):
            if pos + 9 > len(raw):
                raise BagError('chunk records cut short')
            op, length = raw[pos], struct.unpack_from('<Q', raw, pos + 1)[0]
            body = pos + 9
            if body + length > len(raw):
                raise BagError('chunk record length runs past the chunk')
            if op == 0x05:
                if length < 22:
                    raise BagError('message record too short')
                cid, _, log_time, _ = struct.unpack_from('<HIQQ', raw, body)
                out.append((cid, log_time, view[body + 22:body + length]))
            pos = body + length
        out.sort(key=lambda r: r[1])
        return out


def open_bag(path) -> BagReader:
    return BagReader(path)


def stamp_ns(msg, log_time: int) -> int:
    header = getattr(msg, 'header', None)
    if header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns > 0:
            return ns
    return int(log_time)


def image_problem(msg, msgtype: str) -> str | None:
    """Why this Image/CompressedImage cannot be a camera frame (None: it looks sane). Cheap:
    no decoding; compressed data is checked for a JPEG/PNG start and end."""
    if msgtype.endswith('CompressedImage'):
        data = bytes(msg.data[:8]), bytes(msg.data[-12:])
        if data[0][:3] == b'\xff\xd8\xff':
            return None if data[1][-2:] == b'\xff\xd9' else 'JPEG without its end marker'
        if data[0] == b'\x89PNG\r\n\x1a\n':
            return None if b'IEND' in data[1] else 'PNG without its IEND chunk'
        return f'compressed data is neither JPEG nor PNG (format {msg.format!r})'
    enc = msg.encoding
    if enc not in _CHANNELS:
        return f'unsupported image encoding {enc!r}; expected one of {", ".join(_CHANNELS)}'
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < h <= _MAX_SIDE and 0 < w <= _MAX_SIDE):
        return f'impossible image size {w}x{h}'
    if step < w * _CHANNELS[enc] or len(msg.data) != step * h:
        return f'image data of {len(msg.data)} bytes does not match {h} rows of step {step}'
    return None


def decode_image(msg, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 RGB from a rosbags sensor_msgs Image/CompressedImage (checked by image_problem
    first); the decoder rover_dataset uses too, so calibration sees the dataset's pixels."""
    problem = image_problem(msg, msgtype)
    if problem:
        raise BagError(problem)
    try:
        return image_decode.decode_rgb(msg, msgtype)
    except image_decode.ImageDecodeError as exc:
        raise BagError(str(exc)) from None


def fit_image(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize to the model's H x W (INTER_AREA; the policy node does the same)."""
    h, w = hw
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def _read_error(bag, exc) -> BagError:
    return BagError(f'cannot read bag {bag}: {type(exc).__name__}: {_first_line(exc)} (truncated or corrupt?)')


def _image_topic(reader: BagReader, bag, image_topic: str, notes: list) -> tuple[str, str]:
    topic = reader.match_topic(image_topic)
    if topic is None:
        topic = reader.match_topic(image_topic.rstrip('/') + '/compressed')
        if topic is not None:
            notes.append(f'{bag}: {image_topic} not recorded, using {topic}')
    if topic is None:
        raise BagError(f'bag {bag} has no image topic {image_topic!r}; topics in it: {reader.topics_text()}')
    msgtype = reader.topics[topic]
    if msgtype not in IMAGE_TYPES:
        raise BagError(f'{bag}: topic {topic} is {msgtype}, expected sensor_msgs/Image or CompressedImage')
    return topic, msgtype


def _state_topic(reader: BagReader, bag, state_topic: str | None, state_dim: int) -> str:
    if not state_topic:
        raise BagError('the model has a state input but no state topic was given')
    topic = reader.match_topic(state_topic)
    if topic is None:
        raise BagError(f'bag {bag} has no state topic {state_topic!r}; topics in it: {reader.topics_text()}')
    if reader.topics[topic] != STATE_TYPE:
        raise BagError(f'{bag}: topic {topic} is {reader.topics[topic]}, expected {STATE_TYPE}')
    if state_dim != 2:
        raise BagError(f'the model expects a {state_dim}-D state; {STATE_TYPE} gives 2 ([angular.z, linear.x])')
    return topic


def index_bags(bags, image_topic: str, state_topic: str | None, state_dim: int,
               max_bad_fraction: float = MAX_BAD_FRACTION) -> BagIndex:
    """First pass: find the topics, check every image message, load the (small) state series."""
    if not bags:
        raise BagError('no bags given')
    idx = BagIndex(bags=[str(b) for b in bags])
    seen, bad, bad_notes = 0, 0, []
    for bag in bags:
        key = str(bag)
        with open_bag(bag) as reader:
            topic, msgtype = _image_topic(reader, bag, image_topic, idx.notes)
            stopic = _state_topic(reader, bag, state_topic, state_dim) if state_dim else None
            ordinals, times, values, bad_here, bad_states, problems = [], [], [], 0, 0, {}
            n_image = 0  # position among the image messages as messages() yields them (load_frames counts alike)
            try:
                for t, mtype, log_time, raw in reader.messages([topic] + ([stopic] if stopic else [])):
                    problem = None
                    try:
                        msg = reader.deserialize(raw, mtype)
                    except Exception as exc:  # noqa: BLE001 - a corrupt message, counted
                        msg, problem = None, f'cannot deserialize ({_first_line(exc)})'
                    if t == stopic:
                        if msg is None or not np.all(np.isfinite((msg.twist.angular.z, msg.twist.linear.x))):
                            bad_states += 1
                            continue
                        times.append(stamp_ns(msg, log_time))
                        values.append((msg.twist.angular.z, msg.twist.linear.x))
                        continue
                    problem = problem or image_problem(msg, mtype)
                    if problem:
                        bad_here += 1
                        problems[problem] = problems.get(problem, 0) + 1
                    else:
                        ordinals.append(n_image)
                    n_image += 1
            except BagError:
                raise
            except Exception as exc:
                raise _read_error(bag, exc) from None
            idx.notes.extend(reader.notes)
            if reader.chunk_errors:
                bad_notes.append(f'{bag}: skipped {reader.bad_chunks} damaged chunk(s) holding '
                                 f'{reader.bad_messages.get(topic, 0)} frame(s) ({reader.chunk_errors[0]}'
                                 + (', ...)' if len(reader.chunk_errors) > 1 else ')'))
            bad_here += reader.bad_messages.get(topic, 0)
            n_images = len(ordinals) + bad_here
            if problems:
                worst = max(problems, key=problems.get)
                bad_notes.append(f'{bag}: skipped {sum(problems.values())} bad image message(s) on {topic} '
                                 f'(e.g. {worst})')
            if bad_states:
                idx.notes.append(f'{bag}: skipped {bad_states} bad state message(s) on {stopic}')
            if not ordinals:
                raise BagError(f'bag {bag}: topic {topic} has no usable image messages'
                               + (f' ({bad_here} bad)' if bad_here else ''))
            if stopic and not times:
                raise BagError(f'bag {bag}: state topic {stopic} has no messages')
            idx.image_topic[key], idx.image_type[key], idx.ordinals[key] = topic, msgtype, ordinals
            order = np.argsort(np.asarray(times, np.int64), kind='stable')
            idx.state_times[key] = np.asarray(times, np.int64)[order]
            idx.state_values[key] = np.asarray(values, np.float32).reshape(-1, 2)[order]
            seen, bad = seen + n_images, bad + bad_here
    idx.bad_frames = bad
    idx.notes.extend(bad_notes)
    if bad > max_bad_fraction * seen:
        raise BagError(f'{bad} of {seen} image messages are bad (more than {max_bad_fraction:.0%}), '
                       'the recording is corrupt: ' + '; '.join(bad_notes))
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
    """Decode the frames at the given global indices (order of `wanted` kept). A frame that
    passed the index's checks but does not decode is left out and counted in a note."""
    from tqdm import tqdm
    wanted_set = set(wanted)
    found: dict[int, Frame] = {}
    undecodable: dict[str, int] = {}
    offset = 0
    bar = tqdm(total=len(wanted_set), desc=desc, unit='frame', disable=not progress, leave=False)
    for bag in idx.bags:
        ordinals = idx.ordinals[bag]
        by_ordinal = {ordinals[g - offset]: g for g in wanted_set if offset <= g < offset + len(ordinals)}
        if by_ordinal:
            with open_bag(bag) as reader:
                topic = idx.image_topic[bag]
                try:
                    for i, (_, msgtype, log_time, raw) in enumerate(reader.messages([topic])):
                        g = by_ordinal.get(i)
                        if g is None:
                            continue
                        try:
                            msg = reader.deserialize(raw, msgtype)
                            rgb = fit_image(decode_image(msg, msgtype), hw)
                        except Exception as exc:  # noqa: BLE001 - counted, reported once
                            undecodable[_first_line(exc)] = undecodable.get(_first_line(exc), 0) + 1
                            bar.update(1)
                            continue
                        stamp = stamp_ns(msg, log_time)
                        found[g] = Frame(rgb, _nearest_state(idx, bag, stamp, state_dim), stamp, bag, g)
                        bar.update(1)
                        if len(found) + sum(undecodable.values()) == len(wanted_set):
                            break
                except BagError:
                    raise
                except Exception as exc:
                    raise _read_error(bag, exc) from None
        offset += len(ordinals)
    bar.close()
    if undecodable:
        n = sum(undecodable.values())
        idx.bad_frames += n
        idx.notes.append(f'{n} chosen frame(s) did not decode and were left out '
                         f'(e.g. {max(undecodable, key=undecodable.get)})')
    missing = wanted_set - set(found) - set()
    if len(missing) > sum(undecodable.values()):
        raise BagError(f'{len(missing)} frame(s) could not be read back (bag changed or truncated?)')
    if not found:
        raise BagError('none of the chosen frames could be decoded')
    return [found[g] for g in wanted if g in found]


def add_mcap_crcs(path) -> None:
    """Fill in the chunk CRCs (and the data-section CRC) of an MCAP written by rosbags, which
    leaves them 0: test bags then carry CRCs like the ones rosbag2 records."""
    from rosbags.rosbag2 import Reader
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob('*.mcap'))
    for file in files:
        with Reader(file) as reader:
            chunks, data_end = list(reader.storage.chunks), reader.storage.data_end
        with open(file, 'r+b') as f:
            for chunk in chunks:
                f.seek(chunk.chunk_start_offset + 9 + 40 + len(chunk.compression))
                records = f.read(chunk.compressed_size)
                if chunk.compression:  # rosbags' writer compresses only when asked; tests do not
                    raise ValueError('add_mcap_crcs handles uncompressed chunks only')
                f.seek(chunk.chunk_start_offset + 9 + 24)
                f.write(struct.pack('<I', zlib.crc32(records)))
            f.seek(0)
            data = f.read(data_end - 13)
            f.seek(data_end - 13)
            if f.read(9) == b'\x0f\x04\x00\x00\x00\x00\x00\x00\x00':
                f.write(struct.pack('<I', zlib.crc32(data)))


# Jazzy's rosbag2 stores a service-event channel's schema as the raw .srv text under an
# "SRV:" header (ros2/rosbag2#2365); no .msg parser reads that.
SERVICE_EVENT_SCHEMA = ('=' * 80 + '\nSRV: rcl_interfaces/srv/GetParameters\n'
                        '# A list of parameter names to get.\nstring[] names\n\n---\n'
                        '# List of values which is the same length and order as the provided names.\n'
                        'ParameterValue[] values\n')
def write_test_bag(path, *, storage: str = 'mcap', n_frames: int = 20, image_type: str = 'raw',
                   hw=(48, 64), encoding: str = 'bgr8', fps: float = 30.0, seed: int = 0,
                   image_topic: str = '/camera/image_raw', state_topic: str | None = '/rover/state',
                   frames: np.ndarray | None = None, chunk_crc: bool = True,
                   service_event: bool = False) -> Path:
    """Write a small rosbag2 with synthetic camera frames and TwistStamped state (tests, demo).

    chunk_crc: fill in MCAP chunk CRCs as rosbag2 does (rosbags' writer leaves them 0).
    service_event: add a channel the way Jazzy's `ros2 bag record -a` writes service events
    (rcl_interfaces/srv/GetParameters_Event with an unparseable "SRV:" schema)."""
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
        if service_event:
            ev_conn = writer.add_connection('/camera/get_parameters/_service_event',
                                            'rcl_interfaces/srv/GetParameters_Event',
                                            msgdef=SERVICE_EVENT_SCHEMA, rihs01='RIHS01_' + '0' * 64)
            writer.write(ev_conn, start, b'\x00\x01\x00\x00' + bytes(60))
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
    if storage == 'mcap' and chunk_crc:
        add_mcap_crcs(path)
    return path

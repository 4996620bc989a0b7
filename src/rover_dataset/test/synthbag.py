"""Write rosbag2 recordings with known frames, stamps and commands (the recorder's topic contract)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
PERIOD = NS // 30


def frame_pixels(i: int, hw=(64, 96)) -> np.ndarray:
    """Smooth RGB frame whose level and gradient identify frame i (survives lossy video)."""
    h, w = hw
    level = 30 + (i * 47) % 190
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    rgb = np.concatenate([level + 20 * x + 0 * y, (level * 0.6 + 40 * y) + 0 * x, 200 - 0.5 * level + 0 * x + 0 * y], 2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@dataclass
class Recording:
    """Everything the bag holds, so the tests can compute the expected dataset independently."""
    frames: list = field(default_factory=list)      # (frame id, stamp, log)
    cmd: list = field(default_factory=list)         # (stamp, log, steer, throttle)
    teleop: list = field(default_factory=list)
    state: list = field(default_factory=list)
    mode: list = field(default_factory=list)        # (log, str)
    estop: list = field(default_factory=list)       # (log, bool)
    episode: list = field(default_factory=list)     # (log, bool)
    hw: tuple = (64, 96)


def cmd_value(t: int) -> tuple[float, float]:
    s = (t - T0) / NS
    return float(np.sin(1.3 * s)), float(0.2 + 0.5 * np.cos(0.7 * s))


def state_value(t: int) -> tuple[float, float]:
    s = (t - T0) / NS
    return float(0.8 * np.sin(1.3 * s - 0.2)), float(0.1 + 0.4 * np.cos(0.7 * s))


def drive(seconds: float, *, missing=(), cmd_offset_ns=10_000_000, jitter_ns=3_000_000, seed=0,
          hw=(64, 96)) -> Recording:
    """A drive: camera 30 Hz with jitter, rover/cmd and rover/state at 30 Hz out of phase, sparse teleop."""
    rng = np.random.default_rng(seed)
    rec = Recording(hw=hw)
    n = int(seconds * 30)
    for i in range(n):
        if i in missing:
            continue
        stamp = T0 + i * PERIOD + int(rng.integers(-jitter_ns, jitter_ns + 1))
        rec.frames.append((i, stamp, stamp + 8_000_000))
    for k in range(-3, n + 3):
        t = T0 + k * PERIOD + cmd_offset_ns
        rec.cmd.append((t, t + 1_000_000, *cmd_value(t)))
        ts = T0 + k * PERIOD + 7_000_000
        rec.state.append((ts, ts + 2_000_000, *state_value(ts)))
    for k in range(0, n, 45):  # keyboard: one message per key event
        t = T0 + k * PERIOD + 5_000_000
        rec.teleop.append((t, t, 0.9, 0.9))
    return rec


def write(rec: Recording, path, *, image='raw', storage='mcap', namespace='', bare_mcap=False,
          with_cmd=True, with_state=True, with_images=True, with_rover_cmd=True) -> Path:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    Header, Time = T['std_msgs/msg/Header'], T['builtin_interfaces/msg/Time']
    Twist, Vector3, TwistStamped = T['geometry_msgs/msg/Twist'], T['geometry_msgs/msg/Vector3'], T['geometry_msgs/msg/TwistStamped']
    Image, CompressedImage = T['sensor_msgs/msg/Image'], T['sensor_msgs/msg/CompressedImage']
    String, Bool = T['std_msgs/msg/String'], T['std_msgs/msg/Bool']
    ns = ('/' + namespace.strip('/')) if namespace else ''

    def header(t, frame_id):
        return Header(stamp=Time(sec=t // NS, nanosec=t % NS), frame_id=frame_id)

    def twist(t, steer, thr):
        return TwistStamped(header=header(t, 'base_link'), twist=Twist(
            linear=Vector3(x=thr, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=steer)))

    messages = []  # (log, topic, msg)
    if with_images:
        for fid, stamp, log in rec.frames:
            rgb = frame_pixels(fid, rec.hw)
            if image in ('raw', 'both'):
                bgr = np.ascontiguousarray(rgb[..., ::-1])
                messages.append((log, '/camera/image_raw', Image(
                    header=header(stamp, 'camera'), height=rec.hw[0], width=rec.hw[1], encoding='bgr8',
                    is_bigendian=0, step=rec.hw[1] * 3, data=bgr.reshape(-1))))
            if image in ('compressed', 'both'):
                ok, jpg = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
                messages.append((log, '/camera/image_raw/compressed', CompressedImage(
                    header=header(stamp, 'camera'), format='bgr8; jpeg compressed bgr8', data=jpg.reshape(-1))))
    for topic, items, enabled in (('/rover/cmd', rec.cmd, with_cmd and with_rover_cmd),
                                  ('/teleop/cmd', rec.teleop, with_cmd),
                                  ('/rover/state', rec.state, with_state)):
        if enabled:
            messages += [(log, topic, twist(t, s, th)) for t, log, s, th in items]
    messages += [(log, '/rover/mode', String(data=m)) for log, m in rec.mode]
    messages += [(log, '/rover/estop', Bool(data=b)) for log, b in rec.estop]
    messages += [(log, '/rover/episode', Bool(data=b)) for log, b in rec.episode]
    messages.sort(key=lambda m: m[0])

    path = Path(path)
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    conns = {}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        for log, topic, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(ns + topic, msg.__msgtype__, typestore=ts)
            writer.write(conns[topic], log, ts.serialize_cdr(msg, msg.__msgtype__))
    if bare_mcap:  # only the .mcap file, no metadata.yaml (copied off a recorder)
        mcap = next(path.glob('*.mcap'))
        bare = path.with_suffix('.mcap')
        shutil.move(str(mcap), bare)
        shutil.rmtree(path)
        return bare
    return path


def at(t_s: float) -> int:
    return T0 + int(t_s * NS)

"""A sim drive written as the recorder writes it, without ROS: the expert as the human.

`python -m rover_dataset.sim_recording OUT_BAG --seconds 60` renders the rover_sim track camera
(640x360, JPEG as image_transport sends it) at 30 Hz while the pure-pursuit expert drives through
the command path the contract describes: teleop/cmd (the human) -> rover/cmd (applied) ->
rover/state (what the Arduino applied, one tick later), with rover/mode, rover/estop and
rover/episode markers; `--scatter` starts every episode off the centre line, as a driver
teaching recoveries would. For conversion benchmarks and the train-demo target; needs rover_sim.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

NS = 1_000_000_000


def record(path, *, seconds=60.0, fps=30, episode_s=20.0, seed=0, start_ns=1_700_000_000 * NS,
           jpeg_quality=80, noise=0.05, scatter=False) -> Path:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from rover_sim.expert import PurePursuit
    from rover_sim.track import StadiumTrack, render_floor
    from rover_sim.track_camera import TrackCamera
    from rover_sim.vehicle_model import BicycleModel

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    Header, Time = T['std_msgs/msg/Header'], T['builtin_interfaces/msg/Time']
    Twist, Vector3 = T['geometry_msgs/msg/Twist'], T['geometry_msgs/msg/Vector3']
    TwistStamped, CompressedImage = T['geometry_msgs/msg/TwistStamped'], T['sensor_msgs/msg/CompressedImage']
    String, Bool = T['std_msgs/msg/String'], T['std_msgs/msg/Bool']

    def header(t, frame):
        return Header(stamp=Time(sec=t // NS, nanosec=t % NS), frame_id=frame)

    def twist(t, steer, thr):
        return TwistStamped(header=header(t, 'base_link'), twist=Twist(
            linear=Vector3(x=float(thr), y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=float(steer))))

    track = StadiumTrack()
    camera = TrackCamera(render_floor(track, seed=seed))
    car = BicycleModel()
    car.reset(*track.start_pose())
    expert = PurePursuit(track)
    rng = np.random.default_rng(seed)
    period = NS // fps
    path = Path(path)
    applied = (0.0, 0.0)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = {name: w.add_connection(topic, msgtype, typestore=ts) for name, topic, msgtype in (
            ('image', '/camera/image_raw/compressed', CompressedImage.__msgtype__),
            ('teleop', '/teleop/cmd', TwistStamped.__msgtype__),
            ('cmd', '/rover/cmd', TwistStamped.__msgtype__),
            ('state', '/rover/state', TwistStamped.__msgtype__),
            ('mode', '/rover/mode', String.__msgtype__),
            ('estop', '/rover/estop', Bool.__msgtype__),
            ('episode', '/rover/episode', Bool.__msgtype__))}

        def put(name, t, msg):
            w.write(c[name], t, ts.serialize_cdr(msg, msg.__msgtype__))
        put('mode', start_ns, String(data='manual'))
        put('estop', start_ns, Bool(data=False))
        n = int(seconds * fps)
        per_episode = int(episode_s * fps)
        for i in range(n):
            t = start_ns + i * period
            if i % per_episode == 0:
                if scatter and i:  # like placing the car off the line by hand: recoveries to learn from
                    car.reset(*_scattered_pose(track, rng))
                put('episode', t, Bool(data=True))
            pose = car.pose()
            bgr = camera.render(pose.x, pose.y, pose.yaw)
            ok, jpg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            put('image', t + 4_000_000, CompressedImage(header=header(t, 'camera'),
                                                        format='bgr8; jpeg compressed bgr8', data=jpg.reshape(-1)))
            # the human reacts to what they see, a bit noisily; the arbiter applies it 5 ms later
            steer, thr = expert.command(pose.x, pose.y, pose.yaw)
            steer = float(np.clip(steer + rng.normal(0, noise), -1, 1))
            thr = float(thr * (1.0 - 0.3 * abs(steer)))  # a human eases off in the curves
            put('teleop', t + 2_000_000, twist(t + 2_000_000, steer, thr))
            put('cmd', t + 6_000_000, twist(t + 5_000_000, steer, thr))
            put('state', t + 12_000_000, twist(t + 11_000_000, *applied))  # the Arduino reports last tick's
            applied = (steer, thr)
            car.step(1.0 / fps, steer, thr)
            if i % per_episode == per_episode - 1 or i == n - 1:
                put('episode', t + period - 1, Bool(data=False))
    return path


def _scattered_pose(track, rng):
    """A pose somewhere on the track, off the centre line and turned (as rover.demo_policy trains)."""
    x, y, heading = track.centre_point(rng.uniform(0, track.length))
    offset = float(np.clip(rng.normal(0, 0.15), -0.35, 0.35))   # metres, + = left
    yaw = heading + float(np.clip(rng.normal(0, 0.15), -0.4, 0.4))
    return x - np.sin(heading) * offset, y + np.cos(heading) * offset, yaw


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m rover_dataset.sim_recording', description=__doc__.split('\n')[0])
    p.add_argument('output', help='bag directory to create')
    p.add_argument('--seconds', type=float, default=60.0)
    p.add_argument('--episode-seconds', type=float, default=20.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scatter', action='store_true', help='start each episode off the centre line')
    args = p.parse_args(argv)
    if Path(args.output).exists():
        print(f'{args.output} already exists', file=sys.stderr)
        return 2
    out = record(args.output, seconds=args.seconds, episode_s=args.episode_seconds, seed=args.seed,
                 scatter=args.scatter)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

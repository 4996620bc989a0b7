"""bench control: the policy node's 30 Hz loop while the model infers continuously.

    python -m rover_policy.bench [--model-dir DIR] [--seconds 60] [--backend cpu_int8]

Starts the policy node, the command arbiter (autonomous mode: policy/cmd ->
rover/cmd, as on the car) and the camera node (synthetic 640x360 bgr8 at 30 fps,
stamp = capture time) as their own processes on a loopback-only ROS domain,
publishes rover/state at 30 Hz from this process, lets the policy drive for
`--seconds`, then reads the node's timing log and prints one line:

    bench control: rate_hz=... p99_period_error_ms=... on_time_percent=...
                   inference_p50_ms=... e2e_overhead_p99_ms=... (and details)

Definitions (ticks inside the measured window only):
- rate_hz: ticks per second of the control loop (actual tick times).
- p99_period_error_ms: 99th percentile of |interval between consecutive ticks - 1/rate|.
- on_time_percent: share of the loop's deadlines whose tick started within 3 ms
  of the deadline (ON_TIME_MS, the same bound as the period-error target); a
  deadline skipped because the loop overran counts as late.
- inference_p50_ms: median backend time per chunk (the model, not preprocessing).
- e2e_overhead_p99_ms: per chunk that drove a tick, the time its frame spent in
  the pipeline outside the model: transport (capture stamp -> the policy's
  callback, including the camera's conversion and DDS) + decoding, resizing and
  hand-over (worker start -> chunk ready, minus model time) + publishing (the
  first tick using the chunk: deadline -> command published). Two waits are not
  overhead and are reported apart: frame_wait (a frame waits while the model is
  busy with the previous one: continuous inference, half a frame period on
  average) and tick_wait (the chunk waits for the next tick slot; the action sent
  is the one predicted for that tick's time, so it is not stale).
  capture_to_cmd_p50_ms is the plain capture stamp -> first command time.
- bridge_overhead_*: the same, but up to rover/cmd arriving at this process (what
  the bridge sees): publishing is deadline -> rover/cmd received, past the arbiter.
- stages, p50/p99 each, in the order a frame and a command travel (send and
  receive times are the middleware's, so no executor of this process is counted):
  cam_publish (capture stamp -> camera's publish), cam_dds (-> arrival in the
  policy process), dispatch (-> the policy's image callback: its executor, message
  conversion, the GIL), preprocess (decode, resize, colour), post_model (hand-over
  of the chunk), tick_wake (deadline -> the control thread runs), tick_publish
  (-> policy/cmd published), policy_cmd_dds (policy/cmd sent -> received here),
  arbiter_hop (policy/cmd sent -> rover/cmd sent), rover_cmd_dds (rover/cmd sent
  -> received here). commands_matched_percent: driven ticks whose rover/cmd was found.
- floor_*: a bare 30 Hz loop (same code, no ROS, no model) in its own process
  during the same window: what this machine's scheduler allows at best;
  p99_period_error_over_floor_ms is the loop's p99 minus the floor's (goal <= 0.5).
`--camera inline` publishes the frames from this process instead (when rover_camera
is not available; without rover_camera's Fast DDS profile 640x360 frames may be lost).
Without --model-dir a default-size model directory is built once with
rover_quantize (random ACT weights) into --cache-dir, if rover_quantize is importable.
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from rover_common.deadline_loop import DeadlineLoop

ON_TIME_MS = 3.0
EXIT_CONFIG_ERROR = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m rover_policy.bench', description=__doc__.split('\n')[0])
    parser.add_argument('--model-dir', default='', help='model directory; default: build one with rover_quantize')
    parser.add_argument('--seconds', type=float, default=60.0, help='measured duration (after warm-up)')
    parser.add_argument('--backend', default='cpu_int8', choices=('cpu_int8', 'cpu_fp32', 'hailo'))
    parser.add_argument('--threads', type=int, default=min(4, os.cpu_count() or 1),
                        help='ONNX Runtime threads of the node')
    parser.add_argument('--rate', type=float, default=30.0, help='camera and control rate (Hz)')
    parser.add_argument('--frame-size', default='640x360', help='camera frame WxH')
    parser.add_argument('--control-priority', type=int, default=0,
                        help='SCHED_FIFO priority of the node\'s control thread (0: normal)')
    parser.add_argument('--inference-nice', type=int, default=None,
                        help='the node\'s inference_nice parameter (default: the node\'s default)')
    parser.add_argument('--inject-delay-ms', type=int, default=0, help='simulate a slower backend')
    parser.add_argument('--warmup', type=float, default=3.0, help='seconds of driving before measuring')
    parser.add_argument('--camera', choices=('node', 'inline'), default='',
                        help='frame source: the rover_camera node (default when importable) or this process')
    parser.add_argument('--timing-log', default='', help='keep the node\'s timing log at this path')
    parser.add_argument('--cache-dir', default=os.path.join(tempfile.gettempdir(), 'rover_policy_bench'),
                        help='where the default model directory is built and kept')
    parser.add_argument('--floor-probe', nargs=2, metavar=('SECONDS', 'OUT'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.width, args.height = (int(v) for v in args.frame_size.lower().split('x'))
    if not args.camera:
        import importlib.util
        args.camera = 'node' if importlib.util.find_spec('rover_camera') else 'inline'
    return args


def default_model_dir(cache_dir: str) -> str:
    out = os.path.join(cache_dir, 'default_act')
    manifest_path = os.path.join(out, 'manifest.json')
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get('quantization'):  # a finished build (export writes the manifest first)
                return out
    try:
        from rover_quantize.checkpoint import write_random_checkpoint
        from rover_quantize.pipeline import build_model_dir
    except ImportError as exc:
        raise SystemExit(
            f'cannot start: no --model-dir given and rover_quantize cannot build one ({exc}); '
            'pass --model-dir DIR (a directory written by rover-quantize)')
    print(f'building a default-size model directory in {out} (once) ...', file=sys.stderr, flush=True)
    shutil.rmtree(out, ignore_errors=True)  # an interrupted build
    checkpoint = write_random_checkpoint(os.path.join(cache_dir, 'random_checkpoint'), seed=0)
    build_model_dir(checkpoint, out)
    return out


def _pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float('nan')


def tick_timing(scheduled, actual, rate):
    """rate, period error p99/max and on-time share of one loop's deadlines and tick times."""
    period = 1.0 / rate
    scheduled, actual = np.asarray(scheduled), np.asarray(actual)
    period_error_ms = np.abs(np.diff(actual) - period) * 1000.0
    lateness_ms = (actual - scheduled) * 1000.0
    deadlines = int(round((scheduled[-1] - scheduled[0]) / period)) + 1  # includes skipped ones
    return {
        'rate_hz': (len(actual) - 1) / (actual[-1] - actual[0]),
        'p99_period_error_ms': _pct(period_error_ms, 99),
        'on_time_percent': 100.0 * int(np.sum(lateness_ms <= ON_TIME_MS)) / deadlines,
        'max_period_error_ms': float(period_error_ms.max()),
        'missed_ticks': deadlines - len(actual),
    }


def join_commands(policy_cmds, rover_cmds, horizon_s=0.1):
    """stamp_key of a tick -> (policy/cmd sent, received here, rover/cmd sent, received here).

    The arbiter restamps rover/cmd, so a policy/cmd is matched to the first rover/cmd sent
    after it with the same values (neutral ones are ambiguous and skipped)."""
    joined, j = {}, 0
    for key, p_sent, p_rx, value in policy_cmds:
        if value == (0.0, 0.0):
            continue
        while j < len(rover_cmds) and rover_cmds[j][1] < p_sent:
            j += 1
        for _, r_sent, r_rx, r_value in rover_cmds[j:j + 8]:
            if r_value == value and r_sent - p_sent < horizon_s:
                joined[key] = (p_sent, p_rx, r_sent, r_rx)
                break
    return joined


def stamp_key(t: float) -> int:
    """A tick's ROS time (s) as a key of its command (ms: ticks are a period apart)."""
    return int(round(t * 1000.0))


def _stage(out, name, values_s):
    values = [v * 1000.0 for v in values_s if v is not None]
    out[f'{name}_p50_ms'] = _pct(values, 50)
    out[f'{name}_p99_ms'] = _pct(values, 99)


def analyse(ticks, chunks, start, end, rate, commands=None):
    """The summary numbers of the window [start, end] (monotonic seconds); `commands`:
    join_commands() of the policy/cmd and rover/cmd seen by the bench."""
    commands = commands or {}
    window = [t for t in ticks if start <= t['scheduled'] <= end]
    if len(window) < 3:
        raise RuntimeError(f'only {len(window)} ticks in the measured window')
    timing = tick_timing([t['scheduled'] for t in window], [t['actual'] for t in window], rate)
    first_tick_of = {}
    for t in window:
        if t['chunk_stamp'] is not None and t['chunk_stamp'] not in first_tick_of:
            first_tick_of[t['chunk_stamp']] = t
    overhead_ms, bridge_overhead_ms, frame_wait_ms, tick_wait_ms, capture_ms, model_ms = [], [], [], [], [], []
    stages = {k: [] for k in ('cam_publish', 'cam_dds', 'dispatch', 'preprocess', 'post_model')}
    for c in chunks:
        tick = first_tick_of.get(c['stamp'])
        if tick is None:
            continue
        model_ms.append(c['model_s'] * 1000.0)
        transport = c['received'] - c['stamp']
        processing = c['ready'] - c['started'] - c['model_s']
        publishing = tick['published'] - tick['scheduled']
        overhead_ms.append((transport + processing + publishing) * 1000.0)
        frame_wait_ms.append((c['started'] - c['received']) * 1000.0)
        tick_wait_ms.append((tick['t'] - c['ready']) * 1000.0)
        capture_ms.append((tick['t'] + (tick['published'] - tick['actual']) - c['stamp']) * 1000.0)
        command = commands.get(stamp_key(tick['t']))
        if command is not None:  # to rover/cmd as the bridge receives it, past the arbiter
            deadline = tick['t'] - (tick['actual'] - tick['scheduled'])
            bridge_overhead_ms.append((transport + processing + command[3] - deadline) * 1000.0)
        if c.get('sent') is not None:
            stages['cam_publish'].append(c['sent'] - c['stamp'])
            stages['cam_dds'].append(c['arrived'] - c['sent'])
            stages['dispatch'].append(c['received'] - c['arrived'])
        stages['preprocess'].append(c['preprocess_s'])
        stages['post_model'].append(processing - c['preprocess_s'])
    neutral = sum(1 for t in window if t['neutral'])
    summary = {
        'rate_hz': timing['rate_hz'],
        'p99_period_error_ms': timing['p99_period_error_ms'],
        'on_time_percent': timing['on_time_percent'],
        'inference_p50_ms': _pct(model_ms, 50),
        'e2e_overhead_p99_ms': _pct(overhead_ms, 99),
        'e2e_overhead_p50_ms': _pct(overhead_ms, 50),
        'bridge_overhead_p99_ms': _pct(bridge_overhead_ms, 99),
        'bridge_overhead_p50_ms': _pct(bridge_overhead_ms, 50),
        'frame_wait_p50_ms': _pct(frame_wait_ms, 50),
        'tick_wait_p50_ms': _pct(tick_wait_ms, 50),
        'capture_to_cmd_p50_ms': _pct(capture_ms, 50),
        'max_period_error_ms': timing['max_period_error_ms'],
        'ticks': len(window),
        'missed_ticks': timing['missed_ticks'],
        'chunks': len(model_ms),
        'neutral_percent': 100.0 * neutral / len(window),
    }
    # the stages of one frame's and one command's way, in order (every driven tick for the command)
    for name, values in stages.items():
        _stage(summary, name, values)
    driven = [t for t in window if t['chunk_stamp'] is not None]
    _stage(summary, 'tick_wake', [t['actual'] - t['scheduled'] for t in driven])
    _stage(summary, 'tick_publish', [t['published'] - t['actual'] for t in driven])
    hops = [commands[stamp_key(t['t'])] for t in driven if stamp_key(t['t']) in commands]
    _stage(summary, 'policy_cmd_dds', [h[1] - h[0] for h in hops])
    _stage(summary, 'arbiter_hop', [h[2] - h[0] for h in hops])
    _stage(summary, 'rover_cmd_dds', [h[3] - h[2] for h in hops])
    summary['commands_matched_percent'] = 100.0 * len(hops) / max(1, len(driven))
    return summary


def floor_probe(seconds: float, out_path: str, rate: float = 30.0) -> None:
    """A bare ControlLoop for `seconds`; writes (scheduled, actual) pairs as JSON."""
    from rover_policy.control_loop import ControlLoop
    samples = []
    loop = ControlLoop(rate, lambda scheduled, actual: samples.append((scheduled, actual))).start()
    time.sleep(seconds)
    loop.stop()
    with open(out_path, 'w') as f:
        json.dump(samples, f)


class FramePublisher:
    """rover/state (and camera frames unless a camera node runs) at `rate`, stamp = publish time."""

    def __init__(self, node, width, height, rate, with_frames=True):
        import cv2
        from geometry_msgs.msg import TwistStamped
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from rover_common import image_conversion
        self._node = node
        self._messages = []
        if with_frames:
            rng = np.random.default_rng(0)
            for small in rng.integers(0, 256, (8, max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8):
                frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
                self._messages.append(image_conversion.bgr_to_image_msg(
                    frame, node.get_clock().now().to_msg(), 'camera'))
        self._state = TwistStamped()
        self._image_pub = node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        self._state_pub = node.create_publisher(TwistStamped, 'rover/state', 10)
        # paced like a camera: absolute deadlines, an overrun skips frames (no burst)
        self._loop = DeadlineLoop(1.0 / rate, self._publish, name='bench-frames')
        self.published = 0

    def subscribed(self) -> bool:
        return self._state_pub.get_subscription_count() > 0

    def start(self):
        self._loop.start()
        return self

    def stop(self):
        self._loop.stop(5)

    def _publish(self, scheduled, actual):
        now = self._node.get_clock().now().to_msg()
        if self._messages:
            msg = self._messages[self.published % len(self._messages)]
            msg.header.stamp = now
            self._image_pub.publish(msg)
        self._state.header.stamp = now
        self._state_pub.publish(self._state)
        self.published += 1


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.floor_probe:
        floor_probe(float(args.floor_probe[0]), args.floor_probe[1], args.rate)
        return 0
    model_dir = args.model_dir or default_model_dir(args.cache_dir)

    import rclpy
    from geometry_msgs.msg import TwistStamped

    from rover_common.process import NodeProcess, wait_for
    from rover_common.ros_env import apply_localhost_env, localhost_env
    from rover_policy import timing_log

    domain = apply_localhost_env()
    work = tempfile.mkdtemp(prefix='rover_policy_bench_')
    atexit.register(shutil.rmtree, work, True)  # whichever way the bench ends
    log_path = os.path.abspath(args.timing_log) if args.timing_log else os.path.join(work, 'timing.jsonl')
    floor_path = os.path.join(work, 'floor.json')
    params = dict(model_dir=os.path.abspath(model_dir), backend=args.backend, threads=args.threads,
                  control_rate_hz=float(args.rate), timing_log=log_path,
                  inject_delay_ms=args.inject_delay_ms, control_priority=args.control_priority)
    if args.inference_nice is not None:
        params['inference_nice'] = args.inference_nice
    # the policy node plus its timing_log / inject_delay_ms knobs (not on the production node)
    policy = NodeProcess('rover_policy.instrumented_node', 'policy', params=params,
                         env=localhost_env(domain_id=domain)).start()
    # the arbiter in autonomous mode passes policy/cmd on to rover/cmd, as on the car
    arbiter = NodeProcess('rover_arbiter.arbiter_node', 'arbiter', params=dict(mode='autonomous'),
                          env=localhost_env(domain_id=domain)).start()
    camera = None
    if args.camera == 'node':
        camera = NodeProcess('rover_camera.camera_node', 'camera', env=localhost_env(domain_id=domain),
                             params=dict(source='synthetic', width=args.width, height=args.height,
                                         fps=float(args.rate), publish_compressed=False)).start()
    rclpy.init()
    node = rclpy.create_node('policy_bench')
    driving = threading.Event()
    policy_cmds, rover_cmds = [], []

    def recorder(records):
        # the middleware's send and receive times: this process's executor adds nothing
        def record(msg, info):
            value = (msg.twist.angular.z, msg.twist.linear.x)
            records.append((stamp_key(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9),
                            info['source_timestamp'] * 1e-9, info['received_timestamp'] * 1e-9, value))
            if value[0] != 0.0 and records is rover_cmds:
                driving.set()
        return record
    node.create_subscription(TwistStamped, 'policy/cmd', recorder(policy_cmds), 100)
    node.create_subscription(TwistStamped, 'rover/cmd', recorder(rover_cmds), 100)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    frames = FramePublisher(node, args.width, args.height, args.rate, with_frames=camera is None)
    probe = None
    try:
        if not wait_for(lambda: frames.subscribed() or not policy.alive(), 120) or not policy.alive():
            print(f'cannot start: the policy node did not come up:\n{policy.output()[-3000:]}', file=sys.stderr)
            return EXIT_CONFIG_ERROR
        frames.start()
        if not driving.wait(120):
            camera_log = camera.output()[-2000:] if camera is not None else ''
            print(f'the policy never drove:\n{policy.output()[-3000:]}\n{camera_log}', file=sys.stderr)
            return 1
        time.sleep(args.warmup)
        probe = subprocess.Popen([sys.executable, '-m', 'rover_policy.bench', '--rate', str(args.rate),
                                  '--floor-probe', str(args.seconds), floor_path])
        start = time.monotonic()
        time.sleep(args.seconds)
        end = time.monotonic()
        probe.wait(30)
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
        frames.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        policy.stop()
        arbiter.stop()
        if camera is not None:
            camera.stop()
    ticks, chunks = timing_log.read(log_path)
    summary = analyse(ticks, chunks, start, end, args.rate, join_commands(policy_cmds, rover_cmds))
    with open(floor_path) as f:
        floor = tick_timing(*zip(*json.load(f)), args.rate)
    summary.update({f'floor_{k}': floor[k] for k in ('p99_period_error_ms', 'on_time_percent')})
    summary['p99_period_error_over_floor_ms'] = summary['p99_period_error_ms'] - floor['p99_period_error_ms']
    model = os.path.basename(os.path.normpath(model_dir))
    print('bench control: ' + ' '.join(
        f'{k}={v:.3f}' if isinstance(v, float) else f'{k}={v}' for k, v in summary.items())
        + f' backend={args.backend} threads={args.threads} control_priority={args.control_priority} '
        f'inference_nice={"default" if args.inference_nice is None else args.inference_nice} '
        f'camera={args.camera} seconds={args.seconds:g} model={model}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

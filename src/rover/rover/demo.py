"""`make demo`: the whole stack in closed loop against the simulated rover.

One process per node (sim, policy, arbiter, bridge), started with the same
parameter files as `sim.launch.py` (see rover.graph), so no launch_ros is
needed. `DEMO_MODE=autonomous` (default): the policy drives. `DEMO_MODE=assisted`:
the policy steers and a simulated human (the pure-pursuit expert, throttle
only, like a gamepad at 20 Hz) gives the throttle. `ARDUINO=firmware` (or
`--arduino firmware`): the sim runs the real firmware (.elf) on an emulated
ATmega328P (simavr) instead of its Python twin, the car driven by the pulse
widths measured on its pins. This process watches the
topics, prints a live status line and a summary:

    demo: mode=autonomous control_hz=30.0 min_window_hz=29.6 below_tolerance_percent=0.0 ...

It exits 0 only if the loop held over the WHOLE run from the first command that
moved the car, not only at its end:
every 3 s window of rover/cmd (one starting each second) at the control rate
(at most MAX_BELOW_TOLERANCE_PERCENT of windows below it, none below MIN_WINDOW_HZ),
neutral for at most MAX_NEUTRAL_PERCENT of the time after the car first
drove, the serial link up, camera frames flowing and every node still alive.
"""
import argparse
import bisect
import os
import signal
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from rover.graph import ARDUINOS, control_rate_hz, rover_nodes
from rover_common.diagnostics import level_value
from rover_common.process import NodeProcess
from rover_common.ros_env import apply_localhost_env, localhost_env
from rover_common.stats import RateMeter

# Relative to where `make` runs (the repository root); the package may be installed anywhere.
DEFAULT_MODEL_DIR = Path(os.environ.get('ROVER_DEMO_MODEL', Path.cwd() / 'build' / 'demo_model'))
CONTROL_RATE_HZ = control_rate_hz()
CONTROL_RATE_TOLERANCE_HZ = 1.0
WINDOW_S = 3.0                      # rate windows over the whole run, one starting every second
MIN_WINDOW_HZ = 20.0                # a window below this fails the run outright
MAX_BELOW_TOLERANCE_PERCENT = 10.0  # of windows below CONTROL_RATE_HZ - tolerance
MAX_RATE_FACTOR = 1.1              # rover/cmd above 33 Hz: something publishes twice
MAX_NEUTRAL_PERCENT = 10.0          # of the time after the car first drove
DEMO_MODES = ('autonomous', 'assisted')


def prepare_model(model_dir: Path, force: bool = False) -> Path:
    """The demo's model: a small ACT that learned to follow the simulated track
    (see rover.demo_policy), exported and INT8-quantized by rover_quantize
    exactly like a real checkpoint."""
    if (model_dir / 'manifest.json').exists() and not force:
        return model_dir
    import shutil
    from rover.demo_policy import track_frames, write_checkpoint
    from rover_quantize.bags import write_test_bag
    from rover_quantize.pipeline import build_model_dir
    checkpoint = write_checkpoint(model_dir.parent / 'demo_checkpoint')
    # Calibrate on what the camera will see: a bag of rendered track frames.
    bag = model_dir.parent / 'demo_calibration_bag'
    shutil.rmtree(bag, ignore_errors=True)
    write_test_bag(bag, frames=track_frames(400, seed=7), image_type='compressed',
                   image_topic='/camera/image_raw/compressed')
    build_model_dir(checkpoint, model_dir, bags=[bag], image_topic='/camera/image_raw/compressed',
                    mode='static', calibration_frames=200, seed=0)
    return model_dir


class DemoMonitor(Node):
    """Watches the closed loop from outside, like rqt would."""

    def __init__(self):
        super().__init__('demo_monitor')
        self.cmd_rate = RateMeter(window=90)
        self.commands = 0
        self.neutral_events = 0
        self._was_driving = False
        self.cmd_times = []          # publish stamp (ROS time, s) of every rover/cmd
        self.neutral_after_drive = 0  # neutral commands once the car had driven
        self.after_drive = 0
        self.first_drive = None      # stamp of the first command that moved the car
        self.sources = {}            # rover/cmd_source value -> count
        self.diagnostics = {}   # status name -> (level, {key: value})
        self.create_subscription(TwistStamped, 'rover/cmd', self._on_cmd, 50)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)
        self.create_subscription(String, 'rover/cmd_source', self._on_source, 50)

    def _on_cmd(self, msg):
        self.cmd_rate.tick()
        self.commands += 1
        # the arbiter's publish stamp: the rate the car got, not when this (busy, recording)
        # process happened to read the message
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.cmd_times.append(stamp or self.ros_now())
        driving = msg.twist.linear.x != 0.0 or msg.twist.angular.z != 0.0
        if self._was_driving and not driving:
            self.neutral_events += 1
        if driving and not self.after_drive:
            self.first_drive = self.cmd_times[-1]
        if driving or self.after_drive:
            self.after_drive += 1
            self.neutral_after_drive += not driving
        self._was_driving = driving

    def ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_source(self, msg):
        self.sources[msg.data] = self.sources.get(msg.data, 0) + 1

    def window_rates(self, start: float, end: float) -> list[float]:
        """rover/cmd rate (Hz) in every WINDOW_S window of [start, end), one per second."""
        times = self.cmd_times
        return [(bisect.bisect_left(times, w + WINDOW_S) - bisect.bisect_left(times, w)) / WINDOW_S
                for w in (start + k for k in range(int(end - start - WINDOW_S) + 1))]

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name] = (
                level_value(status.level), {kv.key: kv.value for kv in status.values})

    def value(self, name_part: str, key: str, default=None):
        for name, (_, values) in self.diagnostics.items():
            if name_part in name and key in values:
                return values[key]
        return default

    def level(self, name_part: str):
        levels = [lvl for name, (lvl, _) in self.diagnostics.items() if name_part in name]
        return max(levels) if levels else None


def _float(text, default=float('nan')):
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def run_demo(seconds: float, model_dir: Path, record: str | None = None, mode: str = 'autonomous',
             arduino: str = 'twin') -> int:
    if mode not in DEMO_MODES:
        print(f'demo: DEMO_MODE={mode!r} is not one of {", ".join(DEMO_MODES)}', file=sys.stderr)
        return 2
    if arduino not in ARDUINOS:
        print(f'demo: ARDUINO={arduino!r} is not one of {", ".join(ARDUINOS)}', file=sys.stderr)
        return 2
    domain = apply_localhost_env()
    env = localhost_env(domain)
    nodes = rover_nodes(sim=True, model_dir=str(model_dir), mode=mode, arduino=arduino)
    processes = [NodeProcess(spec.module, spec.name, params=spec.overrides or None,
                             params_files=spec.params_files, env=env) for spec in nodes if spec.module]
    if mode == 'assisted':  # the human half: throttle only, like a gamepad at 20 Hz
        processes.append(NodeProcess('rover_sim.expert_driver', 'expert_driver', env=env,
                                     params={'style': 'joy', 'axes': 'throttle', 'rate_hz': 20.0}))
    print(f'demo: ROS_DOMAIN_ID={domain} (loopback only), mode {mode}, arduino {arduino}, model {model_dir}, '
          f'{seconds:.0f} s, Ctrl-C to stop early', flush=True)
    for proc in processes:
        proc.start()

    rclpy.init()
    monitor = DemoMonitor()
    recorder = None
    if record:
        from rover.recorder import BagRecorder
        recorder = BagRecorder(monitor, record)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start = time.monotonic()
    tty = sys.stdout.isatty()
    last_print = 0.0
    try:
        while not stop.wait(0.5):
            elapsed = time.monotonic() - start
            dead = [p.node_name for p in processes if not p.alive()]
            if dead:
                print(f'\ndemo: node(s) exited early: {", ".join(dead)}', flush=True)
                break
            if elapsed >= seconds:
                break
            if tty or elapsed - last_print >= 5.0:
                last_print = elapsed
                line = _status_line(monitor, elapsed)
                print(('\r' + line) if tty else line, end='' if tty else '\n', flush=True)
    finally:
        summary = _summary(monitor, processes, time.monotonic() - start, mode)
        if recorder is not None:
            recorder.close()
        executor.shutdown(timeout_sec=1.0)
        monitor.destroy_node()
        rclpy.try_shutdown()
        for proc in reversed(processes):
            proc.stop()
        for spec in nodes:  # the run's own e-stop latch (rover.graph) ends with the run
            state_file = spec.overrides.get('estop_state_file')
            if state_file and os.path.exists(state_file):
                os.unlink(state_file)
    if tty:
        print()
    held, line = summary
    print(line, flush=True)
    if not held:
        for proc in processes:
            print(f'--- {proc.node_name} output (last lines) ---')
            print('\n'.join(proc.output().splitlines()[-15:]))
    return 0 if held else 1


def _status_line(monitor: DemoMonitor, elapsed: float) -> str:
    return (f'[{elapsed:5.1f}s] control {monitor.cmd_rate.rate_hz():5.1f} Hz | '
            f'inference p50 {_float(monitor.value("policy", "inference_p50_ms")):6.1f} ms | '
            f'serial {monitor.value("bridge", "link", "?")} | '
            f'frames {monitor.value("sim", "frames", "0")} | '
            f'driven {_float(monitor.value("sim", "distance_m"), 0.0):6.2f} m, '
            f'{_float(monitor.value("sim", "laps"), 0.0):4.2f} laps, '
            f'{_float(monitor.value("sim", "on_track_percent"), 0.0):5.1f} % on track')


def _summary(monitor: DemoMonitor, processes, elapsed: float, mode: str):
    control_hz = monitor.cmd_rate.rate_hz()
    link = monitor.value('bridge', 'link', 'unknown')
    serial = 'ok' if link == 'up' else link
    frames = int(_float(monitor.value('sim', 'frames'), 0))
    alive = all(p.alive() for p in processes)
    # the whole run, from the first command on (start-up is the nodes' own time)
    monitor.cmd_times.sort()
    end = monitor.ros_now()   # commands that stopped before the end count as a gap
    # from the first command that moved the car: start-up (models loading, neutral keep-alives)
    # is the nodes' own time; from then on every window counts
    first = monitor.first_drive if monitor.first_drive is not None else end
    windows = monitor.window_rates(first, end)
    low = CONTROL_RATE_HZ - CONTROL_RATE_TOLERANCE_HZ
    min_window = min(windows) if windows else 0.0
    below = 100.0 * sum(w < low for w in windows) / max(1, len(windows))
    neutral_percent = 100.0 * monitor.neutral_after_drive / max(1, monitor.after_drive)
    neutral_seconds = monitor.neutral_after_drive / CONTROL_RATE_HZ
    # rover/cmd may run a little above the rate (a keep-alive next to a late policy tick);
    # far above means duplicated publishing, below means the car was not controlled
    held = (len(windows) >= 3 and low <= control_hz <= CONTROL_RATE_HZ * MAX_RATE_FACTOR
            and min_window >= MIN_WINDOW_HZ and below <= MAX_BELOW_TOLERANCE_PERCENT
            and monitor.after_drive > 0 and neutral_percent <= MAX_NEUTRAL_PERCENT
            and serial == 'ok' and frames > 0 and alive)
    source = max(monitor.sources, key=monitor.sources.get) if monitor.sources else '-'
    line = (f'demo: mode={mode} control_hz={control_hz:.1f} min_window_hz={min_window:.1f} '
            f'below_tolerance_percent={below:.1f} neutral_seconds={neutral_seconds:.1f} '
            f'neutral_percent={neutral_percent:.1f} '
            f'inference_p50_ms={_float(monitor.value("policy", "inference_p50_ms")):.1f} '
            f'serial={serial} frames={frames} neutral_events={monitor.neutral_events} '
            f'source={source} '
            f'distance_m={_float(monitor.value("sim", "distance_m"), 0.0):.2f} '
            f'laps={_float(monitor.value("sim", "laps"), 0.0):.2f} '
            f'on_track_percent={_float(monitor.value("sim", "on_track_percent"), 0.0):.1f} '
            f'seconds={elapsed:.1f} result={"ok" if held else "FAILED"}')
    return held, line


def _record_default():
    if os.environ.get('RECORD') != '1':
        return None
    return str(Path.cwd() / 'runs' / time.strftime('demo_%Y-%m-%d_%H-%M-%S'))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=float(os.environ.get('DEMO_SECONDS', 60)))
    parser.add_argument('--model-dir', type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument('--mode', default=os.environ.get('DEMO_MODE', 'autonomous'),
                        help=f'{" | ".join(DEMO_MODES)} (DEMO_MODE in the environment)')
    parser.add_argument('--arduino', default=os.environ.get('ARDUINO', 'twin'),
                        help=f'the board behind the sim\'s link: {" | ".join(ARDUINOS)} (firmware: the .elf on '
                             'simavr; ARDUINO in the environment)')
    parser.add_argument('--record', default=_record_default(),
                        help='write a rosbag2 (MCAP) of the run to this folder; RECORD=1 in the '
                             'environment records to runs/demo_<date>')
    parser.add_argument('--prepare-model', action='store_true',
                        help='only build the demo model directory (done by make setup)')
    args = parser.parse_args(argv)
    model_dir = prepare_model(args.model_dir)
    if args.prepare_model:
        print(f'demo model ready: {model_dir}')
        return 0
    return run_demo(args.seconds, model_dir, args.record, args.mode, args.arduino)


if __name__ == '__main__':
    sys.exit(main())

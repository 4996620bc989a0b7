"""`make demo`: the whole stack in closed loop against the simulated rover.

One process per node (sim, policy, bridge), started with the same parameter
files as `sim.launch.py` (see rover.graph), so no launch_ros is needed. This
process watches the topics, prints a live status line and a summary:

    demo: control_hz=30.0 inference_p50_ms=41.2 serial=ok frames=1795 neutral_events=1 ...

It exits 0 only if the loop held: commands at the control rate, the serial
link up, camera frames flowing and every node still alive.
"""
import argparse
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

from rover.graph import rover_nodes
from rover_common.diagnostics import level_value
from rover_common.process import NodeProcess
from rover_common.ros_env import apply_localhost_env, localhost_env
from rover_common.stats import RateMeter

# Relative to where `make` runs (the repository root); the package may be installed anywhere.
DEFAULT_MODEL_DIR = Path(os.environ.get('ROVER_DEMO_MODEL', Path.cwd() / 'build' / 'demo_model'))
CONTROL_RATE_TOLERANCE_HZ = 1.0


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
        self.diagnostics = {}   # status name -> (level, {key: value})
        self.create_subscription(TwistStamped, 'rover/cmd', self._on_cmd, 50)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)

    def _on_cmd(self, msg):
        self.cmd_rate.tick()
        self.commands += 1
        driving = msg.twist.linear.x != 0.0 or msg.twist.angular.z != 0.0
        if self._was_driving and not driving:
            self.neutral_events += 1
        self._was_driving = driving

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


def run_demo(seconds: float, model_dir: Path, record: str | None = None) -> int:
    domain = apply_localhost_env()
    env = localhost_env(domain)
    nodes = rover_nodes(sim=True, model_dir=str(model_dir), autonomy='true')
    processes = [NodeProcess(spec.module, spec.name, params=spec.overrides or None,
                             params_files=spec.params_files, env=env) for spec in nodes]
    print(f'demo: ROS_DOMAIN_ID={domain} (loopback only), model {model_dir}, '
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
        summary = _summary(monitor, processes, time.monotonic() - start)
        if recorder is not None:
            recorder.close()
        executor.shutdown(timeout_sec=1.0)
        monitor.destroy_node()
        rclpy.try_shutdown()
        for proc in reversed(processes):
            proc.stop()
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


def _summary(monitor: DemoMonitor, processes, elapsed: float):
    control_hz = monitor.cmd_rate.rate_hz()
    link = monitor.value('bridge', 'link', 'unknown')
    serial = 'ok' if link == 'up' else link
    frames = int(_float(monitor.value('sim', 'frames'), 0))
    alive = all(p.alive() for p in processes)
    held = (abs(control_hz - 30.0) <= CONTROL_RATE_TOLERANCE_HZ and serial == 'ok'
            and frames > 0 and alive and elapsed > 3.0)
    line = (f'demo: control_hz={control_hz:.1f} '
            f'inference_p50_ms={_float(monitor.value("policy", "inference_p50_ms")):.1f} '
            f'serial={serial} frames={frames} neutral_events={monitor.neutral_events} '
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
    return run_demo(args.seconds, model_dir, args.record)


if __name__ == '__main__':
    sys.exit(main())

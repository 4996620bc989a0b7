"""ROS 2 node `policy`: camera frames + rover state -> ACT action chunks -> 30 Hz policy/cmd.

policy/cmd is what the policy would drive; the arbiter (rover_arbiter) decides
by driving mode whether it reaches rover/cmd and the car. The policy always
infers, so its chunk can be watched in manual mode too.

Threads (the executor is never blocked by inference):
- ROS executor: image/state/e-stop callbacks only hand references to the
  inference worker; diagnostics at 1 Hz; parameter changes.
- inference: newest frame + newest state -> backend -> chunk into the scheduler,
  `policy/action_chunk` published.
- control: a fixed-rate loop on absolute monotonic deadlines publishes
  `policy/cmd` (TwistStamped, header.stamp = tick time) from the chunk scheduler
  through the safety gate (e-stop / stale frame / empty queue -> neutral).

Inference latency without ROS is its own entry point: `ros2 run rover_policy
latency_benchmark --model-dir DIR --backend cpu_int8` (rover_policy.latency_benchmark).
"""
import math
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32MultiArray, MultiArrayDimension

from rover_common import diagnostics, image_conversion
from rover_common.node_main import ConfigError, run
from rover_common.params import declare
from rover_common.stats import RateMeter, RollingStats
from rover_policy.backends import BACKENDS, HAILO_HEADS, BackendError, create_backend
from rover_policy.chunk_scheduler import ChunkScheduler
from rover_policy.control_loop import ControlLoop
from rover_policy.inference_worker import InferenceWorker, call_niced
from rover_policy.model_dir import ModelDirError, load_model_dir
from rover_policy.preprocessing import ImagePreprocessor, prepare_state
from rover_policy.safety import SafetyGate
from rover_policy.timing_log import TimingLog

NODE_NAME = 'policy'
# Python threads hand over the GIL every 5 ms by default; the control tick must
# not wait that long behind a Python-busy thread.
GIL_SWITCH_INTERVAL_S = 0.0005
# Inference fills every core; niced, it yields at once to the threads on the command path
# (measured in `bench control`).
DEFAULT_INFERENCE_NICE = 10
# Parameters that may change at run time, with their ranges.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class PolicyNode(Node):
    def __init__(self):
        super().__init__(NODE_NAME)
        model_dir = declare(self, 'model_dir', '', 'Model directory written by rover-quantize '
                            '(manifest.json + ONNX/HEF files).', read_only=True)
        backend_name = declare(self, 'backend', 'cpu_int8', 'Inference backend: ONNX Runtime INT8 or '
                               'FP32 on the CPU, or HailoRT on the Hailo NPU.', choices=BACKENDS,
                               read_only=True)
        hef_path = declare(self, 'hef_path', '', 'HEF for the hailo backend; empty: the manifest\'s '
                           'models.hef.', read_only=True)
        hailo_head = declare(self, 'hailo_head', 'fp32', 'CPU head of the hailo hybrid (HEF backbone): '
                             'head.onnx (fp32) or head_int8.onnx (int8, built by rover-quantize '
                             '--hailo-head-int8).', choices=HAILO_HEADS, read_only=True)
        threads = declare(self, 'threads', 4, 'ONNX Runtime intra-op threads (4 on the Pi 5).',
                          min_value=1, max_value=64, read_only=True)
        try:
            self.model = load_model_dir(model_dir)
            self.model.check_rover_names()
        except ModelDirError as exc:
            raise ConfigError(str(exc)) from exc
        model = self.model
        rate = self._number('control_rate_hz', model.control_rate_hz, 'Rate of rover/cmd (Hz); default '
                            'from the manifest.', 1.0, 200.0, read_only=True)
        n_action_steps = declare(self, 'n_action_steps', int(model.n_action_steps), 'Actions used from '
                                 'each chunk before it is spent (1..chunk_size); default from the '
                                 'manifest; not used with temporal ensembling.',
                                 min_value=1, max_value=model.chunk_size, read_only=True)
        ensembling = declare(self, 'temporal_ensembling', model.temporal_ensemble_coeff is not None,
                             'Blend the overlapping chunks (LeRobot\'s temporal ensembling); default: on '
                             'when the manifest\'s temporal_ensemble_coeff is not null.', read_only=True)
        coeff = self._number('temporal_ensemble_coeff',
                             0.01 if model.temporal_ensemble_coeff is None else model.temporal_ensemble_coeff,
                             'Temporal ensembling weight exp(-coeff * k), k = 0 for the oldest chunk '
                             '(0.01 in the ACT paper; negative favours newer chunks). Default from the '
                             'manifest.', -10.0, 10.0, read_only=True)
        max_frame_age = self._number('max_frame_age', 0.2, 'Newest camera frame older than this '
                                     '(s, by capture stamp) -> neutral.', 0.01, 10.0)
        control_priority = declare(self, 'control_priority', 0, 'SCHED_FIFO priority of the control '
                                   'thread (1..99; needs CAP_SYS_NICE or an rtprio limit); 0: normal '
                                   'scheduling.', min_value=0, max_value=99, read_only=True)
        inference_nice = declare(self, 'inference_nice', DEFAULT_INFERENCE_NICE, 'Niceness added to the '
                                 'inference thread and ONNX Runtime\'s threads, so the control loop, '
                                 'DDS and the camera get a core at once (0: same as the node).',
                                 min_value=0, max_value=19, read_only=True)
        inject_delay_ms, timing_log = self._instrumentation()

        try:  # created on a niced thread: ONNX Runtime's pool threads inherit its niceness
            self._backend = call_niced(lambda: create_backend(model, backend_name, threads, hef_path, hailo_head),
                                       inference_nice)
        except (BackendError, ModelDirError) as exc:
            raise ConfigError(str(exc)) from exc
        self._preprocess = ImagePreprocessor.for_model(model)
        try:  # fail at start, not at the first frame; also warms up the backend
            warm = self._backend.infer(
                np.zeros(model.image.shape, self._preprocess.dtype), np.zeros(model.state.shape, np.float32))
        except Exception as exc:
            self._backend.close()
            raise ConfigError(f'backend {backend_name} failed its first inference: {exc}') from exc
        if warm.shape != (model.chunk_size, model.action_dim):
            self._backend.close()
            raise ConfigError(f'backend {backend_name} returned actions of shape {warm.shape}, '
                              f'the manifest says {(model.chunk_size, model.action_dim)}')

        self._steering_index = model.action_names.index('steering')
        self._throttle_index = model.action_names.index('throttle')
        self._scheduler = ChunkScheduler(rate, n_action_steps, coeff if ensembling else None)
        self._gate = SafetyGate(max_frame_age)
        try:
            self._timing = TimingLog(timing_log)
        except OSError as exc:
            self._backend.close()
            raise ConfigError(f'cannot write timing_log {timing_log}: {exc}') from exc
        self._lock = threading.Lock()
        self._frame_dds = {}  # capture stamp -> (camera publish, arrival in this process), timing only
        self._newest_frame_stamp = None
        self._state_received = None
        self._frames_received = 0
        self._frames_skipped = 0
        self._last_error = None
        self._last_error_time = -math.inf
        self._last_depth = 0
        self._inference_ms = RollingStats(300)
        self._preprocess_ms = RollingStats(300)
        self._lateness_ms = RollingStats(300)
        self._tick_meter = RateMeter(300)
        self._realtime = False
        self._estop = False

        self._cmd_pub = self.create_publisher(TwistStamped, 'policy/cmd', 10)
        self._chunk_pub = self.create_publisher(Float32MultiArray, 'policy/action_chunk', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        frame_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.BEST_EFFORT,
                               durability=qos_profile_sensor_data.durability)
        self.create_subscription(Image, 'camera/image_raw', self._on_image, frame_qos)
        self.create_subscription(TwistStamped, 'rover/state', self._on_state, qos_profile_sensor_data)
        self.create_subscription(Bool, 'rover/estop', self._on_estop, LATCHED)
        slow_group = MutuallyExclusiveCallbackGroup()
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=slow_group)

        self._worker = InferenceWorker(
            self._backend, image_conversion.image_msg_to_bgr, self._preprocess,
            self._make_state, self._on_chunk, self._on_inference_error, self._now,
            inject_delay_s=inject_delay_ms / 1000.0, nice=inference_nice).start()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._control = ControlLoop(rate, self._tick, priority=control_priority,
                                    on_priority=self._on_priority).start()
        quantization = model.manifest.get('quantization') or {}
        if backend_name == 'cpu_int8' and quantization.get('forced'):
            validation = model.manifest.get('validation') or {}
            self.get_logger().warning(
                f'{model.path}: this INT8 model missed the accuracy bar and was written with --force '
                f'(MSE {validation.get("mse")}, max error {validation.get("max_abs_error")})')
        description = ', '.join(f'{k}={v}' for k, v in self._backend.describe().items())
        self.get_logger().info(
            f'policy ready: {model.path} ({description}), image {model.image_width}x{model.image_height}, '
            f'chunk {model.chunk_size}, n_action_steps {n_action_steps}, ensembling '
            f'{coeff if ensembling else "off"}, control {rate:.1f} Hz')

    def _instrumentation(self) -> tuple[int, str]:
        """(inject_delay_ms, timing_log): off in production; the test/bench variant
        (rover_policy.instrumented_node) declares them as parameters."""
        return 0, ''

    def _number(self, name, default, description, low, high, read_only=False) -> float:
        return declare(self, name, float(default), description, min_value=low, max_value=high,
                       read_only=read_only)

    # ---- inputs (executor threads: hand over references only) ----
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image, info) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        with self._lock:
            self._newest_frame_stamp = stamp
            self._frames_received += 1
            if self._timing.enabled:  # the middleware's times split the transport (benchmark)
                self._frame_dds[stamp] = (info['source_timestamp'] * 1e-9, info['received_timestamp'] * 1e-9)
        self._worker.submit_frame(msg, stamp, self._now())

    def _on_state(self, msg: TwistStamped) -> None:
        by_name = {'steering': msg.twist.angular.z, 'throttle': msg.twist.linear.x}
        values = [by_name[name] for name in self.model.state_names]
        self._state_received = self._now()
        self._worker.set_state(values)

    def _on_estop(self, msg: Bool) -> None:
        # While latched the policy sends neutral, and no chunk predicted before
        # the e-stop is ever used after it.
        engaged = bool(msg.data)
        if engaged != self._estop:
            self._scheduler.clear()
            self.get_logger().warning('e-stop engaged: chunks dropped, neutral' if engaged else
                                      'e-stop released: waiting for new chunks')
        self._estop = engaged

    def _make_state(self, values):
        # Before the bridge reports anything the car stands still: a zero state.
        return prepare_state(values if values is not None else [0.0] * self.model.state_dim,
                             self.model.state_dim)

    # ---- inference thread ----
    def _on_chunk(self, result) -> None:
        self._scheduler.add_chunk(result.actions, result.stamp)
        self._inference_ms.add(result.model_s * 1000.0)
        self._preprocess_ms.add(result.preprocess_s * 1000.0)
        with self._lock:
            self._frames_skipped += result.frames_skipped
        if self._timing.enabled:
            with self._lock:
                sent, arrived = self._frame_dds.get(result.stamp, (None, None))
                self._frame_dds = {k: v for k, v in self._frame_dds.items() if k > result.stamp}
            self._timing.add(type='chunk', stamp=result.stamp, sent=sent, arrived=arrived,
                             received=result.received, started=result.started, ready=result.ready,
                             model_s=result.model_s, preprocess_s=result.preprocess_s)
        msg = Float32MultiArray()
        chunk, width = result.actions.shape
        msg.layout.dim = [MultiArrayDimension(label='chunk', size=chunk, stride=chunk * width),
                          MultiArrayDimension(label='action', size=width, stride=width)]
        msg.data = result.actions.astype(np.float32).ravel().tolist()
        self._chunk_pub.publish(msg)

    def _on_inference_error(self, exc) -> None:
        # A failing backend must not leave an old chunk driving: drop the queue (-> neutral).
        self._scheduler.clear()
        self._last_error = f'{type(exc).__name__}: {exc}'
        self._last_error_time = time.monotonic()
        self.get_logger().error(f'inference failed: {self._last_error}', throttle_duration_sec=2.0)

    # ---- control thread ----
    def _tick(self, scheduled: float, actual: float) -> None:
        now_time = self.get_clock().now()
        now = now_time.nanoseconds * 1e-9
        action, chunk_stamp, index, depth = self._scheduler.lookup(now)
        pair = None if action is None else (action[self._steering_index], action[self._throttle_index])
        decision = self._gate.decide(now, self._estop, self._newest_frame_stamp, pair)
        msg = TwistStamped()
        msg.header.stamp = now_time.to_msg()
        msg.twist.angular.z = decision.steering
        msg.twist.linear.x = decision.throttle
        self._cmd_pub.publish(msg)
        self._tick_meter.tick(actual)
        self._lateness_ms.add((actual - scheduled) * 1000.0)
        self._last_depth = depth
        self._timing.add(type='tick', scheduled=scheduled, actual=actual, t=now,
                         published=time.monotonic(), chunk_stamp=chunk_stamp, index=index,
                         neutral=decision.neutral_reason)

    def _on_priority(self, error) -> None:
        self._realtime = error is None
        if error:
            self.get_logger().warning(f'control thread at normal priority: {error}')
        else:
            self.get_logger().info('control thread runs SCHED_FIFO')

    # ---- runtime switches ----
    def _apply_parameters(self, params) -> None:
        # after rover_common.params has checked types and ranges (on set) for every node
        for param in params:
            if param.name == 'max_frame_age':
                self._gate.max_frame_age = float(param.value)

    # ---- diagnostics ----
    def _publish_diagnostics(self) -> None:
        self._timing.flush()
        now = self._now()
        frame_age = float('nan') if self._newest_frame_stamp is None else now - self._newest_frame_stamp
        state_age = float('nan') if self._state_received is None else now - self._state_received
        reason = self._gate.last_reason
        error_recent = time.monotonic() - self._last_error_time < 2.0
        values = {
            **self._backend.describe(),
            'model_dir': self.model.path,
            'inference_p50_ms': self._inference_ms.percentile(50),
            'inference_p95_ms': self._inference_ms.percentile(95),
            'preprocess_p50_ms': self._preprocess_ms.percentile(50),
            'control_rate_hz': self._tick_meter.rate_hz(),
            'tick_lateness_p99_ms': self._lateness_ms.percentile(99),
            'missed_ticks': self._control.missed,
            'control_realtime': self._realtime,
            'queue_depth': self._last_depth,
            'frame_age_s': frame_age,
            'frames_received': self._frames_received,
            'frames_skipped': self._frames_skipped,
            'chunks': self._worker.chunks,
            'inference_errors': self._worker.errors,
            'inference_nice': self._worker.nice_error or self._worker.nice,
            'last_error': self._last_error or '',
            'state_age_s': state_age,
            'estop': self._estop,
            'neutral_reason': reason or '',
            'neutral_events': self._gate.neutral_events,
        }
        if error_recent:
            level, message = diagnostics.ERROR, f'inference failing: {self._last_error}'
        elif reason is not None:
            level, message = diagnostics.WARN, f'neutral: {reason}'
        elif self._state_received is None:
            level, message = diagnostics.WARN, 'driving; no rover/state received (using zeros)'
        else:
            level, message = diagnostics.OK, 'driving'
        self._diag_pub.publish(diagnostics.array(
            self, diagnostics.status(f'{self.get_fully_qualified_name()}: policy', level, message, values)))

    def close(self) -> None:
        """Ordered shutdown (node_main.run calls it while the context is valid):
        no thread may publish after the final neutral."""
        self._control.stop()
        self._worker.stop()
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        self._cmd_pub.publish(msg)   # all zeros: neutral
        # the process may exit right after close(): make sure the neutral left it
        self._cmd_pub.wait_for_all_acked(Duration(seconds=1.0))
        self._timing.close()
        self._backend.close()


def main(args=None):
    sys.exit(run(PolicyNode, args=args))


if __name__ == '__main__':
    main()

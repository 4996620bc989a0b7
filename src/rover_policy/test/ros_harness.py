"""The test side of multi-process policy tests: publishes frames/state, records what the policy sends."""
import math
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from rclpy.qos import DurabilityPolicy
from std_msgs.msg import Bool, Float32MultiArray

from rover_common import image_conversion
from rover_common.process import wait_for

RATE = 30.0


class Harness:
    def __init__(self, name='policy_test'):
        self.node = rclpy.create_node(name)
        self.image_pub = self.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        self.state_pub = self.node.create_publisher(TwistStamped, 'rover/state', 10)
        self.cmds = []      # (stamp s, steering, throttle, receive time s)
        self.chunks = []    # np arrays [chunk, action]
        self.chunk_layouts = []
        self.diagnostics = []
        self.camera_frames = []  # (stamp, bgr) seen on camera/image_raw (camera-node tests)
        self._lock = threading.Lock()
        self.node.create_subscription(TwistStamped, 'policy/cmd', self._on_cmd, 100)
        self.node.create_subscription(Float32MultiArray, 'policy/action_chunk', self._on_chunk, 100)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 20)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.estop_pub = self.node.create_publisher(Bool, 'rover/estop', latched)  # as the bridge does
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()
        self.sent_frames = []  # (stamp, frame index)
        self._publishing = None

    def listen_to_camera(self):
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.node.create_subscription(Image, 'camera/image_raw', self._on_camera, qos)

    def _on_camera(self, msg):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self.camera_frames.append((stamp, image_conversion.image_msg_to_bgr(msg)))

    def _on_cmd(self, msg):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self.cmds.append((stamp, msg.twist.angular.z, msg.twist.linear.x, time.time()))

    def _on_chunk(self, msg):
        dims = [(d.label, d.size, d.stride) for d in msg.layout.dim]
        chunk = np.array(msg.data, np.float32).reshape(dims[0][1], dims[1][1])
        with self._lock:
            self.chunks.append(chunk)
            self.chunk_layouts.append(dims)

    def _on_diag(self, msg):
        with self._lock:
            for status in msg.status:
                if status.name.endswith(': policy'):
                    self.diagnostics.append((status.level, status.message,
                                             {kv.key: kv.value for kv in status.values}))

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def wait_for_subscribers(self, timeout=15.0):
        return wait_for(lambda: self.image_pub.get_subscription_count() > 0
                        and self.state_pub.get_subscription_count() > 0, timeout)

    def publish_state(self, steering, throttle):
        msg = TwistStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.twist.angular.z = float(steering)
        msg.twist.linear.x = float(throttle)
        self.state_pub.publish(msg)

    def start_frames(self, frames, state=(0.0, 0.0), rate=RATE):
        """Publish frames[k % len] at `rate` (absolute deadlines), stamp = publish time."""
        stop = threading.Event()

        def loop():
            period = 1.0 / rate
            deadline = time.monotonic()
            k = 0
            while not stop.is_set():
                stamp = self.node.get_clock().now()
                index = k % len(frames)
                self.image_pub.publish(image_conversion.bgr_to_image_msg(frames[index], stamp.to_msg(), 'camera'))
                self.publish_state(*state)
                with self._lock:
                    self.sent_frames.append((stamp.nanoseconds * 1e-9, index))
                k += 1
                deadline += period
                stop.wait(max(0.0, deadline - time.monotonic()))
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._publishing = (stop, thread)

    def stop_frames(self):
        stop, thread = self._publishing
        stop.set()
        thread.join(5)
        self._publishing = None

    def set_estop(self, engaged: bool):
        self.estop_pub.publish(Bool(data=engaged))

    def snapshot(self):
        with self._lock:
            return list(self.cmds), list(self.sent_frames)

    def close(self):
        if self._publishing is not None:
            self.stop_frames()
        self.executor.shutdown()
        self.node.destroy_node()


def match_commands(cmds, frames_by_stamp, expected, rate=RATE, n_action_steps=None, tol=2e-4):
    """For each command, the (frame stamp, index) whose expected action it equals.

    `frames_by_stamp`: {stamp: key}; `expected[key]`: chunk [chunk, 2] for that frame.
    The index is NOT searched: it is fixed by the stamps, i = floor((T - s) * rate).
    Returns a list of (T, s or None, i or None, neutral) per command.
    """
    stamps = sorted(frames_by_stamp)
    result = []
    for stamp, steering, throttle, _ in cmds:
        neutral = steering == 0.0 and throttle == 0.0
        found = []
        for s in stamps:
            if s > stamp:
                break
            index = math.floor((stamp - s) * rate + 1e-6)
            chunk = expected[frames_by_stamp[s]]
            limit = len(chunk) if n_action_steps is None else n_action_steps
            if index < limit and abs(chunk[index, 0] - steering) < tol and abs(chunk[index, 1] - throttle) < tol:
                found.append((s, index))
        if len(found) > 1:
            # identical frames (e.g. a camera repeating one) are the same observation: keep the
            # oldest that does not go back behind the previous command's frame
            chunks = [expected[frames_by_stamp[s]] for s, _ in found]
            if any(np.abs(c - chunks[0]).max() > tol for c in chunks[1:]):
                raise AssertionError(f'command at {stamp} matches several frames: {found}')
            floor_stamp = next((r[1] for r in reversed(result) if r[1] is not None), -math.inf)
            found = [f for f in found if f[0] >= floor_stamp] or found[-1:]
        s, index = found[0] if found else (None, None)
        result.append((stamp, s, index, neutral))
    return result

"""Camera benchmark: the node in its own process publishing the synthetic
pattern at 640x360 and 30 fps; this process subscribes to the raw and the
compressed topic and measures what arrives.

    python -m rover_camera.bench        (CAMERA_BENCH_SECONDS=20 by default)

Prints one line:
    bench camera: rate_hz=... cpu_percent=... p99_interval_ms=... ...
rate_hz and p99_interval_ms are of camera/image_raw as received here;
cpu_percent is the node process (100 = one core); lost_frames counts frame
numbers (drawn into the pattern) that never arrived.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import psutil
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from rover_camera.sources import decode_frame_counter
from rover_common import image_conversion
from rover_common.process import NodeProcess
from rover_common.ros_env import apply_localhost_env, localhost_env

WIDTH, HEIGHT, FPS = 640, 360, 30.0
WARM_UP_S = 2.0


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.recording = False
        self.receive_s: list[float] = []
        self.stamp_s: list[float] = []
        self.counters: list[int] = []
        self.compressed = 0
        self.first_seen = threading.Event()

    def on_image(self, msg: Image) -> None:
        received = time.time()
        self.first_seen.set()
        if not self.recording:
            return
        counter = decode_frame_counter(image_conversion.image_msg_to_bgr(msg))
        with self.lock:
            self.receive_s.append(received)
            self.stamp_s.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            self.counters.append(counter)

    def on_compressed(self, msg: CompressedImage) -> None:
        if self.recording:
            with self.lock:
                self.compressed += 1


def main() -> int:
    seconds = float(os.environ.get('CAMERA_BENCH_SECONDS', '20'))
    domain = apply_localhost_env()
    camera = NodeProcess('rover_camera.camera_node', 'camera_bench',
                         params={'source': 'synthetic', 'width': WIDTH, 'height': HEIGHT, 'fps': FPS},
                         env=localhost_env(domain))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('camera_bench_listener', context=context)
    recorder = Recorder()
    node.create_subscription(Image, 'camera/image_raw', recorder.on_image, qos_profile_sensor_data)
    node.create_subscription(CompressedImage, 'camera/image_raw/compressed', recorder.on_compressed,
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    camera.start()
    try:
        if not recorder.first_seen.wait(60):
            print(f'bench camera: error: no frame within 60 s\n{camera.output()}', file=sys.stderr)
            return 1
        time.sleep(WARM_UP_S)
        process = psutil.Process(camera.proc.pid)
        cpu_before = process.cpu_times()
        wall_before = time.monotonic()
        recorder.recording = True
        time.sleep(seconds)
        recorder.recording = False
        cpu_after = process.cpu_times()
        wall = time.monotonic() - wall_before
        alive = camera.alive()
    finally:
        camera.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    with recorder.lock:
        receive = np.array(recorder.receive_s)
        stamps = np.array(recorder.stamp_s)
        counters = np.array(recorder.counters)
        compressed = recorder.compressed
    if len(receive) < 3 or not alive:
        print(f'bench camera: error: {len(receive)} frames, node alive={alive}\n{camera.output()}',
              file=sys.stderr)
        return 1
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    intervals_ms = np.diff(receive) * 1000.0
    latency_ms = (receive - stamps) * 1000.0
    lost = int(np.sum(np.clip(np.diff(counters) - 1, 0, None)))
    print(f'bench camera: rate_hz={(len(receive) - 1) / (receive[-1] - receive[0]):.2f} '
          f'cpu_percent={100.0 * cpu_s / wall:.1f} '
          f'p99_interval_ms={np.percentile(intervals_ms, 99):.2f} '
          f'p99_stamp_interval_ms={np.percentile(np.diff(stamps) * 1000.0, 99):.2f} '
          f'p50_latency_ms={np.percentile(latency_ms, 50):.2f} '
          f'p99_latency_ms={np.percentile(latency_ms, 99):.2f} '
          f'frames={len(receive)} lost_frames={lost} compressed_rate_hz={compressed / wall:.2f} '
          f'size={WIDTH}x{HEIGHT} target_fps={FPS:g} seconds={wall:.1f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""Camera publisher: camera/image_raw (bgr8), camera/image_raw/compressed (jpeg),
camera/camera_info, and /diagnostics; the camera/set_camera_info service saves a
calibration (what cameracalibrator's COMMIT calls).

A thin ROS shell over rover_camera.sources (where frames come from) and
rover_camera.capture (pacing, reconnects). Two threads of its own:
- capture: grab -> stamp (ROS time right after the grab) -> retrieve -> slot
- publish: slot -> resize if needed -> Image, CameraInfo, CompressedImage
so publishing never delays a grab (a late grab would make a late stamp).
"""
from __future__ import annotations

import os
import threading
import time

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo

from rover_camera import capture as cap
from rover_camera import camera_info as ci
from rover_camera.sources import SOURCE_GRAMMAR, create_source, parse_source
from rover_common import diagnostics, image_conversion
from rover_common.backoff import Backoff
from rover_common.fastdds import use_large_frame_transport
from rover_common.latest_slot import LatestSlot
from rover_common.node_main import ConfigError, run
from rover_common.params import declare
from rover_common.stats import RateMeter, RollingStats

# What camera_ros publishes with: every subscriber matches it (a best-effort one too), and a
# slow reliable one holds back one frame at most. Change it per topic with the standard
# qos_overrides./<ns>/camera/image_raw.publisher.{reliability,depth,history,durability}.
# (A new profile per publisher: rclpy writes the overrides into the one it is given.)
def image_qos() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _number(node, name, default, description, lo, hi, *, lo_open=False):
    """A float parameter that also accepts an integer (`fps: 30` in YAML)."""
    value = declare(node, name, default, description, min_value=lo, max_value=hi,
                    read_only=True, dynamic_typing=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'parameter {name}={value!r} must be a number')
    value = float(value)
    if not ((value > lo) if lo_open else (value >= lo)) or value > hi:
        low = f'above {lo:g}' if lo_open else f'at least {lo:g}'
        raise ConfigError(f'parameter {name}={value:g} is out of range: must be {low} and at most {hi:g}')
    return value


class CameraNode(Node):

    def __init__(self, **kwargs):
        super().__init__('camera', **kwargs)
        log = self.get_logger()
        ro = {'read_only': True}
        source_text = declare(self, 'source', 'device:0', f'Where frames come from: {SOURCE_GRAMMAR}.', **ro)
        self.width = declare(self, 'width', 640, 'Published image width in pixels (frames of another '
                             'size are resized); asked of cameras.', min_value=1, max_value=7680, **ro)
        self.height = declare(self, 'height', 360, 'Published image height in pixels (frames of another '
                              'size are resized); asked of cameras.', min_value=1, max_value=4320, **ro)
        self.fps = _number(self, 'fps', 30.0, 'Frame rate: asked of cameras, paced for files, folders '
                           'and the test pattern (cameras publish what they deliver).',
                           0.0, 240.0, lo_open=True)
        fourcc = declare(self, 'fourcc', 'MJPG', 'Pixel format asked of V4L2 cameras (MJPG, YUYV, ...; '
                         'empty keeps the driver default).', **ro)
        self.frame_id = declare(self, 'frame_id', 'camera_optical_frame', 'header.frame_id of every '
                                'message: an optical frame (z forward, x right, y down; REP 103).', **ro)
        self.publish_compressed = declare(self, 'publish_compressed', True,
                                          'Also publish camera/image_raw/compressed (JPEG).', **ro)
        self.jpeg_quality = declare(self, 'jpeg_quality', 80, 'JPEG quality of the compressed topic.',
                                    min_value=1, max_value=100, **ro)
        self.camera_name = declare(self, 'camera_name', 'camera', 'Name of the camera in its calibration '
                                   '(${NAME} in camera_info_url); letters, digits and _.', **ro)
        camera_info_url = declare(self, 'camera_info_url', '', 'Calibration (YAML or INI as cameracalibrator '
                                  'writes) as file:///path, package://pkg/path or a path; ${NAME} and '
                                  '${ROS_HOME} are substituted; empty: ' + ci.DEFAULT_URL + ' if it '
                                  'exists, else an uncalibrated CameraInfo. set_camera_info saves there.', **ro)
        loop = declare(self, 'loop', True, 'Start a video file or image folder over at its end.', **ro)
        retry_on_start = declare(self, 'retry_on_start', True, 'When the source cannot be opened at start: '
                                 'true keeps retrying with backoff (ERROR in /diagnostics until it '
                                 'opens, e.g. a camera that enumerates late); false exits with code 2.', **ro)
        reconnect_max = _number(self, 'reconnect_max_s', 5.0, 'Longest wait between reopen attempts of a '
                                'lost source (waits start at 0.25 s and double).', 0.05, 300.0)
        self.diag_period = _number(self, 'diagnostics_period_s', 1.0, 'Period of the /diagnostics status.',
                                   0.1, 60.0)

        spec = parse_source(source_text)  # ValueError -> exit code 2
        if not ci.valid_camera_name(self.camera_name):
            raise ConfigError(f'parameter camera_name={self.camera_name!r} may hold only letters, digits and _')
        self.camera_info_url = ci.resolve_url(camera_info_url, self.camera_name)
        calibration = self._load_calibration(explicit=bool(camera_info_url.strip()))
        self._info_template = ci.to_camera_info_msg(calibration, self.frame_id)

        self.source = create_source(spec, width=self.width, height=self.height, fps=self.fps,
                                    fourcc=fourcc, loop=loop)
        self.image_pub = self._publisher(Image, 'camera/image_raw')
        self.info_pub = self._publisher(CameraInfo, 'camera/camera_info')
        self.compressed_pub = (self._publisher(CompressedImage, 'camera/image_raw/compressed')
                               if self.publish_compressed else None)
        self.create_service(SetCameraInfo, 'camera/set_camera_info', self._on_set_camera_info)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self.slot = LatestSlot()
        self.capture = cap.CaptureLoop(
            self.source, self._on_frame, fps=self.fps,
            now_ns=lambda: self.get_clock().now().nanoseconds, log=log,
            backoff=Backoff(initial=0.25, maximum=reconnect_max))
        error = self.capture.try_open()
        if error is not None:
            if not retry_on_start:
                self.source.close()
                raise ConfigError(f'{error} (retry_on_start is false)')
            log.error(f'{error}; retrying with backoff up to every {reconnect_max:g} s '
                      '(retry_on_start is true)')

        window = max(10, int(self.fps * 2))  # rate over the last ~2 s, so gaps show quickly
        self.publish_rate = RateMeter(window=window)
        self.intervals_ms = RollingStats(window=max(30, int(self.fps * 10)))
        self.latency_ms = RollingStats(window=max(30, int(self.fps * 10)))
        self.published = 0
        self.publish_errors = 0
        self._last_publish: float | None = None
        self._resize_warned = False
        self._closing = threading.Event()
        self._publisher_thread = threading.Thread(target=self._publish_loop, name='camera-publish',
                                                  daemon=True)
        self._publisher_thread.start()
        self.capture.start()
        self.create_timer(self.diag_period, self._publish_diagnostics)
        profile = (os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')
                   or os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or 'default')
        settings = (f'{self.width}x{self.height} @ {self.fps:g} fps '
                    f'({"paced" if self.source.paced else "as delivered"}), compressed='
                    f'{self.publish_compressed}, qos={_qos_text(self.image_pub.qos_profile)}, '
                    f'frame_id={self.frame_id}, camera_info={self._calibration_text()}, '
                    f'image conversion: {image_conversion.backend_name()}, Fast DDS profile: {profile}')
        if error is None:
            log.info(f'camera: streaming {self.source.description} -> {settings}')
        else:  # the ERROR above stands: say what it will do, not that it started
            log.info(f'camera: not streaming until {self.source.description} opens; then -> {settings}')

    def _publisher(self, msg_type, topic: str):
        """A publisher with image_qos(), or what the qos_overrides.<topic>.publisher.* parameters say."""
        try:
            return self.create_publisher(msg_type, topic, image_qos(),
                                         qos_overriding_options=QoSOverridingOptions.with_default_policies())
        except (RuntimeError, InvalidQosOverridesError) as exc:  # rclpy's error for a bad override value
            raise ConfigError(f'qos_overrides of {topic}: {exc}') from None

    # capture thread
    def _on_frame(self, frame, stamp_ns: int, seq: int) -> None:
        self.slot.put((frame, stamp_ns, seq))

    # publish thread
    def _publish_loop(self) -> None:
        while not self._closing.is_set():
            item = self.slot.get(timeout=0.5)
            if item is None:
                continue
            try:
                self._publish(*item)
            except Exception as exc:  # noqa: BLE001 - keep publishing; report below
                if self._closing.is_set() or not rclpy.ok(context=self.context):
                    return
                self.publish_errors += 1
                if self.publish_errors == 1 or self.publish_errors % 100 == 0:
                    self.get_logger().error(f'publishing a frame failed ({self.publish_errors} so far): {exc}')

    def _publish(self, frame, stamp_ns: int, seq: int) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        if frame.shape[:2] != (self.height, self.width):
            if not self._resize_warned:
                self._resize_warned = True
                self.get_logger().warning(
                    f'{self.source.description} delivers {frame.shape[1]}x{frame.shape[0]}; '
                    f'resizing to {self.width}x{self.height} (costs CPU; ask the source for that size)')
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        stamp = Time(nanoseconds=stamp_ns, clock_type=self.get_clock().clock_type).to_msg()
        image = image_conversion.bgr_to_image_msg(frame, stamp, self.frame_id)
        self.image_pub.publish(image)
        info = self._info_template
        info.header.stamp = stamp
        self.info_pub.publish(info)
        now = time.monotonic()
        self.latency_ms.add((self.get_clock().now().nanoseconds - stamp_ns) / 1e6)
        # JPEG costs a few ms per frame on the Pi: only encode when someone listens.
        if self.compressed_pub is not None and self.compressed_pub.get_subscription_count() > 0:
            self.compressed_pub.publish(image_conversion.bgr_to_compressed_msg(
                frame, stamp, self.frame_id, self.jpeg_quality))
        self.published += 1
        self.publish_rate.tick(now)
        if self._last_publish is not None:
            self.intervals_ms.add((now - self._last_publish) * 1000.0)
        self._last_publish = now

    # executor
    def _publish_diagnostics(self) -> None:
        snap = self.capture.snapshot()
        rate = self.publish_rate.rate_hz(stale_after=max(1.0, 3.0 / self.fps))
        dropped = snap['dropped_in_gaps'] + self.slot.overwritten + self.publish_errors
        state = snap['state']
        if state in (cap.UNAVAILABLE, cap.RECONNECTING):
            level = diagnostics.ERROR
            message = f'{state}: {snap["last_error"]}'
        elif state == cap.FINISHED:
            level, message = diagnostics.WARN, 'end of stream (loop is off)'
        elif state == cap.STREAMING and self.published and rate < 0.5 * self._expected_fps():
            level, message = diagnostics.WARN, f'streaming slowly ({rate:.1f} Hz)'
        else:
            level, message = diagnostics.OK, state
        values = {
            'source': self.source.description,
            'state': state,
            'publish_rate_hz': rate,
            'target_fps': self._expected_fps(),
            'frames_published': self.published,
            'dropped_frames': dropped,
            'reconnects': snap['reconnects'],
            'source_losses': snap['losses'],
            'failed_opens': snap['failed_opens'],
            'outage_s': snap['outage_s'],
            'interval_p99_ms': self.intervals_ms.percentile(99),
            'stamp_to_publish_p99_ms': self.latency_ms.percentile(99),
            'publish_errors': self.publish_errors,
            'last_error': snap['last_error'],
            **self.source.details(),
        }
        status = diagnostics.status(diagnostics.status_name(self, 'camera'), level, message, values,
                                    hardware_id=self.source.description)
        self.diag_pub.publish(diagnostics.array(self, status))

    # calibration
    def _load_calibration(self, explicit: bool) -> ci.Calibration:
        """The calibration at camera_info_url; uncalibrated when the default file is not there yet."""
        log = self.get_logger()
        path = ci.url_to_path(self.camera_info_url)
        if not explicit and not os.path.exists(path):
            log.info(f'no calibration at {path} (the default for camera_name {self.camera_name}): '
                     'publishing an uncalibrated camera_info; cameracalibrator\'s COMMIT saves one there')
            return ci.uncalibrated(self.width, self.height)
        calibration = ci.load_calibration(self.camera_info_url)  # ValueError -> exit code 2
        if calibration.camera_name and calibration.camera_name != self.camera_name:
            log.warning(f'calibration {path} is for camera {calibration.camera_name!r}, '
                        f'this is {self.camera_name!r}; using it anyway')
        if (calibration.width, calibration.height) != (self.width, self.height):
            log.warning(f'calibration {path} is for {calibration.width}x{calibration.height} '
                        f'but images are published at {self.width}x{self.height}; '
                        'camera_info is published as calibrated')
        return calibration

    def _calibration_text(self) -> str:
        calibrated = self._info_template.k[0] != 0.0
        return f'{"calibrated" if calibrated else "uncalibrated"} ({self.camera_info_url})'

    def _on_set_camera_info(self, request, response):
        """Apply a calibration to camera_info at once and save it to camera_info_url."""
        msg = request.camera_info
        problem = ci.full_frame_problem(msg)
        if problem is None and (msg.width, msg.height) != (self.width, self.height):
            problem = (f'calibration is for {msg.width}x{msg.height} but images are published at '
                       f'{self.width}x{self.height}')
        if problem is not None:
            response.success, response.status_message = False, f'refused: {problem}'
            self.get_logger().error(f'set_camera_info {response.status_message}')
            return response
        calibration = ci.from_camera_info_msg(msg, self.camera_name)
        # applied at once: the publish thread takes the new message for the next frame
        self._info_template = ci.to_camera_info_msg(calibration, self.frame_id)
        try:
            path = ci.save_calibration(calibration, self.camera_info_url)
        except ValueError as exc:
            response.success, response.status_message = False, f'applied but not saved: {exc}'
            self.get_logger().error(f'set_camera_info: {response.status_message}')
            return response
        response.success, response.status_message = True, f'saved to {path}'
        self.get_logger().info(f'set_camera_info: new calibration applied and saved to {path}')
        return response

    def _expected_fps(self) -> float:
        if self.source.paced:
            return self.fps
        return self.source.nominal_fps() or self.fps

    def close(self) -> None:
        self._closing.set()
        self.capture.stop()
        self.slot.close()
        self._publisher_thread.join(2.0)


def _qos_text(profile: QoSProfile) -> str:
    return f'{profile.reliability.name.lower()}/{profile.history.name.lower()} {profile.depth}'


def main(args=None) -> int:
    use_large_frame_transport()
    return run(CameraNode, args=args)


if __name__ == '__main__':
    raise SystemExit(main())

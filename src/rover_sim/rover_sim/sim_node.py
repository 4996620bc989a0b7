"""The simulated rover: the hardware the real nodes talk to, in one process.

- a virtual Arduino on a pseudo-terminal (rover_bridge's twin of the firmware:
  same protocol and watchdog) whose applied outputs drive a bicycle-model car;
  or, with `arduino: firmware`, the firmware itself (.elf) on an emulated
  ATmega328P (simavr), the car driven by the pulse widths measured on its pins;
- a camera on that car rendering the track at `fps`, published exactly as the
  camera node publishes (camera/image_raw bgr8 stamped at capture, compressed,
  camera_info).

The bridge opens `serial_link` as if it were the Arduino's USB port, so the
loop closes through the real policy and bridge nodes and real topics. Each run
needs a link of its own (rover.graph computes one with `run_link_path` and
passes it to the sim and the bridge); a link another running sim owns is refused.
"""
import math

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from rover_bridge.twin.link_lock import LinkInUse
from rover_bridge.twin.pty_board import VirtualArduino
from rover_bridge.twin.simavr import FirmwareArduino, FirmwareUnavailable
from rover_common import diagnostics as diag
from rover_common.deadline_loop import DeadlineLoop
from rover_common.fastdds import use_large_frame_transport
from rover_common.image_conversion import bgr_to_compressed_msg, bgr_to_image_msg
from rover_common.node_main import ConfigError, run
from rover_common.params import declare
from rover_common.stats import RateMeter
from rover_sim.run_link import ARDUINOS, run_link_path
from rover_sim.track import StadiumTrack, render_floor
from rover_sim.track_camera import CameraMount, TrackCamera
from rover_sim.vehicle_model import BicycleModel


class SimNode(Node):
    def __init__(self):
        super().__init__('sim')
        self.link = declare(self, 'serial_link', '',
                            'Path of the symlink to the virtual Arduino pty; the bridge opens it '
                            '(empty: a per-run path from the ROS domain, namespace and this pid).')
        if not self.link:
            self.link = run_link_path(self.get_namespace())
        self.arduino_kind = declare(
            self, 'arduino', 'twin',
            'The board behind the link: twin (the Python twin of the firmware) or firmware (the '
            'built .elf on an emulated ATmega328P, simavr; the car follows its measured pulse widths).',
            choices=ARDUINOS, read_only=True)
        width = declare(self, 'width', 640, 'Camera image width in pixels.', min_value=16, max_value=4096)
        height = declare(self, 'height', 360, 'Camera image height in pixels.', min_value=16, max_value=4096)
        self.fps = declare(self, 'fps', 30.0, 'Camera frame rate (Hz).', min_value=1.0, max_value=120.0)
        self.frame_id = declare(self, 'frame_id', 'camera', 'frame_id of the camera messages.')
        self.publish_compressed = declare(self, 'publish_compressed', True,
                                          'Also publish camera/image_raw/compressed (JPEG).')
        self.jpeg_quality = declare(self, 'jpeg_quality', 80, 'JPEG quality.', min_value=1, max_value=100)
        start = declare(self, 'start_progress', 0.0,
                        'Where on the track the car starts (m along the centre line).',
                        min_value=0.0, max_value=1000.0)

        self.track = StadiumTrack()
        self.camera = TrackCamera(render_floor(self.track), CameraMount(width=width, height=height))
        x, y, yaw = self.track.centre_point(start)
        self.car = BicycleModel(x=x, y=y, yaw=yaw)
        try:
            if self.arduino_kind == 'firmware':
                self.arduino = FirmwareArduino(link=self.link, vehicle=self.car)
            else:
                self.arduino = VirtualArduino(link=self.link, vehicle=self.car)
            self.arduino.start()
        except LinkInUse as exc:
            raise ConfigError(str(exc)) from exc
        except FirmwareUnavailable as exc:  # names the Debian packages
            raise ConfigError(f'arduino=firmware: {exc}') from exc
        except OSError as exc:
            raise ConfigError(f'cannot create the virtual Arduino link {self.link}: {exc}') from exc

        self.image_pub = self.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        self.compressed_pub = self.create_publisher(
            CompressedImage, 'camera/image_raw/compressed', qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', qos_profile_sensor_data)
        self.pose_pub = self.create_publisher(PoseStamped, 'sim/pose', 10)
        self.diag_pub = self.create_publisher(diag.DiagnosticArray, '/diagnostics', 10)
        self.info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')

        self.frames = 0
        self.off_track_frames = 0
        self.progress_m = 0.0          # along the centre line, counter-clockwise positive
        self._last_progress = self.track.progress(x, y)
        self.lateral_offset = self.track.distance_from_centre(x, y)
        self.rate = RateMeter(window=90)
        # Frames are paced on their own thread with absolute deadlines, like a
        # camera's sensor clock: the executor's load never delays a capture, and a
        # slow frame skips the deadlines it overran instead of bursting to catch up.
        self._frame_loop = DeadlineLoop(1.0 / self.fps, self._capture, name='sim_camera').start()
        self.create_timer(1.0, self._publish_diagnostics)
        board = 'emulated firmware (simavr)' if self.arduino_kind == 'firmware' else 'virtual Arduino'
        self.get_logger().info(f'{board} on {self.link}; camera {width}x{height} at {self.fps} Hz')

    def _capture(self, scheduled, actual):
        pose = self.arduino.pose()
        x, y, yaw = pose.x, pose.y, pose.yaw
        stamp = self.get_clock().now().to_msg()   # capture time
        frame = self.camera.render(x, y, yaw)
        self.image_pub.publish(bgr_to_image_msg(frame, stamp, self.frame_id))
        if self.publish_compressed:
            self.compressed_pub.publish(
                bgr_to_compressed_msg(frame, stamp, self.frame_id, self.jpeg_quality))
        self.info.header.stamp, self.info.header.frame_id = stamp, self.frame_id
        self.info_pub.publish(self.info)
        self._publish_pose(stamp, x, y, yaw)
        self._account(x, y)
        self.frames += 1
        self.rate.tick()

    def _account(self, x, y):
        """Laps and time off the track, from the true pose (the policy never sees it)."""
        progress = self.track.progress(x, y)
        length = self.track.length
        self.progress_m += (progress - self._last_progress + length / 2) % length - length / 2
        self._last_progress = progress
        self.lateral_offset = self.track.distance_from_centre(x, y)
        if abs(self.lateral_offset) > self.track.width / 2:
            self.off_track_frames += 1

    def _publish_pose(self, stamp, x, y, yaw):
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, 'track'
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z, pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        self.pose_pub.publish(pose)

    def _publish_diagnostics(self):
        pose = self.arduino.pose()
        offset = self.lateral_offset  # of the last camera frame
        on_track = abs(offset) < self.track.width / 2
        values = {
            'frames': self.frames, 'camera_rate_hz': self.rate.rate_hz(),
            'missed_frames': self._frame_loop.missed,  # deadlines a slow render overran
            'distance_m': self.car.distance, 'speed_mps': pose.speed,
            'lateral_offset_m': offset, 'on_track': on_track, 'laps': self.progress_m / self.track.length,
            'on_track_percent': 100.0 * (1 - self.off_track_frames / max(1, self.frames)), 'link': self.link,
            'arduino': self.arduino_kind,
        }
        level = diag.OK if on_track else diag.WARN
        message = 'on track' if on_track else 'off track'
        if self.arduino_kind == 'firmware':
            # what the pins show: the measured pulse widths, and the outputs they mean
            steering_us, throttle_us = self.arduino.widths()
            steering, throttle = self.arduino.controls()
            values.update({'steering_us': steering_us if steering_us is not None else 'none',
                           'throttle_us': throttle_us if throttle_us is not None else 'none',
                           'steering': steering, 'throttle': throttle})
            if not self.arduino.alive():
                level, message = diag.ERROR, 'emulated firmware exited'
        self.diag_pub.publish(diag.array(self, diag.status('sim: world', level, message, values, 'sim')))

    def close(self):
        self._frame_loop.stop()
        self.arduino.stop()


def main(args=None):
    use_large_frame_transport()
    return run(SimNode, args=args)


if __name__ == '__main__':
    raise SystemExit(main())

"""The camera node in its own process, checked from this process over ROS (loopback only)."""
import os
import shutil
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo

from rover_camera.camera_info import load_calibration
from rover_camera.sources import TestPatternRenderer, decode_frame_counter, opencv_has_gstreamer
from rover_common import image_conversion
from rover_common.diagnostics import level_value
from rover_common.process import NodeProcess, wait_for
from rover_common.ros_env import apply_localhost_env, localhost_env

pytestmark = pytest.mark.timeout(120)

ROS_ENV_KEYS = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_STATIC_PEERS', 'ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY')
MODULE = 'rover_camera.camera_node'
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Inbox:
    """Messages of one topic with their receive time (ns, system clock like the stamps)."""

    def __init__(self, node, msg_type, topic, qos):
        self.items = []
        self._lock = threading.Lock()
        self._node = node
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg):
        received = time.time_ns()
        with self._lock:
            self.items.append((msg, received))

    def __len__(self):
        with self._lock:
            return len(self.items)

    def snapshot(self):
        with self._lock:
            return list(self.items)

    def close(self):
        self._node.destroy_subscription(self.sub)


class Listener:
    """A node of the test process, spun on a background thread."""

    def __init__(self, domain_id: int):
        self.domain_id = domain_id
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('camera_test_listener', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while rclpy.ok(context=self.context):
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                if rclpy.ok(context=self.context):
                    raise

    def inbox(self, msg_type, topic, qos=qos_profile_sensor_data) -> Inbox:
        return Inbox(self.node, msg_type, topic, qos)

    def camera(self, node_name: str, params: dict, namespace: str, env: dict | None = None) -> NodeProcess:
        return NodeProcess(MODULE, node_name, params=params,
                           env=localhost_env(self.domain_id) | (env or {}), remaps={'__ns': namespace})

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
            future = client.call_async(request)
            assert wait_for(future.done, timeout), f'{name} did not answer'
            return future.result()
        finally:
            self.node.destroy_client(client)

    def shutdown(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2)


@pytest.fixture(scope='module')
def ros():
    saved = {key: os.environ.get(key) for key in ROS_ENV_KEYS}
    domain = apply_localhost_env()  # this process talks over loopback only, like the nodes
    listener = Listener(domain)
    yield listener
    listener.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def camera_status(inbox: Inbox, node_name: str):
    """Latest diagnostic status of the camera `node_name` (namespace/name, as the status is
    named) as (level, message, values)."""
    for msg, _ in reversed(inbox.snapshot()):
        for status in msg.status:
            if status.name == f'{node_name}: camera':
                return level_value(status.level), status.message, {kv.key: kv.value for kv in status.values}
    return None


def wait_status(inbox, node_name, predicate, timeout):
    found = []

    def check():
        status = camera_status(inbox, node_name)
        if status is not None and predicate(*status):
            found.append(status)
            return True
        return False
    assert wait_for(check, timeout), f'no matching /diagnostics; last: {camera_status(inbox, node_name)}'
    return found[0]


def write_video(path, count, size, fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    assert writer.isOpened()
    renderer = TestPatternRenderer(*size)
    for i in range(count):
        writer.write(renderer.render(i))
    writer.release()


def write_images(folder, count, size):
    folder.mkdir(exist_ok=True)
    renderer = TestPatternRenderer(*size)
    for i in range(count):
        cv2.imwrite(str(folder / f'img_{i:03d}.png'), renderer.render(i))


def stop_cleanly(camera: NodeProcess):
    assert camera.alive(), camera.output()
    assert camera.stop() == 0, camera.output()
    assert 'Traceback' not in camera.output(), camera.output()


def test_video_file_is_published_stamped_paced_and_compressed(ros, tmp_path):
    fps, frames_in_file = 30.0, 90
    video = tmp_path / 'drive.mp4'
    write_video(video, frames_in_file, (160, 120), fps)
    ns = '/stream'
    raw = ros.inbox(Image, f'{ns}/camera/image_raw')
    compressed = ros.inbox(CompressedImage, f'{ns}/camera/image_raw/compressed')
    info = ros.inbox(CameraInfo, f'{ns}/camera/camera_info')
    diag = ros.inbox(DiagnosticArray, '/diagnostics', 10)
    camera = ros.camera('camstream', {'source': f'file:{video}', 'width': 160, 'height': 120,
                                      'fps': 30, 'frame_id': 'test_cam', 'jpeg_quality': 90}, ns)
    with camera:
        assert wait_for(lambda: len(raw) >= 60 and len(compressed) >= 20, 30), camera.output()
        status = wait_status(diag, 'stream/camstream', lambda lvl, msg, v: int(v['frames_published']) > 30, 10)
        stop_cleanly(camera)
    level, _, values = status
    assert level == OK and values['state'] == 'streaming'
    assert 20 < float(values['publish_rate_hz']) < 40

    received = raw.snapshot()[5:]  # skip start-up (discovery) effects
    pictures = {}
    for msg, _ in received:
        assert (msg.width, msg.height, msg.encoding) == (160, 120, 'bgr8')
        assert msg.header.frame_id == 'test_cam'
        pictures[stamp_ns(msg.header.stamp)] = image_conversion.image_msg_to_bgr(msg)
    stamps = np.array([stamp_ns(m.header.stamp) for m, _ in received])
    latency_ms = np.array([(recv - stamp_ns(m.header.stamp)) / 1e6 for m, recv in received])
    assert np.all(np.diff(stamps) > 0), 'stamps must increase'
    assert latency_ms.min() > -1.0, 'a stamp lies in the future: not a capture time'
    assert np.median(latency_ms) < 100.0 and latency_ms.max() < 1000.0

    # Frames come in file order, looping; per frame advanced the stamps step by 1/fps.
    counters = np.array([decode_frame_counter(p) for p in pictures.values()])
    steps = np.diff(counters) % frames_in_file
    assert np.all((steps >= 1) & (steps <= 5)), f'frames out of order: {counters}'
    assert np.mean(steps == 1) > 0.8
    per_frame_ms = np.diff(stamps) / steps / 1e6
    assert np.median(per_frame_ms) == pytest.approx(1000.0 / fps, rel=0.15)

    matched = 0
    for msg, _ in compressed.snapshot():
        twin = pictures.get(stamp_ns(msg.header.stamp))
        if twin is None:
            continue
        decoded = image_conversion.compressed_msg_to_bgr(msg)
        assert msg.format == 'jpeg' and decoded.shape == twin.shape
        assert np.abs(decoded.astype(int) - twin).mean() < 6.0
        matched += 1
    assert matched >= 10

    infos = info.snapshot()
    assert infos and all((m.width, m.height) == (160, 120) for m, _ in infos)
    assert all(m.header.frame_id == 'test_cam' for m, _ in infos)
    info_stamps = {stamp_ns(m.header.stamp) for m, _ in infos}
    assert len(info_stamps & set(pictures)) >= 10  # camera_info carries the image's stamp
    for box in (raw, compressed, info, diag):
        box.close()


def test_video_file_removed_and_restored_while_running(ros, tmp_path):
    video = tmp_path / 'loop.mp4'
    write_video(video, 30, (160, 120))
    ns = '/vanish_file'
    raw = ros.inbox(Image, f'{ns}/camera/image_raw')
    diag = ros.inbox(DiagnosticArray, '/diagnostics', 10)
    params = {'source': str(video), 'width': 160, 'height': 120, 'fps': 30.0,
              'publish_compressed': False, 'reconnect_max_s': 0.5, 'diagnostics_period_s': 0.2}
    with ros.camera('camfile', params, ns) as camera:
        assert wait_for(lambda: len(raw) >= 10, 30), camera.output()
        video.rename(tmp_path / 'away.mp4')
        level, message, values = wait_status(
            diag, 'vanish_file/camfile', lambda lvl, msg, v: v['state'] == 'reconnecting', 10)
        assert level == ERROR and 'disappeared' in message
        time.sleep(0.3)
        before = len(raw)
        time.sleep(1.0)
        assert len(raw) == before, 'frames kept coming from a removed file'
        assert camera.alive(), camera.output()
        (tmp_path / 'away.mp4').rename(video)
        assert wait_for(lambda: len(raw) >= before + 10, 15), camera.output()
        level, _, values = wait_status(
            diag, 'vanish_file/camfile', lambda lvl, msg, v: v['state'] == 'streaming' and int(v['reconnects']) >= 1
            and lvl == OK, 10)  # OK once the publish-rate window is past the gap
        assert int(values['dropped_frames']) >= 20  # the ~1.3 s gap at 30 fps
        assert int(values['source_losses']) == 1
        stop_cleanly(camera)
    assert camera.output().count('camera source lost') == 1
    raw.close()
    diag.close()


def test_image_folder_emptied_and_refilled_with_resize_and_calibration(ros, tmp_path):
    folder = tmp_path / 'frames'
    write_images(folder, 10, (200, 150))  # published at 160x120: resized
    calibration = tmp_path / 'cam.yaml'
    calibration.write_text(
        'image_width: 160\nimage_height: 120\ncamera_name: test\n'
        'camera_matrix: {rows: 3, cols: 3, data: [100, 0, 80, 0, 100, 60, 0, 0, 1]}\n'
        'distortion_model: plumb_bob\n'
        'distortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n'
        'rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n'
        'projection_matrix: {rows: 3, cols: 4, data: [100, 0, 80, 0, 0, 100, 60, 0, 0, 0, 1, 0]}\n')
    ns = '/vanish_dir'
    raw = ros.inbox(Image, f'{ns}/camera/image_raw')
    info = ros.inbox(CameraInfo, f'{ns}/camera/camera_info')
    diag = ros.inbox(DiagnosticArray, '/diagnostics', 10)
    params = {'source': f'dir:{folder}', 'width': 160, 'height': 120, 'fps': 30.0,
              'publish_compressed': False, 'reconnect_max_s': 0.5, 'diagnostics_period_s': 0.2,
              'camera_info_url': f'file://{calibration}'}
    aside = tmp_path / 'aside'
    aside.mkdir()
    with ros.camera('camdir', params, ns) as camera:
        assert wait_for(lambda: len(raw) >= 10, 30), camera.output()
        for path in folder.iterdir():
            shutil.move(str(path), str(aside / path.name))
        wait_status(diag, 'vanish_dir/camdir', lambda lvl, msg, v: v['state'] == 'reconnecting'
                    and lvl == ERROR, 10)
        time.sleep(0.3)
        before = len(raw)
        time.sleep(1.0)
        assert len(raw) == before and camera.alive(), camera.output()
        for path in aside.iterdir():
            shutil.move(str(path), str(folder / path.name))
        assert wait_for(lambda: len(raw) >= before + 10, 15), camera.output()
        wait_status(diag, 'vanish_dir/camdir', lambda lvl, msg, v: v['state'] == 'streaming'
                    and int(v['reconnects']) >= 1 and lvl == OK, 10)
        stop_cleanly(camera)
    frames = raw.snapshot()
    assert all((m.width, m.height) == (160, 120) for m, _ in frames)
    counters = [decode_frame_counter(image_conversion.image_msg_to_bgr(m)) for m, _ in frames]
    assert set(counters) <= set(range(10)) and len(set(counters)) >= 5
    assert camera.output().count('resizing to 160x120') == 1  # warned once
    k = list(info.snapshot()[-1][0].k)
    assert k == [100, 0, 80, 0, 100, 60, 0, 0, 1]
    for box in (raw, info, diag):
        box.close()


def test_missing_device_is_reported_once_and_retried(ros):
    diag = ros.inbox(DiagnosticArray, '/diagnostics', 10)
    params = {'source': '/dev/video_rover_test_missing', 'reconnect_max_s': 0.2,
              'diagnostics_period_s': 0.2}
    with ros.camera('camdev', params, '/nodev') as camera:
        level, message, values = wait_status(
            diag, 'nodev/camdev', lambda lvl, msg, v: int(v['failed_opens']) >= 4, 20)
        assert level == ERROR and values['state'] == 'unavailable'
        assert '/dev/video_rover_test_missing' in message
        stop_cleanly(camera)
    output = camera.output()
    assert output.count('cannot open V4L2 device /dev/video_rover_test_missing') == 1, output
    assert 'MJPG 640x360 @ 30 fps' in output
    # after that ERROR no INFO may read as if the camera had started
    after_error = output.split('cannot open V4L2 device', 1)[1]
    infos = [line for line in after_error.splitlines() if '[INFO]' in line]
    assert infos and all('not streaming until V4L2 device /dev/video_rover_test_missing opens' in line
                         for line in infos), output
    diag.close()


BAD_PARAMETERS = [
    ({'source': 'bogus:xyz'}, "unknown source type 'bogus'"),
    ({'source': 'synthetic', 'fps': 0.0}, 'fps'),
    ({'source': 'synthetic', 'fps': 0}, 'fps=0 is out of range'),
    ({'source': 'synthetic', 'width': -5}, 'width'),
    ({'source': 'synthetic', 'height': 0}, 'height'),
    ({'source': 'synthetic', 'qos_overrides./bad{i}/camera/image_raw.publisher.reliability': 'sometimes'},
     'qos_overrides of camera/image_raw'),
    ({'source': 'synthetic', 'camera_name': 'front cam'}, 'camera_name'),
    ({'source': 'synthetic', 'camera_info_url': 'file:///${HOME}/cam.yaml'}, 'unknown substitution ${HOME}'),
    ({'source': 'file:/nonexistent/rover.mp4', 'retry_on_start': False}, 'no such file'),
    ({'source': 'synthetic', 'camera_info_url': 'file:///nonexistent/cam.yaml'}, 'cannot read'),
]
if not opencv_has_gstreamer():
    BAD_PARAMETERS.append(({'source': 'gst:videotestsrc'}, 'built without GStreamer'))


def test_bad_parameters_exit_with_code_2_and_a_clear_message(ros):
    cameras = [ros.camera(f'bad{i}', {k.format(i=i): v for k, v in params.items()}, f'/bad{i}').start()
               for i, (params, _) in enumerate(BAD_PARAMETERS)]
    try:
        for i, (camera, (params, expected)) in enumerate(zip(cameras, BAD_PARAMETERS)):
            assert camera.wait_exit(60) == 2, (params, camera.output())
            output = camera.output()
            assert 'cannot start' in output and expected in output, (params, output)
            assert 'Traceback' not in output, output
            # logged as the node (namespace.name, as launch shows its other lines), not as [rover]
            assert f'[bad{i}.bad{i}]: cannot start' in output, output
    finally:
        for camera in cameras:
            camera.stop()


RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def offered_reliability(ros, topic):
    return [info.qos_profile.reliability for info in ros.node.get_publishers_info_by_topic(topic)]


def test_reliable_and_best_effort_subscribers_both_receive_everything(ros):
    """image_view, image_proc and most camera_info users subscribe reliable; the policy best-effort."""
    ns = '/qos'
    inboxes = [ros.inbox(msg_type, f'{ns}/camera/{topic}', qos)
               for msg_type, topic in ((Image, 'image_raw'), (CompressedImage, 'image_raw/compressed'),
                                       (CameraInfo, 'camera_info'))
               for qos in (RELIABLE, qos_profile_sensor_data)]
    params = {'source': 'synthetic', 'width': 160, 'height': 120, 'fps': 30.0}
    with ros.camera('camqos', params, ns) as camera:
        assert wait_for(lambda: min(map(len, inboxes)) >= 10, 30), ([len(b) for b in inboxes], camera.output())
        for topic in ('image_raw', 'image_raw/compressed', 'camera_info'):
            assert offered_reliability(ros, f'{ns}/camera/{topic}') == [ReliabilityPolicy.RELIABLE], topic
        stop_cleanly(camera)
    image = inboxes[0].snapshot()[-1][0]
    assert image.header.frame_id == 'camera_optical_frame'  # the default: an optical frame
    assert 'qos=reliable/keep_last 1' in camera.output()
    for box in inboxes:
        box.close()


def test_standard_qos_overrides_change_one_publisher(ros):
    ns = '/qos_override'
    reliable, best_effort = (ros.inbox(Image, f'{ns}/camera/image_raw', qos)
                             for qos in (RELIABLE, qos_profile_sensor_data))
    info = ros.inbox(CameraInfo, f'{ns}/camera/camera_info', RELIABLE)
    params = {'source': 'synthetic', 'width': 160, 'height': 120, 'fps': 30.0,
              f'qos_overrides.{ns}/camera/image_raw.publisher.reliability': 'best_effort'}
    with ros.camera('camover', params, ns) as camera:
        assert wait_for(lambda: len(best_effort) >= 20 and len(info) >= 20, 30), camera.output()
        assert offered_reliability(ros, f'{ns}/camera/image_raw') == [ReliabilityPolicy.BEST_EFFORT]
        assert offered_reliability(ros, f'{ns}/camera/camera_info') == [ReliabilityPolicy.RELIABLE]
        assert len(reliable) == 0, 'a reliable subscriber matched a best-effort publisher'
        stop_cleanly(camera)
    for box in (reliable, best_effort, info):
        box.close()


def calibration_request(width=160, height=120, fx=150.0):
    msg = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    msg.d = [-0.2, 0.05, 0.001, 0.0, 0.0]
    msg.k = [fx, 0.0, 80.0, 0.0, fx, 60.0, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, 80.0, 0.0, 0.0, fx, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return SetCameraInfo.Request(camera_info=msg)


def test_set_camera_info_applies_saves_and_is_loaded_at_the_next_start(ros, tmp_path):
    """What cameracalibrator's COMMIT does, into camera_info_manager's default URL."""
    ns, home = '/calib', tmp_path / 'ros_home'
    saved = home / 'camera_info' / 'front_cam.yaml'
    info = ros.inbox(CameraInfo, f'{ns}/camera/camera_info', RELIABLE)
    params = {'source': 'synthetic', 'width': 160, 'height': 120, 'fps': 30.0, 'camera_name': 'front_cam',
              'publish_compressed': False}
    service = f'{ns}/camera/set_camera_info'
    with ros.camera('camcal', params, ns, env={'ROS_HOME': str(home)}) as camera:
        assert wait_for(lambda: len(info) >= 3, 30), camera.output()
        assert list(info.snapshot()[-1][0].k) == [0.0] * 9  # nothing saved yet: uncalibrated
        refusals = [(calibration_request(width=320), 'calibration is for 320x120'),
                    (calibration_request(), 'binning 2x2 is not supported'),
                    (calibration_request(), 'roi 80x60+0+0 is not supported')]
        refusals[1][0].camera_info.binning_x = refusals[1][0].camera_info.binning_y = 2
        refusals[2][0].camera_info.roi.width, refusals[2][0].camera_info.roi.height = 80, 60
        for request, reason in refusals:
            response = ros.call(SetCameraInfo, service, request)
            assert not response.success and reason in response.status_message, response.status_message
        assert not saved.exists()

        response = ros.call(SetCameraInfo, service, calibration_request(fx=150.0))
        assert response.success and str(saved) in response.status_message, response.status_message
        assert wait_for(lambda: info.snapshot()[-1][0].k[0] == 150.0, 5), 'camera_info kept the old calibration'
        assert list(info.snapshot()[-1][0].d) == [-0.2, 0.05, 0.001, 0.0, 0.0]
        stop_cleanly(camera)
    on_disk = load_calibration(str(saved))
    assert on_disk.camera_name == 'front_cam' and on_disk.k[0] == 150.0 and (on_disk.width, on_disk.height) == (160, 120)

    info.close()
    info = ros.inbox(CameraInfo, f'{ns}/camera/camera_info', RELIABLE)
    with ros.camera('camcal', params, ns, env={'ROS_HOME': str(home)}) as camera:
        assert wait_for(lambda: len(info) >= 3, 30), camera.output()
        assert all(m.k[0] == 150.0 for m, _ in info.snapshot()), 'the saved calibration was not loaded'
        stop_cleanly(camera)
    info.close()


def test_the_camera_section_of_config_rover_yaml_sets_only_declared_parameters():
    """rclpy ignores a parameter nobody declares: a stale key (qos_reliability) would silently do nothing."""
    import re
    from pathlib import Path

    import yaml
    import rover_camera.camera_node as camera_node
    code = Path(camera_node.__file__).read_text()
    declared = set(re.findall(r"(?:declare|_number)\(self, '(\w+)'", code))
    repo = Path(__file__).resolve().parents[3]
    section = yaml.safe_load((repo / 'config' / 'rover.yaml').read_text())['/**/camera']['ros__parameters']
    assert set(section) <= declared, set(section) - declared
    assert section['frame_id'].endswith('_optical_frame')

import os

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from rover_common import image_conversion as ic
from rover_common.ros_env import localhost_env
from rover_common.stats import RateMeter, RollingStats


def test_localhost_env_sets_range_and_domain(monkeypatch):
    monkeypatch.setenv('ROS_LOCALHOST_ONLY', '1')
    env = localhost_env(domain_id=42)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['ROS_DOMAIN_ID'] == '42'
    assert 'ROS_LOCALHOST_ONLY' not in env
    assert 1 <= int(localhost_env()['ROS_DOMAIN_ID']) <= 101


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'mono8', 'bgra8'])
def test_image_round_trip_through_other_encodings(encoding):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = ic.bgr_to_image_msg(bgr, Time(sec=3, nanosec=4), 'cam')
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, 'bgr8')
    assert msg.header.stamp.sec == 3 and msg.header.frame_id == 'cam'
    assert np.array_equal(ic.image_msg_to_bgr(msg), bgr)
    if encoding != 'bgr8':
        import cv2
        conv = {'rgb8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_BGR2GRAY, 'bgra8': cv2.COLOR_BGR2BGRA}
        other = cv2.cvtColor(bgr, conv[encoding])
        msg.encoding = encoding
        msg.step = other.shape[1] * (other.shape[2] if other.ndim == 3 else 1)
        msg.data = other.tobytes()
        back = ic.image_msg_to_bgr(msg)
        expected = bgr if encoding != 'mono8' else cv2.cvtColor(other, cv2.COLOR_GRAY2BGR)
        assert np.array_equal(back, expected)


def test_image_with_row_padding_and_bad_inputs():
    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = ic.bgr_to_image_msg(bgr, Time(), 'cam')
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = bgr.reshape(2, 9)
    msg.step = 12
    msg.data = padded.tobytes()
    assert np.array_equal(ic.image_msg_to_bgr(msg), bgr)
    msg.data = padded.tobytes()[:-5]
    with pytest.raises(ValueError, match='too short'):
        ic.image_msg_to_bgr(msg)
    msg.encoding = '16UC1'
    with pytest.raises(ValueError, match='unsupported image encoding'):
        ic.image_msg_to_bgr(msg)
    with pytest.raises(ValueError):
        ic.bgr_to_image_msg(np.zeros((2, 2), np.uint8), Time(), 'cam')


def test_jpeg_round_trip_is_close():
    y, x = np.mgrid[0:64, 0:96]
    bgr = np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)
    msg = ic.bgr_to_compressed_msg(bgr, Time(), 'cam', quality=95)
    assert msg.format == 'jpeg'
    back = ic.compressed_msg_to_bgr(msg)
    assert np.abs(back.astype(int) - bgr).mean() < 3
    msg.data = b'not a jpeg'
    with pytest.raises(ValueError, match='could not decode'):
        ic.compressed_msg_to_bgr(msg)


def test_rate_meter_and_rolling_stats():
    meter = RateMeter(window=50)
    for i in range(31):
        meter.tick(now=i / 30.0)
    assert meter.rate_hz(now=1.0) == pytest.approx(30.0)
    assert meter.rate_hz(now=10.0) == 0.0  # stale
    assert np.allclose(meter.intervals(), 1 / 30.0)
    stats = RollingStats(window=3)
    for v in [100, 1, 2, 3]:
        stats.add(v)
    assert stats.percentile(50) == 2.0 and stats.mean() == 2.0


def test_large_frame_profile_is_used_unless_the_user_chose(tmp_path):
    from rover_common.fastdds import FASTDDS_PROFILE, use_large_frame_transport
    assert os.path.isfile(FASTDDS_PROFILE)
    env = {}
    assert use_large_frame_transport(env) == FASTDDS_PROFILE
    assert env['FASTRTPS_DEFAULT_PROFILES_FILE'] == FASTDDS_PROFILE
    own = {'FASTDDS_DEFAULT_PROFILES_FILE': str(tmp_path / 'mine.xml')}
    assert use_large_frame_transport(own) is None and 'FASTRTPS_DEFAULT_PROFILES_FILE' not in own
    assert use_large_frame_transport({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}) is None
    assert use_large_frame_transport({'ROVER_FASTDDS_PROFILE': '0'}) is None


def test_diagnostic_status_names_carry_the_namespace(monkeypatch):
    """Two cars on one network publish to the same /diagnostics: their names must differ."""
    import rclpy

    from rover_common.diagnostics import status_name
    from rover_common.ros_env import localhost_env
    for key, value in localhost_env().items():
        if key.startswith('ROS_'):
            monkeypatch.setenv(key, value)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        names = []
        for namespace in ('/car1', '/fleet/car2', '/'):
            node = rclpy.create_node('camera', namespace=namespace, context=context)
            names.append(status_name(node, 'camera'))
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert names == ['car1/camera: camera', 'fleet/car2/camera: camera', 'camera: camera']

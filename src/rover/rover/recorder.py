"""Record topics to a rosbag2 (MCAP) with `rosbags`, where `ros2 bag` is absent.

Messages arrive already serialized (raw subscriptions) and are written as they
are, so the bag is byte-for-byte what `ros2 bag record` would store and
`rover-quantize` can calibrate from it.
"""
import threading
from pathlib import Path

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from rover.graph import RECORD_TOPICS

_TWIST = ('geometry_msgs/msg/TwistStamped', 'geometry_msgs.msg', 'TwistStamped')
_TYPES = {
    'camera/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 'sensor_msgs.msg', 'CompressedImage'),
    'camera/camera_info': ('sensor_msgs/msg/CameraInfo', 'sensor_msgs.msg', 'CameraInfo'),
    'rover/state': _TWIST, 'rover/cmd': _TWIST, 'teleop/cmd': _TWIST, 'policy/cmd': _TWIST,
    'rover/cmd_source': ('std_msgs/msg/String', 'std_msgs.msg', 'String'),
    'rover/mode': ('std_msgs/msg/String', 'std_msgs.msg', 'String'),
    'rover/estop': ('std_msgs/msg/Bool', 'std_msgs.msg', 'Bool'),
    'rover/episode': ('std_msgs/msg/Bool', 'std_msgs.msg', 'Bool'),
    '/diagnostics': ('diagnostic_msgs/msg/DiagnosticArray', 'diagnostic_msgs.msg', 'DiagnosticArray'),
}
# Published once per change with transient local durability: subscribe the same way
# (as `ros2 bag record` adapts to its publishers) so a recording started later has the value.
_LATCHED_TOPICS = ('rover/mode', 'rover/estop', 'rover/episode')
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class BagRecorder:
    def __init__(self, node, path, topics=RECORD_TOPICS):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'bag folder already exists: {self.path}')
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._lock = threading.Lock()
        self._node = node
        self.counts = {}
        for topic in topics:
            msgtype, module, cls = _TYPES[topic]
            ros_type = getattr(__import__(module, fromlist=[cls]), cls)
            connection = self._writer.add_connection(
                node.resolve_topic_name(topic), msgtype, typestore=self._typestore)
            qos = (qos_profile_sensor_data if 'camera' in topic else
                   _LATCHED if topic in _LATCHED_TOPICS else 50)
            node.create_subscription(ros_type, topic, self._writer_for(connection, topic), qos, raw=True)
            self.counts[topic] = 0

    def _writer_for(self, connection, topic):
        def write(raw: bytes):
            stamp = self._node.get_clock().now().nanoseconds
            with self._lock:
                if self._writer is not None:
                    self._writer.write(connection, stamp, raw)
                    self.counts[topic] += 1
        return write

    def close(self):
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

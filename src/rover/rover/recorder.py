"""Record topics to a rosbag2 (MCAP) with `rosbags`, where `ros2 bag` is absent.

Messages arrive already serialized (raw subscriptions) and are written as they
are, so the bag is byte-for-byte what `ros2 bag record` would store and
`rover-quantize` can calibrate from it.
"""
import threading
from pathlib import Path

from rclpy.qos import qos_profile_sensor_data
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from rover.graph import RECORD_TOPICS

_TYPES = {
    'camera/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 'sensor_msgs.msg', 'CompressedImage'),
    'rover/state': ('geometry_msgs/msg/TwistStamped', 'geometry_msgs.msg', 'TwistStamped'),
    'rover/cmd': ('geometry_msgs/msg/TwistStamped', 'geometry_msgs.msg', 'TwistStamped'),
    '/diagnostics': ('diagnostic_msgs/msg/DiagnosticArray', 'diagnostic_msgs.msg', 'DiagnosticArray'),
}


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
            qos = qos_profile_sensor_data if 'camera' in topic else 50
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

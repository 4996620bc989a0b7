"""The simulated rover closes the loop through the real bridge over a pty:
a pure-pursuit driver in this process publishes rover/cmd from sim/pose, the
bridge sends COMMANDs to the virtual Arduino, the car moves, the camera sees it."""
import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from rover.graph import rover_nodes
from rover_common.process import NodeProcess, wait_for
from rover_sim.expert import PurePursuit
from rover_sim.track import StadiumTrack


def test_expert_drives_the_simulated_rover_through_the_bridge(ros_domain, tmp_path):
    import rclpy
    _, env = ros_domain
    link = str(tmp_path / 'arduino')
    specs = {s.name: s for s in rover_nodes(sim=True)}
    sim = NodeProcess('rover_sim.sim_node', 'sim', params={'serial_link': link},
                      params_files=specs['sim'].params_files, env=env)
    bridge = NodeProcess('rover_bridge.bridge_node', 'bridge',
                         params={'port': link, 'estop_state_file': str(tmp_path / 'bridge.estop')},
                         params_files=specs['bridge'].params_files, env=env)
    node = rclpy.create_node('expert_driver')
    track, poses, frames, states, diags = StadiumTrack(), [], [], [], {}
    expert = PurePursuit(track)
    cmd_pub = node.create_publisher(TwistStamped, 'rover/cmd', 10)
    node.create_subscription(PoseStamped, 'sim/pose', poses.append, 10)
    node.create_subscription(Image, 'camera/image_raw', frames.append, qos_profile_sensor_data)
    node.create_subscription(TwistStamped, 'rover/state', states.append, 10)
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: diags.update({s.name: {kv.key: kv.value for kv in s.values}
                                                     for s in m.status}), 10)

    def drive():
        if poses:
            p = poses[-1].pose
            yaw = 2 * math.atan2(p.orientation.z, p.orientation.w)
            steering, throttle = expert.command(p.position.x, p.position.y, yaw)
            msg = TwistStamped()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.twist.angular.z, msg.twist.linear.x = steering, throttle
            cmd_pub.publish(msg)

    node.create_timer(1 / 30, drive)
    spin = lambda: rclpy.spin_once(node, timeout_sec=0.02)
    try:
        sim.start()
        bridge.start()
        assert wait_for(lambda: any(d.get('link') == 'up' for n, d in diags.items() if 'bridge' in n),
                        20, spin=spin), bridge.output() + sim.output()
        start = time.monotonic()
        while time.monotonic() - start < 12:
            spin()
        offsets = [track.distance_from_centre(p.pose.position.x, p.pose.position.y) for p in poses]
        travelled = track.progress(poses[-1].pose.position.x, poses[-1].pose.position.y)
        assert travelled > 5.0, (travelled, sim.output())        # ~0.9 m/s for ~10 s
        assert max(abs(o) for o in offsets) < track.width / 2, 'left the track'
        # the car steered: rover/state reports what the Arduino applied, turning included
        steering = np.array([s.twist.angular.z for s in states])
        throttle = np.array([s.twist.linear.x for s in states])
        assert np.median(throttle[-30:]) > 0.2
        assert steering.max() > 0.1 or travelled < track.straight_length
        # frames came at ~30 Hz with the view of the moving car
        assert len(frames) > 200
        first = np.frombuffer(frames[0].data, np.uint8)
        assert not np.array_equal(first, np.frombuffer(frames[-1].data, np.uint8))
        assert sim.alive() and bridge.alive()
    finally:
        bridge.stop()
        sim.stop()
        node.destroy_node()

"""ROS 2 node `expert_driver`: the simulated human. It drives from `sim/pose`
with the pure-pursuit expert and publishes what a teleop tool would on
`teleop/cmd` (TwistStamped, normalized steering/throttle):

- `style: joy`: a steady stream at `rate_hz`, like teleop_twist_joy on joy's autorepeat;
- `style: keyboard`: like teleop_twist_keyboard, one message per key event at the
  terminal's auto-repeat rate, the value quantized to key steps.

`axes: throttle` leaves steering at 0, the human half of assisted mode.
Used by the demo (`DEMO_MODE=assisted`), the tests and sim recordings.
"""
import math
import sys

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node

from rover_common.node_main import run
from rover_common.params import declare
from rover_sim.expert import PurePursuit
from rover_sim.track import StadiumTrack

STYLES = ('joy', 'keyboard')
AXES = ('both', 'throttle')
KEY_STEP = 0.1   # teleop_twist_keyboard changes speeds in steps; steps of 0.1 stand in for that


class ExpertDriver(Node):
    def __init__(self):
        super().__init__('expert_driver')
        self.style = declare(self, 'style', 'joy', 'How the stand-in publishes.', choices=STYLES)
        self.axes = declare(self, 'axes', 'both', 'Which axes the human gives.', choices=AXES)
        rate = declare(self, 'rate_hz', 20.0, 'Messages per second (joy autorepeat or key repeat).',
                       min_value=1.0, max_value=100.0)
        throttle = declare(self, 'throttle', 0.3, 'The expert\'s throttle (normalized).',
                           min_value=-1.0, max_value=1.0)
        self.expert = PurePursuit(StadiumTrack(), throttle=throttle)
        self.pose = None
        self.pub = self.create_publisher(TwistStamped, 'teleop/cmd', 10)
        self.create_subscription(PoseStamped, 'sim/pose', self._on_pose, 10)
        self.create_timer(1.0 / rate, self._publish)

    def _on_pose(self, msg):
        self.pose = msg.pose

    def _publish(self):
        if self.pose is None:
            return
        p = self.pose
        yaw = 2 * math.atan2(p.orientation.z, p.orientation.w)
        steering, throttle = self.expert.command(p.position.x, p.position.y, yaw)
        if self.axes == 'throttle':
            steering = 0.0
        if self.style == 'keyboard':
            steering = round(steering / KEY_STEP) * KEY_STEP
            throttle = round(throttle / KEY_STEP) * KEY_STEP
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = 'base_link'
        msg.twist.angular.z = float(steering)
        msg.twist.linear.x = float(throttle)
        self.pub.publish(msg)


def main(args=None) -> int:
    return run(ExpertDriver, args=args)


if __name__ == '__main__':
    sys.exit(main())

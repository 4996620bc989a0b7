"""ROS 2 node `arbiter`: teleop/cmd + policy/cmd -> rover/cmd, by driving mode.

A thin shell over `arbiter.Arbiter` (the rules, tested without ROS):

- subscribes `teleop/cmd` (the human: teleop_twist_keyboard/teleop_twist_joy with
  stamped output, any TwistStamped publisher), `policy/cmd`, `rover/estop`
  (the bridge's latched state) and `joy` (mode, e-stop and episode buttons);
- publishes `rover/cmd` (what the bridge applies) whenever an input that
  drives arrives, and at least every control period; `rover/cmd_source`
  (who produced each applied command), `rover/mode` and `rover/episode`
  (both transient local, so rqt and a bag started later see the value);
- services `rover/mode/manual|assisted|autonomous` (std_srvs/Trigger),
  `rover/record_episode` (std_srvs/SetBool); the `mode` parameter does the same.

Steering (`angular.z`) and throttle (`linear.x`) are normalized to [-1, 1] on
every command topic: they are not m/s or rad/s.
"""
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from rover_arbiter.arbiter import ESTOP, MODES, NEUTRAL, TIMER, Arbiter, ButtonEdges, PublishPacer
from rover_common import diagnostics
from rover_common.node_main import run
from rover_common.params import declare

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
BUTTONS = ('manual', 'assisted', 'autonomous', 'estop', 'episode')


class ArbiterNode(Node):
    def __init__(self):
        super().__init__('arbiter')
        mode = declare(self, 'mode', 'manual', 'Driving mode: manual (the human drives), assisted '
                       '(the policy steers, the human throttles), autonomous (the policy drives; '
                       'a fresh human command takes over).', choices=MODES)
        human_timeout = declare(self, 'human_timeout', 0.5, 'Seconds a teleop/cmd message is used; '
                                'then the human counts as absent (manual: neutral).',
                                min_value=0.05, max_value=5.0)
        policy_timeout = declare(self, 'policy_timeout', 0.25, 'Seconds a policy/cmd message is used; '
                                 'then neutral (never an older command).', min_value=0.05, max_value=5.0)
        deadband = declare(self, 'takeover_deadband', 0.05, 'In assisted mode, human steering beyond '
                           'this takes the steering (and the car) back from the policy.',
                           min_value=0.0, max_value=1.0)
        rate_hz = declare(self, 'rate_hz', 30.0, 'rover/cmd is published at least this often '
                          '(and on every driving input).', min_value=1.0, max_value=200.0, read_only=True)
        self._buttons = {name: declare(self, f'joy_button_{name}', -1,
                                       f'Gamepad button (sensor_msgs/Joy index) for {name}; -1: none.',
                                       min_value=-1, max_value=63, read_only=True) for name in BUTTONS}
        self.arbiter = Arbiter(mode, human_timeout, policy_timeout, deadband)
        self.pacer = PublishPacer(1.0 / rate_hz)
        self._episode = False
        self._episodes = 0
        self._edges = ButtonEdges()
        self._last_diag = (time.monotonic(), dict(self.pacer.counts))

        self.cmd_pub = self.create_publisher(TwistStamped, 'rover/cmd', 10)
        self.source_pub = self.create_publisher(String, 'rover/cmd_source', 10)
        self.mode_pub = self.create_publisher(String, 'rover/mode', LATCHED)
        self.episode_pub = self.create_publisher(Bool, 'rover/episode', LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(TwistStamped, 'teleop/cmd', self._on_human, 10)
        self.create_subscription(TwistStamped, 'policy/cmd', self._on_policy, 10)
        self.create_subscription(Bool, 'rover/estop', self._on_estop_state, LATCHED)
        self.create_subscription(Joy, 'joy', self._on_joy, 10)
        for name in MODES:
            self.create_service(Trigger, f'rover/mode/{name}',
                                lambda request, response, name=name: self._on_mode_service(name, response))
        self.create_service(SetBool, 'rover/record_episode', self._on_episode_service)
        self.estop_client = self.create_client(SetBool, 'rover/estop')
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(self.pacer.period / 2, lambda: self._publish_decision(trigger=TIMER))
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_mode()
        self._publish_episode()
        self.get_logger().info(f'arbiter: mode {mode}, human timeout {human_timeout:g} s, '
                               f'policy timeout {policy_timeout:g} s')

    # ---- inputs ----
    def _now(self) -> float:
        return time.monotonic()

    def _on_human(self, msg: TwistStamped) -> None:
        self.arbiter.human(msg.twist.angular.z, msg.twist.linear.x, self._now())
        self._publish_decision(trigger='human')

    def _on_policy(self, msg: TwistStamped) -> None:
        self.arbiter.policy(msg.twist.angular.z, msg.twist.linear.x, self._now())
        self._publish_decision(trigger='policy')

    def _on_estop_state(self, msg: Bool) -> None:
        engaged = bool(msg.data)
        if engaged == self.arbiter.estop:
            return
        was_mode = self.arbiter.mode
        self.arbiter.set_estop(engaged)
        if engaged:
            self.get_logger().warning(f'e-stop engaged: mode {was_mode} -> manual, held commands dropped')
            self._set_episode(False)
        else:
            self.get_logger().info('e-stop released: manual mode, neutral until a new command arrives')
        self._publish_mode()
        self._publish_decision(trigger=ESTOP)

    def _on_joy(self, msg: Joy) -> None:
        pressed = self._edges.pressed(msg.buttons)
        by_index = {index: name for name, index in self._buttons.items() if index >= 0}
        for index in sorted(pressed):
            name = by_index.get(index)
            if name == 'estop':
                self._engage_estop_from_gamepad()
            elif name == 'episode':
                self._set_episode(not self._episode)
            elif name in MODES:
                self._request_mode(name, 'gamepad')

    def _engage_estop_from_gamepad(self) -> None:
        # Neutral here at once; the bridge latches it (and survives restarts).
        self.arbiter.set_estop(True)
        self._set_episode(False)
        self._publish_mode()
        self._publish_decision(trigger=ESTOP)
        self.get_logger().warning('E-STOP from the gamepad')
        if self.estop_client.service_is_ready():
            self.estop_client.call_async(SetBool.Request(data=True))
        else:
            self.get_logger().error('bridge rover/estop service not available: only the arbiter holds neutral')

    # ---- mode and episode switches ----
    def _request_mode(self, mode: str, via: str) -> str:
        """'' when switched, else the reason it was refused."""
        result = self.set_parameters([Parameter('mode', Parameter.Type.STRING, mode)])[0]
        if result.successful:
            self.get_logger().info(f'mode {mode} (via {via})')
            return ''
        self.get_logger().warning(f'mode {mode} refused (via {via}): {result.reason}')
        return result.reason

    def _on_mode_service(self, mode, response):
        reason = self._request_mode(mode, 'service')
        response.success = not reason
        response.message = reason or f'mode {mode}'
        return response

    def _validate_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'mode':
                if param.value not in MODES:
                    return SetParametersResult(successful=False,
                                               reason=f'mode must be one of {", ".join(MODES)}')
                if self.arbiter.estop and param.value != 'manual':
                    return SetParametersResult(successful=False, reason='e-stop engaged: release it first')
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        for param in params:
            if param.name == 'mode':
                self.arbiter.set_mode(param.value)
                self._publish_mode()
            elif param.name == 'human_timeout':
                self.arbiter.human_timeout = float(param.value)
            elif param.name == 'policy_timeout':
                self.arbiter.policy_timeout = float(param.value)
            elif param.name == 'takeover_deadband':
                self.arbiter.takeover_deadband = float(param.value)

    def _on_episode_service(self, request, response):
        self._set_episode(bool(request.data))
        response.success = True
        response.message = f'episode {"recording" if self._episode else "ended"} ({self._episodes} started)'
        return response

    def _set_episode(self, active: bool) -> None:
        if active == self._episode:
            return
        self._episode = active
        if active:
            self._episodes += 1
        self.get_logger().info(f'episode {self._episodes} {"starts" if active else "ends"}')
        self._publish_episode()

    # ---- outputs ----
    def _publish_mode(self) -> None:
        self.mode_pub.publish(String(data=self.arbiter.mode))
        # the parameter follows e-stop drops, so `ros2 param get` tells the truth
        if self.get_parameter('mode').value != self.arbiter.mode:
            self.set_parameters([Parameter('mode', Parameter.Type.STRING, self.arbiter.mode)])

    def _publish_episode(self) -> None:
        self.episode_pub.publish(Bool(data=self._episode))

    def _publish_decision(self, trigger: str) -> None:
        now = self._now()
        decision = self.arbiter.decide(now)
        if not self.pacer.should_publish(trigger, decision.source, now):
            return
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.twist.angular.z = float(decision.steering)
        msg.twist.linear.x = float(decision.throttle)
        self.cmd_pub.publish(msg)
        source = decision.source if decision.source != NEUTRAL else f'neutral:{decision.reason}'
        self.source_pub.publish(String(data=source))
        self.pacer.published(trigger, decision.source, now)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        human_age, policy_age = self.arbiter.ages(now)
        counts = dict(self.pacer.counts)
        then, before = self._last_diag
        elapsed = max(now - then, 1e-6)
        self._last_diag = (now, counts)
        values = {
            'mode': self.arbiter.mode, 'source': self.pacer.last_source or '-', 'estop': self.arbiter.estop,
            'human_age_s': human_age, 'policy_age_s': policy_age,
            'human_timeout_s': self.arbiter.human_timeout, 'policy_timeout_s': self.arbiter.policy_timeout,
            'takeovers': self.arbiter.takeovers, 'episode': self._episode, 'episodes': self._episodes,
            **{f'{source}_rate_hz': (counts[source] - before.get(source, 0)) / elapsed for source in counts},
        }
        if self.arbiter.estop:
            level, message = diagnostics.WARN, 'e-stop latched: neutral'
        else:
            level, message = diagnostics.OK, f'{self.arbiter.mode}: {self.pacer.last_source or "-"}'
        self.diag_pub.publish(diagnostics.array(
            self, diagnostics.status(f'{self.get_fully_qualified_name()}: arbiter', level, message, values)))


def main(args=None) -> int:
    return run(ArbiterNode, args=args)


if __name__ == '__main__':
    sys.exit(main())

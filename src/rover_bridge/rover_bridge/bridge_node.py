"""ROS 2 node `bridge`: rover/cmd -> Arduino COMMANDs at a fixed rate; telemetry -> rover/state.

A thin shell: `command.CommandHolder` decides what to send (hold timeout, NaN,
clamping, e-stop, trims), `link.SerialLink` owns the serial port on its own thread
(handshake, reconnects, fixed-rate sending), and this node wires them to topics,
the `rover/estop` service and topic, parameters and /diagnostics.

The e-stop latch lives in `estop_state_file` (command.EstopFile), so a respawned
bridge starts latched; one that cannot read or write that file starts latched
and says why. Engaging or releasing drops the held command, and after a release
rover/cmd messages stamped before it are ignored: a release never resumes motion
by itself.
"""
import os
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from rover_bridge import protocol as p
from rover_bridge.command import STEERING_TRIM_BAND, THROTTLE_TRIM_BAND, CommandHolder, EstopFile, Shaping
from rover_bridge.link import LinkConfig, LinkState, SerialLink
from rover_common import diagnostics
from rover_common.node_main import ConfigError, run
from rover_common.params import declare

SHAPING_PARAMS = ('steering_trim', 'throttle_trim', 'max_steering', 'max_throttle',
                  'invert_steering', 'invert_throttle')
# rover/estop: the newest state for anyone who subscribes later (policy, arbiter, rqt).
ESTOP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def default_estop_state_file(fully_qualified_name: str) -> str:
    """$ROS_HOME/rover/<namespace>/<node>.estop (ROS_HOME defaults to ~/.ros)."""
    ros_home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(ros_home, 'rover', fully_qualified_name.strip('/') + '.estop')


class BridgeNode(Node):
    def __init__(self):
        super().__init__('bridge')
        port = declare(self, 'port', '/dev/ttyACM0',
                       'Serial device of the Arduino. Prefer the stable /dev/serial/by-id/usb-Arduino... '
                       'path over /dev/ttyACM0, which can change when the board re-enumerates.',
                       read_only=True)
        baud = declare(self, 'baud', 115200, 'Serial baud rate; the firmware uses 115200.',
                       min_value=9600, max_value=2000000, read_only=True)
        rate_hz = declare(self, 'rate_hz', 30.0, 'COMMAND frames sent per second, whatever rover/cmd does.',
                          min_value=1.0, max_value=200.0, read_only=True)
        cmd_timeout = declare(self, 'cmd_timeout', 0.25,
                              'Seconds the newest rover/cmd is used; after that the bridge sends neutral.',
                              min_value=0.01, max_value=5.0)
        declare(self, 'steering_trim', 0.0, 'Added to steering before limits: the value that drives straight. '
                'Neutral steers here, so it is bounded to a small trim band.',
                min_value=-STEERING_TRIM_BAND, max_value=STEERING_TRIM_BAND)
        declare(self, 'throttle_trim', 0.0, 'Added to a non-zero commanded throttle; never to neutral or to a '
                'commanded 0 (stop).', min_value=-THROTTLE_TRIM_BAND, max_value=THROTTLE_TRIM_BAND)
        declare(self, 'max_steering', 1.0, 'Steering limit (normalized) after trim.', min_value=0.0, max_value=1.0)
        declare(self, 'max_throttle', 1.0, 'Throttle limit (normalized) after trim, both directions.',
                min_value=0.0, max_value=1.0)
        declare(self, 'invert_steering', False, 'Flip the steering sign (servo mounted the other way).')
        declare(self, 'invert_throttle', False, 'Flip the throttle sign (ESC or motor wired the other way).')
        hello_timeout = declare(self, 'hello_timeout', 5.0,
                                'Seconds to wait for the firmware HELLO after opening the port.',
                                min_value=0.5, max_value=60.0, read_only=True)
        hello_request_after = declare(self, 'hello_request_after', 1.5,
                                      'Seconds of silence after opening before asking for HELLO '
                                      '(lets the bootloader of a board that reset on open finish).',
                                      min_value=0.0, max_value=30.0, read_only=True)
        link_timeout = declare(self, 'link_timeout', 1.0,
                               'Seconds without any frame from the Arduino before reconnecting.',
                               min_value=0.1, max_value=10.0, read_only=True)
        backoff_min = declare(self, 'reconnect_backoff_min', 0.1, 'First delay between reopen attempts (s).',
                              min_value=0.01, max_value=10.0, read_only=True)
        backoff_max = declare(self, 'reconnect_backoff_max', 1.0, 'Longest delay between reopen attempts (s).',
                              min_value=0.01, max_value=60.0, read_only=True)
        ping_period = declare(self, 'ping_period', 0.5, 'Seconds between round-trip PINGs.',
                              min_value=0.01, max_value=10.0, read_only=True)
        diagnostics_period = declare(self, 'diagnostics_period', 1.0, 'Seconds between /diagnostics messages.',
                                     min_value=0.1, max_value=10.0, read_only=True)
        self.frame_id = declare(self, 'frame_id', 'base_link', 'frame_id of rover/state.', read_only=True)
        estop_path = declare(self, 'estop_state_file', default_estop_state_file(self.get_fully_qualified_name()),
                             'Where the e-stop latch is kept across restarts (written atomically on every '
                             'change). If it cannot be read or written the bridge starts latched.',
                             read_only=True)
        self.error_rate_warn = declare(self, 'error_rate_warn', 1.0,
                                       'Received CRC + frame + range errors per second (over the last '
                                       'diagnostics period) above which the link is WARN.',
                                       min_value=0.0, max_value=1000.0, read_only=True)
        self.error_rate_error = declare(self, 'error_rate_error', 20.0,
                                        'Received errors per second above which the link is ERROR.',
                                        min_value=0.0, max_value=1000.0, read_only=True)
        if backoff_max < backoff_min:
            raise ConfigError(f'reconnect_backoff_max ({backoff_max}) < reconnect_backoff_min ({backoff_min})')
        if not estop_path:
            raise ConfigError('estop_state_file is empty: the e-stop latch needs a file to survive restarts')
        self.fq_name = self.get_fully_qualified_name()  # diagnostics: two cars must not share status names

        self.estop_file = EstopFile(estop_path)
        engaged = self._restore_estop()
        self._estop_changed_ns = 0  # node-clock time of the last engage/release
        self.dropped_before_release = 0
        self.holder = CommandHolder(cmd_timeout, self._shaping_from({}), estop=engaged)
        self._last_diag = (time.monotonic(), 0)  # (time, rover/cmd messages received) at the last diagnostics
        self._last_errors = None  # (time, rx errors) at the last diagnostics
        self.state_pub = self.create_publisher(TwistStamped, 'rover/state', 10)
        self.estop_pub = self.create_publisher(Bool, 'rover/estop', ESTOP_QOS)
        self.estop_pub.publish(Bool(data=engaged))
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(TwistStamped, 'rover/cmd', self._on_cmd, 10,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(SetBool, 'rover/estop', self._on_estop,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(diagnostics_period, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self.link = SerialLink(
            LinkConfig(port=port, baud=baud, rate_hz=rate_hz, hello_timeout=hello_timeout,
                       hello_request_after=hello_request_after, link_timeout=link_timeout,
                       backoff_min=backoff_min, backoff_max=backoff_max, ping_period=ping_period),
            command_source=self.holder.current,
            neutral_source=lambda: self.holder.shaping.neutral_wire(),
            on_telemetry=self._on_telemetry,
            on_log=self._log,
            estop=engaged)
        self.link.start()
        self.get_logger().info(f'bridge: {port} at {baud} baud, COMMAND at {rate_hz:g} Hz, '
                               f'cmd_timeout {cmd_timeout:g} s')

    # ---- e-stop latch ----
    def _restore_estop(self) -> bool:
        """The latch from the state file; latched when the file cannot be read or written."""
        path = self.estop_file.path
        state = self.estop_file.load()
        self.estop_problem = state.problem
        if not state.problem:
            try:
                self.estop_file.save(state.engaged, state.reason)  # proves the file can be written
            except OSError as exc:
                self.estop_problem = f'cannot write the e-stop state file {path}: {exc}'
        if self.estop_problem:
            self.get_logger().error(f'{self.estop_problem}: starting with the E-STOP LATCHED (neutral); fix the '
                                    f'file or its directory, then release via the rover/estop service')
            return True
        if state.engaged:
            self.get_logger().warning(f'E-STOP latched since before this start ({path}: {state.reason or "-"}): '
                                      f'neutral until released via the rover/estop service')
        return state.engaged

    def _on_estop(self, request, response):
        engaged = bool(request.data)
        reason = 'engaged' if engaged else 'released'
        try:
            self.estop_file.save(engaged, f'{reason} via the rover/estop service')
            self.estop_problem = ''
        except OSError as exc:
            self.estop_problem = f'cannot write the e-stop state file {self.estop_file.path}: {exc}'
            if not engaged:  # a release we cannot keep would be undone by a restart: refuse it
                self.get_logger().error(f'e-stop release refused: {self.estop_problem}')
                response.success = False
                response.message = f'release refused, e-stop stays latched: {self.estop_problem}'
                return response
            self.get_logger().error(f'{self.estop_problem}: latched for this run only')
        self._estop_changed_ns = self.get_clock().now().nanoseconds
        self.holder.set_estop(engaged)
        self.link.set_estop(engaged)
        self.estop_pub.publish(Bool(data=engaged))
        if engaged:
            self.get_logger().warning('E-STOP engaged via rover/estop: neutral latched until released')
        else:
            self.get_logger().info('e-stop released via rover/estop: neutral until a new rover/cmd arrives')
        response.success = True
        response.message = ('e-stop engaged: neutral latched' if engaged
                            else 'e-stop released: neutral until a new rover/cmd arrives')
        if self.estop_problem:
            response.message += f' (not persisted: {self.estop_problem})'
        return response

    # ---- parameters ----
    def _shaping_from(self, overrides: dict) -> Shaping:
        values = {name: overrides.get(name, self.get_parameter(name).value) for name in SHAPING_PARAMS}
        return Shaping(**values)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate only: nothing is applied unless every check (also rover_common.params') passes."""
        changes = {prm.name: prm.value for prm in params}
        try:
            if set(changes) & set(SHAPING_PARAMS):
                self._shaping_from(changes)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        changes = {prm.name: prm.value for prm in params}
        shaping = self._shaping_from({}) if set(changes) & set(SHAPING_PARAMS) else None
        timeout = changes.get('cmd_timeout')
        self.holder.configure(timeout=None if timeout is None else float(timeout), shaping=shaping)

    # ---- callbacks ----
    def _log(self, level: str, text: str) -> None:
        if not self.context.ok():  # shutting down after Ctrl-C: rosout is gone
            print(f'[{level}] [bridge]: {text}', file=sys.stderr, flush=True)
            return
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == 'error':
            self.get_logger().error(text)
        elif level == 'warn':
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def _on_cmd(self, msg: TwistStamped) -> None:
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        if stamp and stamp < self._estop_changed_ns:
            # Sent before the last engage/release (still in flight): it must not resume motion.
            self.dropped_before_release += 1
            return
        problem = self.holder.submit(msg.twist.angular.z, msg.twist.linear.x)
        self.link.command_updated()
        if problem == 'nonfinite':
            self.get_logger().warning('rover/cmd with NaN/inf: sending neutral', throttle_duration_sec=5.0)

    def _on_telemetry(self, telemetry: p.Telemetry, _receive_time: float) -> None:
        # Runs on the link thread, right after the frame arrived: the stamp is the receive time.
        steering, throttle = self.holder.shaping.from_wire(p.from_fixed(telemetry.steering),
                                                           p.from_fixed(telemetry.throttle))
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        msg.twist.angular.z = steering
        msg.twist.linear.x = throttle
        self.state_pub.publish(msg)

    # ---- diagnostics ----
    def _error_rate(self, s: dict, now: float) -> float:
        """Received CRC + frame + range errors per second since the last diagnostics."""
        errors = s['rx_crc_errors'] + s['rx_frame_errors'] + s['rx_range_errors']
        last, self._last_errors = self._last_errors, (now, errors)
        if last is None:
            return 0.0
        return (errors - last[1]) / max(now - last[0], 1e-6)

    def _publish_diagnostics(self) -> None:
        s = self.link.stats()
        t = s['telemetry']
        up = s['state'] == LinkState.UP.value
        mode = p.Mode(t.mode).name if (up and t is not None and t.mode in p.Mode._value2member_map_) else '-'
        error_rate = self._error_rate(s, time.monotonic())
        errors_text = (f'{error_rate:.0f} received errors/s (CRC {s["rx_crc_errors"]}, frame '
                       f'{s["rx_frame_errors"]}, range {s["rx_range_errors"]} in total)')
        if not up:
            level = diagnostics.ERROR
            message = f'link {s["state"]}: {s["last_error"] or "connecting"}'
        elif error_rate > self.error_rate_error:
            level, message = diagnostics.ERROR, f'link up, {errors_text}: cable, ground or baud rate?'
        elif s['telemetry_age'] > 0.5:
            level, message = diagnostics.WARN, f'link up, telemetry {s["telemetry_age"]:.1f} s old'
        elif error_rate > self.error_rate_warn:
            level, message = diagnostics.WARN, f'link up, {errors_text}'
        elif mode in ('FAILSAFE', 'ESTOP', 'ARMING'):
            level, message = diagnostics.WARN, f'link up, Arduino in {mode}'
        else:
            level, message = diagnostics.OK, f'link up, Arduino in {mode}'
        link_values = {
            'link': s['state'], 'state': s['state'], 'port': s['port'],
            'firmware_protocol': s['firmware'], 'mode': mode,
            'flags': t.flags if t else '-', 'rtt_p50_ms': s['rtt_p50_ms'], 'rtt_p99_ms': s['rtt_p99_ms'],
            'command_rate_hz': s['command_rate_hz'], 'send_interval_p99_ms': s['send_interval_p99_ms'],
            'send_interval_max_ms': s['send_interval_max_ms'], 'telemetry_rate_hz': s['telemetry_rate_hz'],
            'rx_crc_errors': s['rx_crc_errors'], 'rx_frame_errors': s['rx_frame_errors'],
            'rx_range_errors': s['rx_range_errors'], 'rx_error_rate_per_s': error_rate,
            'unexpected_frames': s['unexpected_frames'], 'rx_seq_gaps': s['rx_seq_gaps'],
            'arduino_crc_errors': t.crc_errors if t else '-', 'arduino_frame_errors': t.frame_errors if t else '-',
            'watchdog_trips': t.watchdog_trips if t else '-',
            'watchdog_tripped': bool(t.flags & p.Flag.WATCHDOG) if t else '-',
            'applied_steering_us': t.steering_us if t else '-', 'applied_throttle_us': t.throttle_us if t else '-',
            'reconnects': s['reconnects'], 'arduino_resets': s['arduino_resets'],
            'link_losses': s['link_losses'], 'open_failures': s['open_failures'],
            'estop': s['estop'], 'last_error': s['last_error'],
        }
        counts = self.holder.snapshot()
        now = time.monotonic()
        received = counts.get('received', 0)
        cmd_in_rate = (received - self._last_diag[1]) / max(now - self._last_diag[0], 1e-6)
        self._last_diag = (now, received)
        age = self.holder.age()
        estop = self.holder.estop
        if self.estop_problem:
            cmd_level, cmd_message = diagnostics.ERROR, f'e-stop latch not persisted: {self.estop_problem}'
        elif estop:
            cmd_level, cmd_message = diagnostics.WARN, 'e-stop latched: sending neutral'
        elif age > self.holder.timeout:
            cmd_level, cmd_message = diagnostics.WARN, 'no fresh rover/cmd: sending neutral'
        else:
            cmd_level, cmd_message = diagnostics.OK, 'forwarding rover/cmd'
        cmd_values = {
            'cmd_in_rate_hz': cmd_in_rate, 'cmd_age_s': age, 'cmd_timeout_s': self.holder.timeout,
            'received': counts.get('received', 0), 'nonfinite': counts.get('nonfinite', 0),
            'clamped': counts.get('clamped', 0), 'estop': estop,
            'estop_state_file': self.estop_file.path, 'dropped_sent_before_release': self.dropped_before_release,
            **{key: counts.get(key, 0) for key in
               ('sent_command', 'sent_stale', 'sent_none', 'sent_nonfinite', 'sent_estop')},
        }
        self.diag_pub.publish(diagnostics.array(
            self,
            diagnostics.status(f'{self.fq_name}: serial link', level, message, link_values, hardware_id=s['port']),
            diagnostics.status(f'{self.fq_name}: commands', cmd_level, cmd_message, cmd_values)))

    def close(self) -> None:
        """Called by node_main.run on SIGINT/SIGTERM while the context is still valid: the link
        thread sends neutral, closes the port and ends, so no callback runs after this."""
        self.link.stop()


def main(args=None) -> int:
    # The serial thread must get the GIL within ~1 ms even while the executor digests a
    # flood of rover/cmd; the default 5 ms hand-off let 30 Hz sag on busy cores.
    sys.setswitchinterval(0.001)
    return run(BridgeNode, args=args)


if __name__ == '__main__':
    sys.exit(main())

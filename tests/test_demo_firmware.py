"""ARDUINO=firmware: the simulated rover with the real firmware (.elf on simavr) behind its link.

The sim node starts rover_bridge.twin.simavr's runner instead of the Python twin and drives
its car with the pulse widths measured on pins 9/10; the unchanged bridge talks to the
emulated board over the pty. Closed loop here: a command publisher -> bridge -> firmware ->
pins -> car, then a frozen bridge, whose silence only the firmware's watchdog can answer.
"""
import math
import os
import signal
import time

import pytest

from rover.graph import ARDUINOS, rover_nodes
from rover_bridge.twin import simavr
from rover_bridge.twin.firmware_twin import FirmwareConfig, normalized_to_us
from rover_common.process import NodeProcess, wait_for

CONFIG = FirmwareConfig()


# ---- plain Python: the graph's switch and the width -> output mapping ----

def test_graph_passes_the_arduino_choice_to_the_sim_only():
    from rover_sim.run_link import ARDUINOS as SIM_ARDUINOS
    assert ARDUINOS == SIM_ARDUINOS  # one list of choices on both sides
    sim = {s.name: s for s in rover_nodes(sim=True, arduino='firmware')}['sim']
    assert sim.overrides['arduino'] == 'firmware'
    assert 'arduino' not in {s.name: s for s in rover_nodes(sim=True)}['sim'].overrides  # the node's default
    with pytest.raises(ValueError, match='not one of'):
        rover_nodes(sim=True, arduino='esp32')
    with pytest.raises(ValueError, match='needs the simulated rover'):
        rover_nodes(arduino='firmware')


def test_demo_takes_arduino_from_the_environment(monkeypatch):
    from rover import demo
    seen = {}
    monkeypatch.setattr(demo, 'prepare_model', lambda d: d)
    monkeypatch.setattr(demo, 'run_demo', lambda *a: seen.setdefault('args', a) and 0)
    monkeypatch.setenv('ARDUINO', 'firmware')
    demo.main(['--seconds', '1'])
    assert seen['args'][4] == 'firmware'
    seen.clear()
    demo.main(['--seconds', '1', '--arduino', 'twin'])  # the flag wins over the environment
    assert seen['args'][4] == 'twin'
    monkeypatch.undo()
    assert demo.run_demo(1.0, demo.DEFAULT_MODEL_DIR, arduino='esp32') == 2  # refused before any node starts


def test_measured_widths_map_back_to_the_commanded_outputs():
    for n in (0, 10000, -10000, 5000, -2500, 3333, 9999, -1):
        steering_us = normalized_to_us(n, CONFIG.steering_min_us, CONFIG.steering_center_us, CONFIG.steering_max_us)
        throttle_us = normalized_to_us(n, CONFIG.throttle_min_us, CONFIG.throttle_neutral_us, CONFIG.throttle_max_us)
        steering, throttle = simavr.widths_to_controls(steering_us, throttle_us, CONFIG)
        # the wire's 1/10000 rounded to the firmware's whole microseconds: 1 us = 1/500
        assert abs(steering - n / 1e4) <= 1 / 1000 and abs(throttle - n / 1e4) <= 1 / 1000, n
    # asymmetric limits: each side of the centre has its own span
    trimmed = FirmwareConfig(steering_min_us=1100, steering_center_us=1400, steering_max_us=1900)
    assert simavr.widths_to_controls(1100, 1500, trimmed) == (-1.0, 0.0)
    assert simavr.widths_to_controls(1650, None, trimmed) == (0.5, 0.0)  # no pulse yet: neutral
    assert simavr.widths_to_controls(2400, 900, trimmed) == (1.0, -1.0)  # clamped to [-1, 1]


# ---- the closed loop through ROS ----

needs_toolchain = pytest.mark.skipif(bool(simavr.missing_tool()), reason=f'{simavr.missing_tool()}: {simavr.INSTALL}')


@needs_toolchain
@pytest.mark.timeout(90)
def test_firmware_drives_the_simulated_car_and_its_watchdog_stops_it(ros_domain, tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    _, env = ros_domain
    link = str(tmp_path / 'arduino')
    specs = {s.name: s for s in rover_nodes(sim=True, arduino='firmware')}
    sim = NodeProcess('rover_sim.sim_node', 'sim', params={**specs['sim'].overrides, 'serial_link': link},
                      params_files=specs['sim'].params_files, env=env)
    bridge = NodeProcess('rover_bridge.bridge_node', 'bridge',
                         params={'port': link, 'estop_state_file': str(tmp_path / 'bridge.estop')},
                         params_files=specs['bridge'].params_files, env=env)
    node = rclpy.create_node('firmware_loop')
    states, diags = [], []  # rover/state; (monotonic, sim values) of every sim diagnostic
    bridge_diag = {}
    command = [0.0, 0.0]
    cmd_pub = node.create_publisher(TwistStamped, 'rover/cmd', 10)
    node.create_subscription(TwistStamped, 'rover/state', states.append, 10)

    def on_diagnostics(msg):
        for s in msg.status:
            values = {kv.key: kv.value for kv in s.values}
            if 'sim: world' in s.name:
                diags.append((time.monotonic(), values))
            elif 'bridge' in s.name:
                bridge_diag.update(values)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)

    def publish():
        msg = TwistStamped()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.twist.angular.z, msg.twist.linear.x = command
        cmd_pub.publish(msg)
    node.create_timer(1 / 30, publish)
    spin = lambda: rclpy.spin_once(node, timeout_sec=0.02)
    last = lambda key: float(diags[-1][1][key])

    def widths_are(steering_us, throttle_us, since):
        return bool(diags) and diags[-1][0] > since and diags[-1][1].get('steering_us') not in (None, 'none') and \
            abs(last('steering_us') - steering_us) <= 1 and abs(last('throttle_us') - throttle_us) <= 1
    try:
        sim.start()
        bridge.start()
        assert wait_for(lambda: bridge_diag.get('link') == 'up', 20, spin=spin), bridge.output() + sim.output()
        assert wait_for(lambda: diags and diags[-1][1]['arduino'] == 'firmware', 5, spin=spin), sim.output()
        assert 'emulated firmware (simavr)' in sim.output()
        # Drive: the pins show the commanded widths, the bridge reports them, the car moves.
        command[:] = [0.5, 0.3]
        start = time.monotonic()
        assert wait_for(lambda: widths_are(1750, 1650, start), 10, spin=spin), sim.output()
        assert wait_for(lambda: states and math.isclose(states[-1].twist.angular.z, 0.5, abs_tol=1e-3)
                        and math.isclose(states[-1].twist.linear.x, 0.3, abs_tol=1e-3), 5, spin=spin)
        assert (last('steering'), last('throttle')) == pytest.approx((0.5, 0.3), abs=2e-3)
        moved_from = last('distance_m')
        wait_for(lambda: False, 2.0, spin=spin)
        assert last('distance_m') - moved_from > 0.5 and last('speed_mps') > 0.5  # 0.3 x 3 m/s top speed
        # Freeze the bridge (commands keep coming to it, no byte leaves it): only the firmware's
        # watchdog can put the pins back to neutral, and the car coasts to a stop.
        os.killpg(bridge.proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            assert wait_for(lambda: widths_are(1500, 1500, frozen + 0.3), 5, spin=spin), sim.output()
            neutral_after = diags[-1][0] - frozen
            assert wait_for(lambda: last('speed_mps') < 0.05, 5, spin=spin)
            stopped_at = last('distance_m')
            wait_for(lambda: False, 1.5, spin=spin)
            assert last('distance_m') - stopped_at < 0.05
        finally:
            os.killpg(bridge.proc.pid, signal.SIGCONT)
        # Thawed, the bridge's next commands drive the car again.
        thawed = time.monotonic()
        command[:] = [-0.4, 0.2]
        assert wait_for(lambda: widths_are(1300, 1600, thawed), 10, spin=spin), sim.output() + bridge.output()
        assert sim.alive() and bridge.alive()
        print(f'FIRMWARE_LOOP neutral_after_freeze_s<={neutral_after:.1f} (1 Hz diagnostics) '
              f'distance_m={last("distance_m"):.2f}')
    finally:
        bridge.stop()
        sim.stop()
        node.destroy_node()
    assert not os.path.lexists(link), 'the runner left its link behind'


@pytest.mark.timeout(60)
def test_sim_without_the_toolchain_names_the_debian_packages(ros_domain, tmp_path):
    _, env = ros_domain
    specs = {s.name: s for s in rover_nodes(sim=True, arduino='firmware')}
    # No avr-gcc on PATH (the interpreter is started by its absolute path).
    sim = NodeProcess('rover_sim.sim_node', 'sim', params={'serial_link': str(tmp_path / 'arduino'),
                                                          'arduino': 'firmware'},
                      params_files=specs['sim'].params_files, env={**env, 'PATH': str(tmp_path)})
    try:
        sim.start()
        assert sim.wait_exit(30) == 2, sim.output()
    finally:
        sim.stop()
    out = sim.output()
    assert 'avr-gcc not found' in out and simavr.INSTALL in out, out
    assert not os.path.lexists(tmp_path / 'arduino')

"""The arbiter node in this process: parameters, services and latched topics."""
import time

import pytest
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool

from rover_arbiter.arbiter_node import LATCHED, ArbiterNode
from rover_common.ros_env import apply_localhost_env


@pytest.fixture
def node():
    domain = apply_localhost_env()
    rclpy.init(domain_id=domain)
    arbiter = ArbiterNode()
    probe = rclpy.create_node('arbiter_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(arbiter)
    executor.add_node(probe)
    yield arbiter, probe, executor
    executor.shutdown()
    arbiter.destroy_node()
    probe.destroy_node()
    rclpy.try_shutdown()


def spin_until(executor, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def test_mode_parameter_is_validated_and_published_latched(node):
    arbiter, probe, executor = node
    modes = []
    probe.create_subscription(String, 'rover/mode', lambda m: modes.append(m.data), LATCHED)
    assert spin_until(executor, lambda: modes == ['manual'])      # a late subscriber gets it
    assert not arbiter.set_parameters([Parameter('mode', value='turbo')])[0].successful
    assert arbiter.set_parameters([Parameter('mode', value='assisted')])[0].successful
    assert spin_until(executor, lambda: modes[-1] == 'assisted')
    assert arbiter.arbiter.mode == 'assisted'


def test_estop_topic_drops_to_manual_and_refuses_other_modes(node):
    arbiter, probe, executor = node
    estop = probe.create_publisher(Bool, 'rover/estop', LATCHED)
    cmds = []
    probe.create_subscription(TwistStamped, 'rover/cmd', cmds.append, 10)
    arbiter.set_parameters([Parameter('mode', value='autonomous')])
    estop.publish(Bool(data=True))
    assert spin_until(executor, lambda: arbiter.arbiter.estop)
    assert arbiter.arbiter.mode == 'manual'
    assert arbiter.get_parameter('mode').value == 'manual'        # `ros2 param get` tells the truth
    result = arbiter.set_parameters([Parameter('mode', value='autonomous')])[0]
    assert not result.successful and 'e-stop' in result.reason
    assert spin_until(executor, lambda: len(cmds) > 3)
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in cmds)


def test_episode_service_toggles_the_latched_episode_topic(node):
    arbiter, probe, executor = node
    episodes = []
    probe.create_subscription(Bool, 'rover/episode', lambda m: episodes.append(m.data), LATCHED)
    client = probe.create_client(SetBool, 'rover/record_episode')
    assert spin_until(executor, lambda: client.service_is_ready() and episodes == [False])
    for wanted in (True, False):
        future = client.call_async(SetBool.Request(data=wanted))
        assert spin_until(executor, future.done)
        assert future.result().success
        assert spin_until(executor, lambda: episodes[-1] is wanted)
    assert episodes == [False, True, False]

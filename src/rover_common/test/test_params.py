"""One parameter rule for every node: floats accept integers, ranges hold at start and at run time."""
import re

import pytest
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter

from rover_common.params import declare
from rover_common.ros_env import apply_localhost_env


@pytest.fixture
def context():
    rclpy.init(domain_id=apply_localhost_env())
    yield
    rclpy.try_shutdown()


def make_node(**overrides):
    return rclpy.create_node('params_probe', parameter_overrides=[
        Parameter(name, value=value) for name, value in overrides.items()])


def test_float_parameter_accepts_an_integer_at_start_and_at_run_time(context):
    node = make_node(rate_hz=30)                      # `rate_hz:=30`, YAML `rate_hz: 30`
    value = declare(node, 'rate_hz', 30.0, 'Rate.', min_value=1.0, max_value=200.0)
    assert value == 30.0 and isinstance(value, float)
    assert node.set_parameters([Parameter('rate_hz', value=50)])[0].successful
    assert node.set_parameters([Parameter('rate_hz', value=12.5)])[0].successful
    node.destroy_node()


@pytest.mark.parametrize('value, reason', [(500, r'out of range \[1, 200\]'), (0.5, 'out of range'),
                                           ('fast', 'must be a number'), (True, 'must be a number')])
def test_float_parameter_refuses_bad_values_at_start_and_at_run_time(context, value, reason):
    # either is a start-up configuration error: node_main reports it in one line, exit code 2
    with pytest.raises((ValueError, ParameterException), match=reason):
        declare(make_node(rate_hz=value), 'rate_hz', 30.0, 'Rate.', min_value=1.0, max_value=200.0)
    node = make_node()
    declare(node, 'rate_hz', 30.0, 'Rate.', min_value=1.0, max_value=200.0)
    result = node.set_parameters([Parameter('rate_hz', value=value)])[0]
    assert not result.successful and re.search(reason, result.reason)
    assert node.get_parameter('rate_hz').value == 30.0   # unchanged
    node.destroy_node()


def test_other_types_keep_strict_typing_and_choices(context):
    node = make_node(mode='turbo')
    with pytest.raises(ValueError, match='not one of manual, auto'):
        declare(node, 'mode', 'manual', 'Mode.', choices=('manual', 'auto'))
    node.destroy_node()
    node = make_node()
    declare(node, 'count', 3, 'Count.', min_value=1, max_value=5)
    assert not node.set_parameters([Parameter('count', value=9)])[0].successful
    assert not node.set_parameters([Parameter('count', value=2.5)])[0].successful
    node.destroy_node()

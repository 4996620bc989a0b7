"""Fixtures for cross-package tests: a loopback ROS domain of the test's own."""
import pytest
import rclpy

from rover_common.process import scheduling_guard
from rover_common.ros_env import apply_localhost_env, localhost_env


@pytest.fixture
def ros_domain():
    """(domain id, env for child processes); rclpy in this process uses the same domain."""
    domain = apply_localhost_env()
    rclpy.init(domain_id=domain)
    yield domain, localhost_env(domain)
    rclpy.try_shutdown()


# Fails a test that changes the test process's scheduling: every later test and child inherits it.
scheduling_unchanged = pytest.fixture(autouse=True, name='scheduling_unchanged')(scheduling_guard)

"""Keep DDS traffic on loopback, with a domain of its own per run.

Every test, benchmark and demo that starts ROS goes through this module, so
that no process ever sends discovery traffic off this machine and parallel
runs never see each other's topics.
"""
import os
import random

# Domain IDs 1..101 map to UDP ports that stay clear of the ephemeral range
# on Linux for any participant count we use.
_DOMAIN_MIN = 1
_DOMAIN_MAX = 101


def pick_domain_id() -> int:
    """A domain for this run: from ROVER_DOMAIN_ID if set, else random."""
    forced = os.environ.get('ROVER_DOMAIN_ID')
    if forced:
        return int(forced)
    return random.SystemRandom().randint(_DOMAIN_MIN, _DOMAIN_MAX)


def localhost_env(domain_id: int | None = None, base: dict | None = None) -> dict:
    """Environment for a child process that may only talk over loopback."""
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_STATIC_PEERS'] = ''
    env.pop('ROS_LOCALHOST_ONLY', None)  # deprecated in Jazzy; RANGE wins
    env['ROS_DOMAIN_ID'] = str(pick_domain_id() if domain_id is None else domain_id)
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def apply_localhost_env(domain_id: int | None = None) -> int:
    """Set the loopback-only variables in this process; call before rclpy.init()."""
    env = localhost_env(domain_id)
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_STATIC_PEERS', 'ROS_DOMAIN_ID'):
        os.environ[key] = env[key]
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    return int(env['ROS_DOMAIN_ID'])

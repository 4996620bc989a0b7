"""The arbitration rules, without ROS: who drives in each mode, and what stale means."""
import math

import pytest

from rover_arbiter.arbiter import (ASSISTED, AUTONOMOUS, HUMAN, MANUAL, NEUTRAL, POLICY,
                                   POLICY_STEERING_HUMAN_THROTTLE, Arbiter, ButtonEdges)


def arbiter(mode=MANUAL):
    return Arbiter(mode, human_timeout=0.5, policy_timeout=0.25, takeover_deadband=0.05)


def test_manual_applies_the_human_and_ignores_a_fresh_policy():
    a = arbiter(MANUAL)
    a.policy(0.9, 0.9, now=0.0)
    a.human(-0.2, 0.4, now=0.0)
    d = a.decide(0.1)
    assert (d.steering, d.throttle, d.source) == (-0.2, 0.4, HUMAN)


def test_manual_with_a_stale_human_is_neutral_not_the_policy():
    a = arbiter(MANUAL)
    a.human(0.3, 0.4, now=0.0)
    a.policy(0.9, 0.9, now=0.55)
    d = a.decide(0.6)   # human 0.6 s old > 0.5 s
    assert (d.steering, d.throttle, d.source, d.reason) == (0.0, 0.0, NEUTRAL, 'human_stale')


def test_neutral_before_any_input():
    for mode in (MANUAL, ASSISTED, AUTONOMOUS):
        d = arbiter(mode).decide(0.0)
        assert (d.steering, d.throttle, d.source) == (0.0, 0.0, NEUTRAL), mode


def test_assisted_policy_steers_human_throttles():
    a = arbiter(ASSISTED)
    a.policy(0.7, 0.9, now=0.0)
    a.human(0.0, 0.35, now=0.0)
    d = a.decide(0.1)
    assert (d.steering, d.throttle, d.source) == (0.7, 0.35, POLICY_STEERING_HUMAN_THROTTLE)


def test_assisted_human_steering_beyond_the_deadband_takes_over():
    a = arbiter(ASSISTED)
    a.policy(0.7, 0.9, now=0.0)
    a.human(-0.5, 0.2, now=0.0)
    d = a.decide(0.05)
    assert (d.steering, d.throttle, d.source, d.reason) == (-0.5, 0.2, HUMAN, 'human_takeover')
    a.human(0.04, 0.2, now=0.06)  # inside the deadband: the policy steers again
    assert a.decide(0.07).steering == 0.7


def test_assisted_without_human_or_policy_is_neutral():
    a = arbiter(ASSISTED)
    a.policy(0.7, 0.9, now=0.0)
    d = a.decide(0.1)
    assert (d.steering, d.throttle, d.reason) == (0.0, 0.0, 'human_stale')
    a.human(0.0, 0.3, now=0.2)
    d = a.decide(0.3)    # policy 0.3 s old > 0.25 s
    assert (d.steering, d.throttle, d.reason) == (0.0, 0.0, 'policy_stale')


def test_autonomous_policy_drives_until_a_fresh_human_command_takes_over():
    a = arbiter(AUTONOMOUS)
    a.policy(0.2, 0.5, now=0.0)
    d = a.decide(0.01)
    assert (d.steering, d.throttle, d.source) == (0.2, 0.5, POLICY)
    a.human(0.0, 0.0, now=0.02)       # twist_mux semantics: a fresh human message wins, zero included
    a.policy(0.2, 0.5, now=0.03)
    d = a.decide(0.04)
    assert (d.steering, d.throttle, d.source, d.reason) == (0.0, 0.0, HUMAN, 'human_takeover')
    assert a.takeovers == 1
    a.policy(0.2, 0.5, now=0.6)
    d = a.decide(0.61)                # the human went stale: back to the (fresh) policy
    assert (d.steering, d.throttle, d.source) == (0.2, 0.5, POLICY)


def test_autonomous_with_a_stale_policy_is_neutral():
    a = arbiter(AUTONOMOUS)
    a.policy(0.2, 0.5, now=0.0)
    d = a.decide(0.3)
    assert (d.throttle, d.source, d.reason) == (0.0, NEUTRAL, 'policy_stale')


def test_nonfinite_input_counts_as_absent():
    a = arbiter(MANUAL)
    a.human(math.nan, 0.3, now=0.0)
    assert a.decide(0.01).source == NEUTRAL


def test_estop_drops_to_manual_and_forgets_held_commands():
    a = arbiter(AUTONOMOUS)
    a.policy(0.2, 0.5, now=0.0)
    a.human(0.1, 0.3, now=0.0)
    a.set_estop(True)
    assert a.mode == MANUAL
    assert a.decide(0.01).reason == 'estop'
    with pytest.raises(ValueError, match='e-stop'):
        a.set_mode(AUTONOMOUS)
    a.policy(0.2, 0.5, now=0.02)      # a policy that keeps publishing through the e-stop
    a.set_estop(False)                # release: nothing held survives it
    d = a.decide(0.03)
    assert (d.steering, d.throttle, d.source, d.reason) == (0.0, 0.0, NEUTRAL, 'human_stale')
    a.human(0.0, 0.25, now=0.04)      # only a command received after the release drives
    assert a.decide(0.05).throttle == 0.25


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match='not one of'):
        Arbiter('turbo')


def test_button_edges_fire_once_per_press():
    edges = ButtonEdges()
    assert edges.pressed([0, 1, 0]) == {1}
    assert edges.pressed([0, 1, 0]) == set()       # held
    assert edges.pressed([1, 0, 0, 1]) == {0, 3}   # a longer button list is fine
    assert edges.pressed([1, 0, 0, 1]) == set()

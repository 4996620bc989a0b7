"""rover/cmd's rate is the driving source's rate: the pacer replayed on fake time, without ROS."""
import heapq
import random

import pytest

from rover_arbiter.arbiter import (ASSISTED, AUTONOMOUS, ESTOP, MANUAL, NEUTRAL, POLICY_STEERING_HUMAN_THROTTLE,
                                   TIMER, Arbiter, PublishPacer)

RATE_HZ = 30.0


def replay(mode, seconds, policy_hz=None, human_hz=None, jitter=0.008, policy_until=None, seed=1):
    """Feed the arbiter periodic inputs (each arrival late by up to `jitter`), with the node's
    keep-alive timer at half the period; return [(time, source)] of what was published."""
    rng = random.Random(seed)
    arbiter = Arbiter(mode, human_timeout=0.5, policy_timeout=0.25, takeover_deadband=0.05)
    pacer = PublishPacer(1.0 / RATE_HZ)
    events = [(0.0, TIMER, 0)]
    if policy_hz:
        events.append((0.0, 'policy', 0))
    if human_hz:
        events.append((0.013, 'human', 0))
    heapq.heapify(events)
    published = []
    while events:
        now, trigger, tick = heapq.heappop(events)
        if now > seconds:
            break
        if trigger == 'policy':
            if policy_until is None or now < policy_until:
                arbiter.policy(0.3, 0.9, now)
            period = 1 / policy_hz
        elif trigger == 'human':
            arbiter.human(0.0, 0.2, now)
            period = 1 / human_hz
        else:
            period = pacer.period / 2
        decision = arbiter.decide(now)
        if pacer.should_publish(trigger, decision.source, now):
            pacer.published(trigger, decision.source, now)
            published.append((now, decision.source))
        # the next arrival: on its schedule, late by up to `jitter` (never early)
        late = rng.uniform(0, jitter) if trigger != TIMER else 0.0
        heapq.heappush(events, ((tick + 1) * period + late, trigger, tick + 1))
    return published


def rate(published, start, end):
    return sum(start <= t < end for t, _ in published) / (end - start)


@pytest.mark.parametrize('human_hz', [20.0, 30.0, 50.0])
def test_assisted_mode_publishes_at_the_policy_rate_not_the_sum_of_both(human_hz):
    published = replay(ASSISTED, 10.0, policy_hz=30.0, human_hz=human_hz)
    assert all(source == POLICY_STEERING_HUMAN_THROTTLE for _, source in published[3:])
    # every policy message is published once (a jittery one never lets the human add one)
    assert rate(published, 1.0, 10.0) == pytest.approx(30.0, abs=0.3)


def test_manual_mode_publishes_at_the_human_rate_while_the_policy_shows_its_chunk():
    published = replay(MANUAL, 10.0, policy_hz=30.0, human_hz=20.0)
    assert rate(published, 1.0, 10.0) == pytest.approx(20.0, abs=0.3)


def test_sparse_keyboard_is_filled_in_by_the_keep_alive_at_the_control_rate():
    published = replay(MANUAL, 10.0, human_hz=5.0)
    assert 25.0 <= rate(published, 1.0, 10.0) <= 30.5
    gaps = [b - a for (a, _), (b, _) in zip(published, published[1:])]
    # 1.5 periods of grace for the pacing input, checked on the timer's half-period grid
    assert max(gaps) <= 2.0 / RATE_HZ + 1e-9


def test_a_stopped_policy_goes_neutral_and_the_keep_alive_carries_on():
    published = replay(AUTONOMOUS, 3.0, policy_hz=30.0, policy_until=1.0)
    assert rate(published, 0.2, 1.0) == pytest.approx(30.0, abs=1.5)
    # neutral within the policy timeout, and still published at the control rate
    assert {source for t, source in published if t > 1.0 + 0.25 + 0.05} == {NEUTRAL}
    assert 25.0 <= rate(published, 1.5, 3.0) <= 30.5


def test_estop_and_a_change_of_driver_publish_at_once():
    pacer = PublishPacer(1 / RATE_HZ)
    pacer.published('policy', POLICY_STEERING_HUMAN_THROTTLE, 0.0)
    assert not pacer.should_publish('human', POLICY_STEERING_HUMAN_THROTTLE, 0.001)
    assert pacer.should_publish(ESTOP, POLICY_STEERING_HUMAN_THROTTLE, 0.001)
    assert pacer.should_publish('human', 'human', 0.001)
    assert not pacer.should_publish(TIMER, POLICY_STEERING_HUMAN_THROTTLE, 0.04)
    assert pacer.should_publish(TIMER, POLICY_STEERING_HUMAN_THROTTLE, 0.051)

import math
import threading

import pytest

from rover_policy import safety
from rover_policy.control_loop import ControlLoop
from rover_policy.safety import SafetyGate


def test_neutral_reasons_in_priority_order():
    gate = SafetyGate(max_frame_age=0.2)
    now = 100.0
    cases = [
        (dict(estop=True, newest_frame_stamp=now, action=(0.5, 0.5)), safety.ESTOP),
        (dict(estop=False, newest_frame_stamp=None, action=(0.5, 0.5)), safety.NO_FRAME),
        (dict(estop=False, newest_frame_stamp=now - 0.21, action=(0.5, 0.5)), safety.STALE_FRAME),
        (dict(estop=False, newest_frame_stamp=now - 0.05, action=None), safety.QUEUE_EMPTY),
        (dict(estop=False, newest_frame_stamp=now, action=(math.nan, 0.1)), safety.INVALID_ACTION),
    ]
    for kwargs, reason in cases:
        decision = gate.decide(now, **kwargs)
        assert decision.neutral_reason == reason
        assert (decision.steering, decision.throttle) == (0.0, 0.0)   # neutral is neutral
    decision = gate.decide(now, False, now - 0.19, (0.3, -0.4))
    assert not decision.neutral and (decision.steering, decision.throttle) == (0.3, -0.4)


def test_neutral_events_count_transitions():
    gate = SafetyGate(0.2)
    sequence = [None, None, (1, 1), (1, 1), None, (1, 1), None, None]
    for action in sequence:
        gate.decide(10.0, False, 10.0, action)
    assert gate.neutral_events == 2  # the start-up neutral is not an event
    assert gate.last_reason == safety.QUEUE_EMPTY


class FakeTime:
    """A clock that advances when the loop waits, plus scripted tick durations."""

    def __init__(self):
        self.now = 0.0
        self.tick_costs = {}

    def clock(self):
        return self.now

    def wait(self, seconds):
        self.now += seconds
        return False


def test_control_loop_keeps_an_absolute_grid_and_skips_missed_deadlines():
    fake = FakeTime()
    calls = []

    def tick(scheduled, actual):
        calls.append((round(scheduled, 6), round(actual, 6)))
        fake.now += fake.tick_costs.get(len(calls), 0.001)

    fake.tick_costs = {3: 0.25}  # the third tick stalls for 2.5 periods
    loop = ControlLoop(10.0, tick, clock=fake.clock, wait=fake.wait)
    loop.run(max_ticks=6)
    scheduled = [s for s, _ in calls]
    # the stall ends at 0.55: deadline 0.4 is a whole period past and skipped, 0.5 runs late
    # (reporting when it really ran), then the grid continues; no catch-up burst
    assert scheduled == [0.1, 0.2, 0.3, 0.5, 0.6, 0.7]
    assert loop.missed == 1 and loop.ticks == 6
    assert calls[3][1] == pytest.approx(0.55)
    assert calls[4][1] == pytest.approx(0.6)


def test_control_loop_thread_stops():
    ticked = threading.Event()
    loop = ControlLoop(200.0, lambda s, a: ticked.set()).start()
    assert ticked.wait(2.0)
    loop.stop()
    assert not loop._thread.is_alive()

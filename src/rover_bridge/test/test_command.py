"""Command shaping and the hold timeout, without ROS or a port."""
import math

import pytest

from rover_bridge.command import CommandHolder, Shaping, sanitize


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_sanitize_clamps_and_neutralises():
    assert sanitize(0.2, -0.4) == (0.2, -0.4, '')
    assert sanitize(1.5, -3.0) == (1.0, -1.0, 'clamped')
    assert sanitize(math.nan, 0.5) == (0.0, 0.0, 'nonfinite')
    assert sanitize(0.1, -math.inf) == (0.0, 0.0, 'nonfinite')
    assert sanitize('x', 0.0) == (0.0, 0.0, 'nonfinite')


def test_shaping_trim_limit_invert_and_back():
    shaping = Shaping(steering_trim=0.1, throttle_trim=0.05, max_steering=0.8, max_throttle=0.5,
                      invert_steering=True)
    assert shaping.to_wire(0.5, 0.2) == pytest.approx((-0.6, 0.25))
    assert shaping.to_wire(1.0, 1.0) == pytest.approx((-0.8, 0.5))  # limits after trim
    assert shaping.from_wire(*shaping.to_wire(0.5, 0.2)) == pytest.approx((0.5, 0.2))
    # Neutral: steering at the trimmed centre, throttle exactly zero (the ESC's armed neutral).
    assert shaping.neutral_wire() == pytest.approx((-0.1, 0.0))
    with pytest.raises(ValueError):
        Shaping(max_throttle=1.5)


def test_holder_holds_the_newest_command_for_the_timeout_only():
    clock = FakeClock()
    holder = CommandHolder(0.25, clock=clock)
    assert holder.current() == (0.0, 0.0, 'none')
    holder.submit(0.3, 0.4)
    clock.now += 0.1
    holder.submit(0.5, 0.6)
    clock.now += 0.25
    assert holder.current() == (0.5, 0.6, 'command')
    clock.now += 0.001
    assert holder.current() == (0.0, 0.0, 'stale')
    assert holder.counts['sent_command'] == 1 and holder.counts['sent_stale'] == 1


def test_holder_non_finite_means_neutral_and_is_counted():
    clock = FakeClock()
    holder = CommandHolder(0.25, Shaping(throttle_trim=0.1), clock=clock)
    holder.submit(0.3, 0.4)
    assert holder.submit(math.nan, 0.4) == 'nonfinite'
    assert holder.current() == (0.0, 0.0, 'nonfinite')
    assert holder.submit(2.0, 0.0) == 'clamped'
    assert holder.current() == pytest.approx((1.0, 0.1, 'command'))
    assert holder.counts['nonfinite'] == 1 and holder.counts['clamped'] == 1 and holder.counts['received'] == 3


def test_estop_latches_until_released():
    clock = FakeClock()
    holder = CommandHolder(0.25, Shaping(steering_trim=0.05), clock=clock)
    holder.set_estop(True)
    for _ in range(3):
        holder.submit(0.9, 0.9)
        assert holder.current() == pytest.approx((0.05, 0.0, 'estop'))
        clock.now += 0.05
    holder.set_estop(False)
    assert holder.current() == pytest.approx((0.95, 0.9, 'command'))


def test_configure_changes_timeout_and_shaping_at_runtime():
    clock = FakeClock()
    holder = CommandHolder(0.25, clock=clock)
    holder.submit(0.5, 0.5)
    clock.now += 0.3
    assert holder.current()[2] == 'stale'
    holder.configure(timeout=0.5, shaping=Shaping(invert_throttle=True))
    assert holder.current() == (0.5, -0.5, 'command')
    with pytest.raises(ValueError):
        holder.configure(timeout=0.0)
    with pytest.raises(ValueError):
        CommandHolder(-1.0)

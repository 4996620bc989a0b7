"""Command shaping and the hold timeout, without ROS or a port."""
import json
import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rover_bridge.command import STEERING_TRIM_BAND, CommandHolder, EstopFile, Shaping, sanitize


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
    assert holder.submit(2.0, 0.3) == 'clamped'
    assert holder.current() == pytest.approx((1.0, 0.4, 'command'))
    assert holder.counts['nonfinite'] == 1 and holder.counts['clamped'] == 1 and holder.counts['received'] == 3


def test_estop_latches_until_released_and_a_release_does_not_resume_motion():
    clock = FakeClock()
    holder = CommandHolder(0.25, Shaping(steering_trim=0.05), clock=clock)
    holder.submit(0.9, 0.9)
    holder.set_estop(True)
    assert holder.current() == pytest.approx((0.05, 0.0, 'estop'))
    for _ in range(3):
        holder.submit(0.9, 0.9)
        assert holder.current() == pytest.approx((0.05, 0.0, 'estop'))
        clock.now += 0.05
    holder.set_estop(False)
    # The command held from before the release is gone: neutral until a new one arrives.
    assert holder.current() == pytest.approx((0.05, 0.0, 'none'))
    holder.submit(0.9, 0.9)
    assert holder.current() == pytest.approx((0.95, 0.9, 'command'))


def test_holder_can_start_latched():
    holder = CommandHolder(0.25, clock=FakeClock(), estop=True)
    holder.submit(0.5, 0.5)
    assert holder.estop and holder.current() == (0.0, 0.0, 'estop')


def test_a_commanded_stop_is_a_stop_whatever_the_throttle_trim():
    for trim in (-0.2, 0.1, 0.2):
        shaping = Shaping(throttle_trim=trim, invert_throttle=True)
        assert shaping.to_wire(0.0, 0.0)[1] == 0.0
        assert shaping.from_wire(0.0, 0.0)[1] == 0.0
        assert shaping.to_wire(0.0, 0.3)[1] == pytest.approx(-(0.3 + trim))


def test_trims_outside_the_band_are_refused():
    for kwargs in ({'steering_trim': STEERING_TRIM_BAND + 0.01}, {'steering_trim': -0.5},
                   {'throttle_trim': 0.3}, {'steering_trim': math.nan}):
        with pytest.raises(ValueError):
            Shaping(**kwargs)


@given(trim=st.floats(-1.0, 1.0), throttle_trim=st.floats(-1.0, 1.0), max_steering=st.floats(0.0, 1.0),
       max_throttle=st.floats(0.0, 1.0), invert_steering=st.booleans(), invert_throttle=st.booleans())
def test_no_valid_shaping_makes_neutral_leave_the_trim_band(trim, throttle_trim, max_steering, max_throttle,
                                                             invert_steering, invert_throttle):
    try:
        shaping = Shaping(trim, throttle_trim, max_steering, max_throttle, invert_steering, invert_throttle)
    except ValueError:
        return  # refused: the running shaping stays as it was
    steering, throttle = shaping.neutral_wire()
    assert abs(steering) <= STEERING_TRIM_BAND and throttle == 0.0
    assert shaping.to_wire(0.0, 0.0) == (steering, throttle)  # a commanded stop is the same neutral


def test_estop_file_round_trip_is_atomic(tmp_path):
    store = EstopFile(str(tmp_path / 'car1' / 'bridge.estop'))
    assert store.load() == (False, '', '')  # never engaged on this machine
    store.save(True, 'engaged via the rover/estop service')
    assert store.load() == (True, 'engaged via the rover/estop service', '')
    assert json.loads((tmp_path / 'car1' / 'bridge.estop').read_text())['engaged'] is True
    store.save(False, 'released')
    assert store.load().engaged is False
    assert os.listdir(tmp_path / 'car1') == ['bridge.estop']  # no temporary file left behind


def test_estop_file_that_cannot_be_read_means_latched(tmp_path):
    path = tmp_path / 'bridge.estop'
    for content in ('{"engaged": fal', '{"engaged": "no"}', '[]', ''):
        path.write_text(content)
        engaged, _, problem = EstopFile(str(path)).load()
        assert engaged and problem, content
    path.unlink()
    path.mkdir()  # a directory where the file should be
    engaged, _, problem = EstopFile(str(path)).load()
    assert engaged and 'cannot read' in problem


def test_estop_file_under_a_regular_file_cannot_be_written(tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('')
    with pytest.raises(OSError):
        EstopFile(str(blocker / 'bridge.estop')).save(True)


def test_estop_file_in_a_read_only_directory_raises_and_keeps_the_old_state(tmp_path):
    store = EstopFile(str(tmp_path / 'bridge.estop'))
    store.save(True, 'engaged')
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK) and os.geteuid() == 0:
            pytest.skip('running as root: directory permissions do not stop writes')
        with pytest.raises(OSError):
            store.save(False, 'released')
    finally:
        os.chmod(tmp_path, 0o700)
    assert store.load().engaged is True


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

"""The one deadline-loop primitive, on fake time: no test here sleeps for a period."""
import threading
import time

import numpy as np
import pytest

from rover_common.deadline_loop import DeadlineLoop, Deadlines


class FakeTime:
    """A clock that only moves when slept on (or by a tick's cost); records the sleeps."""

    def __init__(self, start=100.0):
        self.now = start
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        return False  # not stopped


def test_no_drift_over_many_ticks_with_work_between_them():
    fake = FakeTime()
    deadlines = Deadlines(0.1, clock=fake.clock, sleep=fake.sleep)
    released = []
    for _ in range(10000):
        assert deadlines.wait() == 0
        released.append(fake.now)
        fake.now += 0.013  # work after every tick; must not push the later ticks
    # tick k at start + k * period: a relative sleep (now + period) would end 10000 * 13 ms late
    assert released[-1] == pytest.approx(100.0 + 9999 * 0.1, abs=1e-6)
    assert np.allclose(np.diff(released), 0.1)
    assert deadlines.missed == 0 and deadlines.ticks == 10000
    assert deadlines.scheduled == pytest.approx(released[-1])


def test_late_tick_is_released_once_for_the_newest_deadline_without_a_burst():
    fake = FakeTime()
    deadlines = Deadlines(0.1, clock=fake.clock, sleep=fake.sleep)
    deadlines.wait()                       # deadline 0 at 100.0
    fake.now = 100.15                      # deadline 1 (100.1) 50 ms late: released now, nothing skipped
    assert deadlines.wait() == 0 and fake.now == pytest.approx(100.15)
    assert deadlines.scheduled == pytest.approx(100.1) and deadlines.actual == pytest.approx(100.15)
    deadlines.wait()                       # deadline 2 back on the grid
    assert fake.now == pytest.approx(100.2)
    fake.now = 100.55                      # 250 ms late for 100.3: 100.3 and 100.4 are skipped
    assert deadlines.wait() == 2
    assert deadlines.scheduled == pytest.approx(100.5) and deadlines.actual == pytest.approx(100.55)
    assert deadlines.next_deadline() == pytest.approx(100.6)
    sleeps_before = len(fake.sleeps)
    deadlines.wait()                       # no catch-up: the next tick waits for 100.6
    assert len(fake.sleeps) == sleeps_before + 1 and fake.now == pytest.approx(100.6)
    assert deadlines.missed == 2 and deadlines.ticks == 5


def test_missed_deadlines_are_counted_across_overruns():
    fake = FakeTime(0.0)
    costs = {2: 0.25, 5: 0.05, 7: 1.0}  # tick -> seconds its work takes (period 0.1)
    calls = []

    def tick(scheduled, actual):
        calls.append((round(scheduled, 6), round(actual, 6)))
        fake.now += costs.get(len(calls), 0.001)

    loop = DeadlineLoop(0.1, tick, clock=fake.clock, wait=fake.sleep, immediate=False)
    loop.run(max_ticks=9)
    scheduled = [s for s, _ in calls]
    # tick 2 ends at 0.45: 0.3 is skipped, 0.4 runs late; tick 5 (50 ms) costs nothing;
    # tick 7 ends at 1.8: 0.9 .. 1.7 (9 deadlines) are skipped, 1.8 runs
    assert scheduled == [0.1, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.8, 1.9]
    assert loop.missed == 1 + 9 and loop.ticks == 9
    assert calls[2][1] == pytest.approx(0.45)
    # every release is at or after its deadline and less than a period after it
    assert all(0 <= a - s < 0.1 for s, a in calls)


def test_immediate_first_tick_and_reset_start_a_new_grid():
    fake = FakeTime()
    deadlines = Deadlines(0.5, clock=fake.clock, sleep=fake.sleep)
    assert deadlines.next_deadline() is None
    deadlines.wait()
    assert fake.sleeps == [] and deadlines.scheduled == 100.0
    fake.now += 30.0  # e.g. a reconnect: the old grid would count 59 missed deadlines
    deadlines.reset()
    assert deadlines.wait() == 0 and deadlines.missed == 0
    deadlines.wait()
    assert fake.now == pytest.approx(130.5)
    with pytest.raises(ValueError):
        Deadlines(0.0)
    with pytest.raises(ValueError):
        Deadlines(-1.0)


def test_a_sleep_that_reports_stop_releases_no_tick():
    fake = FakeTime()
    deadlines = Deadlines(0.1, clock=fake.clock, sleep=lambda s: True, immediate=False)
    assert deadlines.wait() is None and deadlines.ticks == 0


def test_stop_from_another_thread_ends_a_long_wait_promptly():
    # the clock stands still: without the stop the loop would wait 1000 s for its next deadline
    ticked = threading.Event()
    loop = DeadlineLoop(1000.0, lambda s, a: ticked.set(), clock=lambda: 5.0).start()
    assert ticked.wait(5.0)  # the immediate first tick
    started = time.monotonic()
    loop.stop(timeout=5.0)
    assert time.monotonic() - started < 1.0
    assert not loop._thread.is_alive() and loop.ticks == 1


def test_stop_during_a_tick_ends_the_loop_after_that_tick():
    fake = FakeTime()
    calls = []

    def tick(scheduled, actual):
        calls.append(scheduled)
        if len(calls) == 3:
            loop.stop()  # from the loop's own thread: must not join itself

    loop = DeadlineLoop(0.1, tick, clock=fake.clock, wait=fake.sleep)
    loop.run(max_ticks=100)
    assert len(calls) == 3 and loop.stopping

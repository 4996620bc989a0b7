"""Gap accounting and the capture loop. No ROS.

The deadline grid that paces files, folders and the test pattern, the backoff
and the hand-over slot are rover_common's, tested there.
"""
import logging
import threading
import time

import numpy as np

from rover_camera import capture as cap
from rover_common.backoff import Backoff
from rover_camera.sources import FrameSource, SourceLost, SourceUnavailable


def test_gap_counter_counts_missing_frames_not_jitter():
    gaps = cap.GapCounter()
    period = 1 / 30
    t = 0.0
    for dt in [0, period, period * 1.4, period * 0.6, period * 3.0, period * 2.0, 1.0]:
        t += dt
        gaps.add(t, period)
    assert gaps.dropped == 0 + 0 + 0 + 0 + 2 + 1 + 29


class ScriptedSource(FrameSource):
    """Fails to open `fail_opens` times, then streams; `lose_after` frames later it is lost once."""

    def __init__(self, fail_opens=0, lose_after=None, length=None, paced=True):
        super().__init__()
        self.fail_opens = fail_opens
        self.lose_after = lose_after
        self.length = length
        self.paced = paced
        self.opens = 0
        self.closes = 0
        self.counter = 0

    @property
    def description(self):
        return 'scripted source'

    def open(self):
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceUnavailable('scripted source is not there yet')
        self.opens += 1

    def grab(self):
        if self.lose_after is not None and self.counter == self.lose_after:
            self.lose_after = None
            raise SourceLost('scripted source unplugged')
        if self.length is not None and self.counter >= self.length:
            return False
        self.counter += 1
        return True

    def retrieve(self):
        return np.full((2, 2, 3), self.counter, np.uint8)

    def close(self):
        self.closes += 1


def run_loop(source, until, fps=200.0, timeout=10.0):
    frames = []
    stamps = iter(range(10**9))
    loop = cap.CaptureLoop(source, lambda f, stamp, seq: frames.append((int(f[0, 0, 0]), stamp, seq)),
                           fps=fps, now_ns=lambda: next(stamps), log=logging.getLogger('test'),
                           backoff=Backoff(initial=0.001, maximum=0.004))
    if loop.try_open() is None:
        pass
    loop.start()
    deadline = time.monotonic() + timeout
    while not until(loop, frames) and time.monotonic() < deadline:
        time.sleep(0.005)
    loop.stop()
    return loop, frames


def test_capture_loop_waits_for_a_late_source_then_streams():
    source = ScriptedSource(fail_opens=3)
    loop, frames = run_loop(source, lambda lp, fr: len(fr) >= 5)
    assert [f[0] for f in frames[:5]] == [1, 2, 3, 4, 5]
    snap = loop.snapshot()
    assert snap['failed_opens'] == 3 and snap['reconnects'] == 0 and snap['losses'] == 0
    assert snap['state'] == cap.STOPPED and source.closes >= 1


def test_capture_loop_reopens_a_lost_source_and_counts_it(caplog):
    source = ScriptedSource(lose_after=4, fail_opens=0)
    with caplog.at_level(logging.INFO, logger='test'):
        loop, frames = run_loop(source, lambda lp, fr: len(fr) >= 8)
    assert [f[0] for f in frames[:8]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [f[2] for f in frames[:8]] == list(range(8))
    stamps = [f[1] for f in frames]
    assert stamps == sorted(stamps)
    snap = loop.snapshot()
    assert snap['losses'] == 1 and snap['reconnects'] == 1 and source.opens == 2
    assert 'unplugged' in snap['last_error']
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and 'scripted source unplugged' in errors[0]


def test_capture_loop_stops_at_the_end_of_a_finite_source():
    source = ScriptedSource(length=3)
    loop, frames = run_loop(source, lambda lp, fr: lp.snapshot()['state'] == cap.FINISHED)
    assert [f[0] for f in frames] == [1, 2, 3]
    assert loop.snapshot()['state'] == cap.STOPPED  # after stop()


def test_capture_loop_stop_is_prompt_even_at_a_slow_rate():
    source = ScriptedSource()
    start = time.monotonic()
    loop, frames = run_loop(source, lambda lp, fr: len(fr) >= 1, fps=0.2)
    assert time.monotonic() - start < 4.0  # one 5 s period would be longer: wait() is interruptible
    assert len(frames) == 1

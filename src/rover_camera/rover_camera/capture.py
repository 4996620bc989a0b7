"""The capture side of the camera node, without ROS: gap accounting and the
capture thread (paced by rover_common.deadline_loop, reconnecting with
rover_common.backoff, handing frames over in a rover_common.latest_slot)."""
from __future__ import annotations

import math
import threading
import time

from rover_camera.sources import FrameSource, SourceError
from rover_common.backoff import Backoff
from rover_common.deadline_loop import Deadlines


class GapCounter:
    """Frames missing between consecutive captures, judged by the expected period.

    A gap of n periods (rounded) means n - 1 frames that should have been
    there; jitter below 1.5 periods counts nothing.
    """

    def __init__(self):
        self.dropped = 0
        self._last: float | None = None

    def add(self, t: float, period: float) -> int:
        missing = 0
        if self._last is not None and period > 0:
            gap = t - self._last
            if gap >= 1.5 * period:
                missing = int(math.floor(gap / period + 0.5)) - 1
        self._last = t
        self.dropped += missing
        return missing


# Capture states, as shown in /diagnostics.
STARTING = 'starting'
STREAMING = 'streaming'
UNAVAILABLE = 'unavailable'    # never opened yet, retrying
RECONNECTING = 'reconnecting'  # was streaming, lost, retrying
FINISHED = 'finished'          # end of a file/folder with loop off
STOPPED = 'stopped'


class CaptureLoop:
    """Reads a FrameSource on its own thread and hands frames to `on_frame`.

    on_frame(frame, stamp_ns, seq) is called on the capture thread right
    after retrieve; `stamp_ns` is `now_ns()` taken right after the grab.
    Paced sources (files, folders, the test pattern) are read at `fps` on
    absolute deadlines (rover_common.deadline_loop); live sources (cameras) as fast as they deliver.
    A failing source is closed and reopened with exponential backoff.
    """

    def __init__(self, source: FrameSource, on_frame, *, fps: float, now_ns, log,
                 backoff: Backoff | None = None, clock=time.monotonic):
        self.source = source
        self._on_frame = on_frame
        self.fps = fps
        self._now_ns = now_ns
        self._log = log
        self._clock = clock
        self.backoff = backoff or Backoff()
        self._stop = threading.Event()
        # sleeps on the stop event: stop() ends a wait at once, even at a slow rate
        self.scheduler = Deadlines(1.0 / fps, clock=clock, sleep=self._stop.wait)
        self.gaps = GapCounter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._is_open = False
        self.state = STARTING
        self.last_error = ''
        self.frames = 0
        self.losses = 0
        self.reconnects = 0
        self.failed_opens = 0
        self.outage_started: float | None = None

    # --- opening -----------------------------------------------------------
    def try_open(self) -> str | None:
        """Open the source once; the error message if that failed, else None."""
        try:
            self.source.open()
        except SourceError as exc:
            with self._lock:
                self.failed_opens += 1
                self.last_error = str(exc)
                if self.state == STARTING:
                    self.state = UNAVAILABLE
                    self.outage_started = self._clock()
            return str(exc)
        self._log_notices()
        with self._lock:
            previous = self.state
            if previous == RECONNECTING:
                self.reconnects += 1
            self._is_open = True
            self.state = STREAMING
            self.outage_started = None
        if previous in (UNAVAILABLE, RECONNECTING):
            self._log.info(f'{self.source.description} is open; streaming')
        self.backoff.reset()
        self.scheduler.reset()
        return None

    def _log_notices(self) -> None:
        for message in self.source.take_notices():
            self._log.warning(message)

    # --- thread ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='camera-capture', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.source.close()
        with self._lock:
            self.state = STOPPED

    def _run(self) -> None:
        seq = 0
        last_open_error = None
        if self.state == UNAVAILABLE:  # the caller's try_open failed and said so already
            last_open_error = self.last_error
            self._stop.wait(self.backoff.next_delay())
        while not self._stop.is_set():
            if not self._is_open:
                error = self.try_open()
                if error is not None:
                    if error != last_open_error:  # say it once per reason, not per attempt
                        self._log.warning(f'still cannot open the source: {error}; retrying')
                        last_open_error = error
                    self._stop.wait(self.backoff.next_delay())
                    continue
                last_open_error = None
            if self.source.paced:
                if self.scheduler.wait() is None or self._stop.is_set():
                    break
            try:
                if not self.source.grab():
                    self._finish()
                    break
                stamp_ns = self._now_ns()
                captured_at = self._clock()
                frame = self.source.retrieve()
            except SourceError as exc:
                self._lose(str(exc))
                last_open_error = str(exc)
                self._stop.wait(self.backoff.next_delay())
                continue
            self._log_notices()
            period = 1.0 / self.fps if self.source.paced else 1.0 / (self.source.nominal_fps() or self.fps)
            with self._lock:
                self.gaps.add(captured_at, period)
                self.frames += 1
            self._on_frame(frame, stamp_ns, seq)
            seq += 1

    def _lose(self, reason: str) -> None:
        self.source.close()
        with self._lock:
            self._is_open = False
            self.losses += 1
            self.last_error = reason
            self.state = RECONNECTING
            self.outage_started = self._clock()
        self._log.error(f'camera source lost: {reason}; reopening with backoff '
                        f'(up to every {self.backoff.maximum:g} s)')

    def _finish(self) -> None:
        self.source.close()
        with self._lock:
            self._is_open = False
            self.state = FINISHED
        self._log.info(f'{self.source.description}: end of stream (loop is off); no more frames')

    def snapshot(self) -> dict:
        with self._lock:
            outage = 0.0 if self.outage_started is None else self._clock() - self.outage_started
            return {
                'state': self.state,
                'frames_captured': self.frames,
                'dropped_in_gaps': self.gaps.dropped,
                'losses': self.losses,
                'reconnects': self.reconnects,
                'failed_opens': self.failed_opens,
                'outage_s': outage,
                'last_error': self.last_error,
            }

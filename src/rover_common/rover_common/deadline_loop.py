"""Fixed-rate pacing on absolute deadlines, without ROS.

Every loop in the project that runs at a rate (the policy's control loop, the
camera's capture of paced sources, the sim camera, the benchmarks' publishers)
paces with this module, so they share one definition of "on time":

- deadline k is origin + k * period (next = previous + period, never
  now + period), so the lateness of one tick does not shift the ones after it
  (no drift);
- a tick that comes a whole period or more late fires once, for the newest
  deadline already passed; the older ones are skipped and counted in `missed`,
  never fired in a catch-up burst;
- the clock and the sleep are injected, so tests run on fake time;
- DeadlineLoop sleeps on a threading.Event, so stop() from another thread ends
  the wait at once instead of after the current period.
"""
from __future__ import annotations

import threading
import time


class Deadlines:
    """The deadline grid of one loop: wait() sleeps until the next deadline.

    `sleep(seconds)` may return True to say "stopped" (threading.Event.wait
    does); wait() then returns None without ticking. With `immediate` the first
    wait() returns at once (deadline 0 is the first call); without, the first
    deadline is one period after the first call.
    """

    def __init__(self, period: float, *, clock=time.monotonic, sleep=time.sleep, immediate: bool = True):
        if not period > 0:
            raise ValueError(f'period must be positive, got {period}')
        self.period = float(period)
        self.immediate = immediate
        self._clock = clock
        self._sleep = sleep
        self._origin: float | None = None
        self._index = 0
        self.ticks = 0
        self.missed = 0
        self.scheduled: float | None = None  # deadline of the last tick
        self.actual: float | None = None     # when the last tick was released (clock time)

    def reset(self) -> None:
        """Start a new grid at the next wait() (after a pause such as a reconnect);
        the counters keep running."""
        self._origin = None
        self._index = 0

    def next_deadline(self) -> float | None:
        return None if self._origin is None else self._origin + self._index * self.period

    def wait(self) -> int | None:
        """Sleep until the next deadline and release its tick: the number of deadlines
        skipped to get there (0 when on time), or None if the sleep reported a stop."""
        now = self._clock()
        if self._origin is None:
            self._origin, self._index = now, (0 if self.immediate else 1)
        deadline = self._origin + self._index * self.period
        if deadline > now:
            if self._sleep(deadline - now):
                return None
            now = self._clock()
        skipped = 0
        if now - deadline >= self.period:  # overran whole periods: skip them, keep the grid
            newest = int((now - self._origin) // self.period)
            # float division can land one off on exact multiples: the newest deadline <= now
            if self._origin + (newest + 1) * self.period <= now:
                newest += 1
            elif self._origin + newest * self.period > now:
                newest -= 1
            skipped = max(0, newest - self._index)
            self._index += skipped
            self.missed += skipped
        self.scheduled = self._origin + self._index * self.period
        self.actual = now
        self._index += 1
        self.ticks += 1
        return skipped


class DeadlineLoop:
    """Calls `tick(scheduled, actual)` once per deadline, on its own thread.

    `scheduled` is the deadline (the newest passed one after an overrun),
    `actual` the clock reading when the tick was released. `wait(seconds)`
    replaces the stop event's wait in tests (True: stop).
    """

    thread_name = 'deadline-loop'

    def __init__(self, period: float, tick, *, clock=time.monotonic, wait=None, immediate: bool = True,
                 name: str | None = None):
        self._tick = tick
        self._stop = threading.Event()
        self.deadlines = Deadlines(period, clock=clock, sleep=wait or self._stop.wait, immediate=immediate)
        self._name = name or self.thread_name
        self._thread: threading.Thread | None = None

    @property
    def period(self) -> float:
        return self.deadlines.period

    @property
    def ticks(self) -> int:
        return self.deadlines.ticks

    @property
    def missed(self) -> int:
        return self.deadlines.missed

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self):
        self._thread = threading.Thread(target=self.run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Ends the loop after the tick in progress (if any); callable from any thread,
        the tick itself included."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self, max_ticks: int | None = None) -> None:
        """The loop on the calling thread (start() runs it on a new one)."""
        while not self._stop.is_set():
            if self.deadlines.wait() is None or self._stop.is_set():
                return  # stopped while waiting
            self._tick(self.deadlines.scheduled, self.deadlines.actual)
            if max_ticks is not None and self.deadlines.ticks >= max_ticks:
                return

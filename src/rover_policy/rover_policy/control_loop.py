"""A fixed-rate loop on absolute deadlines, on its own thread.

The control tick must not wait behind image callbacks or diagnostics in the ROS
executor, so it runs on a dedicated thread that sleeps until absolute deadlines
of the monotonic clock (no drift: deadline k is start + k * period). A tick that
overran a whole period does not cause a burst of catch-up ticks: the missed
deadlines are skipped and counted.

Optionally the thread asks Linux for SCHED_FIFO (`priority` 1..99) so other
processes cannot delay a tick; that needs CAP_SYS_NICE or an rtprio limit
(e.g. `@rover - rtprio 60` in /etc/security/limits.d/). Without permission the
loop runs at normal priority and reports why.
"""
import os
import threading
import time


def request_realtime(priority: int) -> str | None:
    """SCHED_FIFO for the calling thread; None on success, else the reason it failed."""
    if not hasattr(os, 'sched_setscheduler'):
        return 'SCHED_FIFO is not available on this platform'
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, ValueError) as exc:
        return f'cannot use SCHED_FIFO priority {priority}: {exc}'
    return None


class ControlLoop:
    def __init__(self, rate_hz: float, tick, clock=time.monotonic, wait=None, priority: int = 0,
                 on_priority=None):
        """`tick(scheduled, actual)` is called once per period with monotonic times;
        `on_priority(error or None)` reports the outcome of a realtime request (priority > 0)."""
        if not rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {rate_hz}')
        self.period = 1.0 / float(rate_hz)
        self._tick = tick
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.ticks = 0
        self.missed = 0
        self.priority = int(priority)
        self._on_priority = on_priority
        self._thread = None

    def start(self) -> 'ControlLoop':
        self._thread = threading.Thread(target=self.run, name='control', daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self, max_ticks: int | None = None) -> None:
        if self.priority > 0:
            error = request_realtime(self.priority)
            if self._on_priority is not None:
                self._on_priority(error)
        deadline = self._clock() + self.period
        while not self._stop.is_set():
            remaining = deadline - self._clock()
            if remaining > 0 and self._wait(remaining):
                return  # stopped while waiting
            now = self._clock()
            if now - deadline >= self.period:  # overran whole periods: skip them, keep the grid
                skipped = int((now - deadline) // self.period)
                self.missed += skipped
                deadline += skipped * self.period
            self._tick(deadline, now)
            self.ticks += 1
            deadline += self.period
            if max_ticks is not None and self.ticks >= max_ticks:
                return

"""The policy's control loop: a fixed-rate loop on absolute deadlines, on its own thread.

The control tick must not wait behind image callbacks or diagnostics in the ROS
executor, so it runs on a dedicated thread that sleeps until absolute deadlines
of the monotonic clock (rover_common.deadline_loop, shared with every paced loop:
no drift, and a tick that overran a whole period does not cause a burst of
catch-up ticks: the missed deadlines are skipped and counted).

Optionally the thread asks Linux for SCHED_FIFO (`priority` 1..99) so other
processes cannot delay a tick; that needs CAP_SYS_NICE or an rtprio limit
(e.g. `@rover - rtprio 60` in /etc/security/limits.d/). Without permission the
loop runs at normal priority and reports why.
"""
import os
import time

from rover_common.deadline_loop import DeadlineLoop


def request_realtime(priority: int) -> str | None:
    """SCHED_FIFO for the calling thread; None on success, else the reason it failed."""
    if not hasattr(os, 'sched_setscheduler'):
        return 'SCHED_FIFO is not available on this platform'
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, ValueError) as exc:
        return f'cannot use SCHED_FIFO priority {priority}: {exc}'
    return None


class ControlLoop(DeadlineLoop):
    """The policy's control tick at `rate_hz`; the first deadline is one period after start."""

    thread_name = 'control'

    def __init__(self, rate_hz: float, tick, clock=time.monotonic, wait=None, priority: int = 0,
                 on_priority=None):
        """`tick(scheduled, actual)` is called once per period with monotonic times;
        `on_priority(error or None)` reports the outcome of a realtime request (priority > 0)."""
        if not rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {rate_hz}')
        super().__init__(1.0 / float(rate_hz), tick, clock=clock, wait=wait, immediate=False)
        self.priority = int(priority)
        self._on_priority = on_priority

    def run(self, max_ticks: int | None = None) -> None:
        if self.priority > 0:  # on the loop's own thread: the request applies to the calling thread
            error = request_realtime(self.priority)
            if self._on_priority is not None:
                self._on_priority(error)
        super().run(max_ticks)

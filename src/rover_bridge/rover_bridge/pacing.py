"""When the serial link sends the next COMMAND: a fixed rate, phase-locked to the publisher.

Without the lock a 30 Hz publisher and a 30 Hz link drift apart and a command
waits up to a whole period for the wire. A fresh command goes out at once unless
the last COMMAND was itself fresh and is less than (period - sync_margin) old: a
repeat (the keep-alive that feeds the board's watchdog) never holds a new value
back. (It used to when the command came more than sync_window after the repeat:
one publisher wake-up 10 ms late on a loaded machine then cost the lock, and the
commands waited most of a period for up to a second while the phase slid back by
sync_margin a period; a CI run caught it.) A late publication still delays the
next few by what is left of the flood cap, less by sync_margin each period.
After a fresh send the next repeat waits period + sync_window, so publisher
jitter does not let a repeat take the fresh command's slot. A flood gives at most
1 / (period - sync_margin), about 31 Hz, and the wire carries at most one repeat
and one fresh command per period + sync_window. Without fresh commands the last
one is repeated every period; after a stall the repeats re-anchor rather than burst.

Pure: the caller passes the time and says whether a fresh command waits.
"""
from __future__ import annotations


class SendPacer:
    def __init__(self, rate_hz: float, sync_margin: float = 0.001, sync_window: float = 0.005):
        self.period = 1.0 / rate_hz
        self.sync_margin = sync_margin
        self.sync_window = sync_window
        self.next_repeat = 0.0
        self.last_send: float | None = None
        self.last_was_fresh = False

    def restart(self, now: float) -> None:
        """The link is up (again): the first COMMAND goes out at once."""
        self.next_repeat = now

    def earliest_fresh(self, now: float) -> float:
        """When a fresh command may go out."""
        if self.last_send is None or not self.last_was_fresh:
            return float('-inf')  # after a repeat (or nothing): at once
        return self.last_send + self.period - self.sync_margin  # the flood cap

    def deadline(self, now: float, fresh_waiting: bool) -> float:
        """When the next COMMAND is due."""
        return min(self.next_repeat, self.earliest_fresh(now)) if fresh_waiting else self.next_repeat

    def fresh_due(self, now: float, fresh_waiting: bool) -> bool:
        return fresh_waiting and now >= self.earliest_fresh(now)

    def repeat_due(self, now: float) -> bool:
        return now >= self.next_repeat

    def sent(self, now: float, fresh: bool) -> None:
        """A COMMAND went out at `now` (`fresh`: a new value rather than a repeat)."""
        self.next_repeat += self.period
        if fresh:  # follow the publisher's phase
            self.next_repeat = now + self.period + self.sync_window
        elif self.next_repeat <= now:  # late by a whole period (stall): re-anchor, never burst
            self.next_repeat = now + self.period
        self.last_send = now
        self.last_was_fresh = fresh

"""A one-item hand-over from a producer thread to a consumer, without ROS.

The producer never waits: an item not taken before the next one arrives is
replaced and counted (camera capture -> publisher, frames -> inference).
"""
import threading


class LatestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self._replaced = 0     # since the last take
        self.overwritten = 0   # in all

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.overwritten += 1
                self._replaced += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """(the newest item, how many items it replaced since the previous take);
        (None, 0) on timeout, or when closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            replaced, self._replaced = (self._replaced, 0) if item is not None else (0, self._replaced)
            return item, replaced

    def get(self, timeout: float | None = None):
        """The newest item, or None on timeout or when closed and empty."""
        return self.take(timeout)[0]

    def close(self) -> None:
        """Wakes every waiting take(); later ones return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

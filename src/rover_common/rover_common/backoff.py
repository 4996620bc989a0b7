"""Exponential delays between reconnect attempts (camera, serial link), without ROS."""


class Backoff:
    """Exponential delays between reconnect attempts: initial, 2x, 4x ... capped."""

    def __init__(self, initial: float = 0.25, maximum: float = 5.0, factor: float = 2.0):
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self.factor = factor
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial

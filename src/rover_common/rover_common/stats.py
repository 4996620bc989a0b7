"""Rolling statistics for diagnostics and benchmarks: rates, intervals, latencies."""
import collections
import threading
import time

import numpy as np


class RollingStats:
    """The last `window` samples of a quantity, thread-safe, with percentiles."""

    def __init__(self, window: int = 300):
        self._samples = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._samples.append(float(value))

    def __len__(self):
        return len(self._samples)

    def percentile(self, q: float) -> float:
        with self._lock:
            if not self._samples:
                return float('nan')
            return float(np.percentile(np.fromiter(self._samples, float), q))

    def mean(self) -> float:
        with self._lock:
            return float(np.mean(self._samples)) if self._samples else float('nan')


class RateMeter:
    """Event rate and inter-event intervals over a sliding window of ticks."""

    def __init__(self, window: int = 300, clock=time.monotonic):
        self._clock = clock
        self._ticks = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._ticks.append(self._clock() if now is None else now)
            self.count += 1

    def rate_hz(self, now: float | None = None, stale_after: float = 2.0) -> float:
        """Events per second; 0 when nothing arrived for `stale_after` seconds."""
        now = self._clock() if now is None else now
        with self._lock:
            if not self._ticks or now - self._ticks[-1] > stale_after:
                return 0.0
            if len(self._ticks) < 2:
                return 0.0
            span = self._ticks[-1] - self._ticks[0]
            return (len(self._ticks) - 1) / span if span > 0 else 0.0

    def intervals(self) -> np.ndarray:
        with self._lock:
            return np.diff(np.fromiter(self._ticks, float))

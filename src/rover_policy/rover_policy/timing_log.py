"""Per-tick and per-chunk timing records as JSON lines, for the control benchmark.

Records are buffered in memory by the real-time threads and written by a
non-real-time caller (`flush`), so logging never delays a tick.
"""
import json
import threading


class TimingLog:
    def __init__(self, path: str):
        self.path = path
        self._records = []
        self._lock = threading.Lock()
        self._file = open(path, 'w') if path else None

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def add(self, **record) -> None:
        if self._file is not None:
            with self._lock:
                self._records.append(record)

    def flush(self) -> None:
        if self._file is None:
            return
        with self._lock:
            records, self._records = self._records, []
        for record in records:
            self._file.write(json.dumps(record) + '\n')
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def read(path: str):
    """(ticks, chunks): lists of dicts from a timing log."""
    ticks, chunks = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                (ticks if record.get('type') == 'tick' else chunks).append(record)
    return ticks, chunks

"""Turn predicted action chunks into one action per control tick.

Action i of a chunk predicted from a frame captured at `stamp` is due at
`stamp + i / control_rate`. At a tick at time T the action in use is the latest
one that is due, i = floor((T - stamp) * control_rate); the actions before it
are in the past and skipped, which is how a slow inference stays aligned with
the world instead of replaying old actions late. Only the first
`n_action_steps` actions of a chunk are used; after them the chunk is spent.

Without temporal ensembling the newest chunk (by capture stamp) replaces the
older ones. With it (LeRobot's ACTTemporalEnsembler, weights exp(-coeff * k)
with k = 0 for the oldest chunk), the action at T is the weighted mean of the
due action of every chunk still covering T; as in LeRobot, ensembling uses the
whole chunk (n_action_steps does not apply).

Times are plain float seconds on one clock (ROS time of the capture stamps).
"""
import bisect
import math
import threading

import numpy as np

# Float rounding slack so a tick exactly on a due time uses that action.
_DUE_TOLERANCE_S = 1e-6


class ChunkScheduler:
    def __init__(self, control_rate_hz: float, n_action_steps: int,
                 temporal_ensemble_coeff: float | None = None, max_chunks: int = 256):
        if not control_rate_hz > 0:
            raise ValueError(f'control_rate_hz must be > 0, got {control_rate_hz}')
        if n_action_steps < 1:
            raise ValueError(f'n_action_steps must be >= 1, got {n_action_steps}')
        if temporal_ensemble_coeff is not None and not math.isfinite(temporal_ensemble_coeff):
            # any finite value is LeRobot's: negative ones favour the newer chunks
            raise ValueError(f'temporal_ensemble_coeff must be None or finite, got {temporal_ensemble_coeff}')
        self.rate = float(control_rate_hz)
        self.n_action_steps = int(n_action_steps)
        self.coeff = temporal_ensemble_coeff
        self._max_chunks = max_chunks
        self._chunks = []  # (stamp, actions [chunk, A]) sorted by stamp, oldest first
        self._lock = threading.Lock()

    @property
    def ensembling(self) -> bool:
        return self.coeff is not None

    def _usable_steps(self, actions: np.ndarray) -> int:
        return len(actions) if self.ensembling else min(self.n_action_steps, len(actions))

    def index_at(self, stamp: float, now: float) -> int:
        """Index of the action of a chunk stamped `stamp` that is due at `now` (may be < 0)."""
        return math.floor((now - stamp) * self.rate + _DUE_TOLERANCE_S)

    def add_chunk(self, actions: np.ndarray, stamp: float) -> bool:
        """Store a chunk [chunk_size, action_dim]; False when it is older than the newest one."""
        actions = np.array(actions, dtype=np.float64, copy=True)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f'expected actions [chunk, action_dim], got shape {actions.shape}')
        with self._lock:
            if not self.ensembling:
                if self._chunks and stamp <= self._chunks[-1][0]:
                    return False
                self._chunks = [(stamp, actions)]
                return True
            stamps = [s for s, _ in self._chunks]
            if stamp in stamps:
                return False
            self._chunks.insert(bisect.bisect(stamps, stamp), (stamp, actions))
            del self._chunks[:-self._max_chunks]
            return True

    def clear(self) -> None:
        with self._lock:
            self._chunks = []

    def _covering(self, now: float):
        """(stamp, index, actions) of each chunk whose usable window covers `now`, oldest first."""
        result = []
        for stamp, actions in self._chunks:
            index = self.index_at(stamp, now)
            if 0 <= index < self._usable_steps(actions):
                result.append((stamp, index, actions))
        return result

    def _prune(self, now: float) -> None:
        self._chunks = [(s, a) for s, a in self._chunks
                        if self.index_at(s, now) < self._usable_steps(a)]

    def action_at(self, now: float) -> np.ndarray | None:
        """The action for a tick at `now`, or None when no chunk covers it."""
        return self.lookup(now)[0]

    def lookup(self, now: float):
        """(action or None, stamp of the newest chunk used, index used in it, queue depth)."""
        with self._lock:
            self._prune(now)
            covering = self._covering(now)
            if not covering:
                return None, None, None, 0
            stamp, index, actions = covering[-1]
            depth = self._usable_steps(actions) - index - 1
            if len(covering) == 1:
                return actions[index].copy(), stamp, index, depth
            weights = np.exp(-self.coeff * np.arange(len(covering)))
            stacked = np.stack([a[i] for _, i, a in covering])
            blended = (weights[:, None] * stacked).sum(axis=0) / weights.sum()
            return blended, stamp, index, depth

    def __len__(self):
        with self._lock:
            return len(self._chunks)

"""Episodes and time alignment: plain numpy on the series a bag holds (no I/O).

Every dataset frame is a camera frame. Its observation.state and action are the rover/state
and rover/cmd values *valid at its capture stamp*: the last message stamped at or before
it (a command holds until the next one), never the nearest one by log time, which would
leak the future into the observation. Frames are put on the dataset's fixed grid
(t0 + k / fps, what LeRobot requires): a grid slot takes the newest frame captured by
the middle of the slot; a slot with no new frame repeats the previous one, a frame that
lost its slot to a newer one is dropped. Both are counted and reported.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .bagread import BagData, Series
from .errors import DatasetError

NS = 1_000_000_000
CLOCK_JUMP_NS = NS          # capture stamp vs log time may wander, not jump by a second
MANUAL = 'manual'
DUPLICATE = 'duplicate or out-of-order capture stamp'


@dataclass
class Options:
    fps: int = 30
    include_autonomous: bool = False
    max_age_s: float = 0.5          # older state/command = the link was down: frame unusable
    max_gap_s: float = 0.5          # a longer hole in the frames ends the episode
    min_frames: int = 2


@dataclass
class Episode:
    bag: str
    source: str                     # 'markers' | 'mode' | 'bag'
    positions: np.ndarray           # per dataset frame: image message position in the bag
    stamps: np.ndarray              # per dataset frame: capture stamp (ns) of that image
    state: np.ndarray               # float32 [n, 2]
    action: np.ndarray              # float32 [n, 2]
    repeated: int = 0
    dropped: int = 0
    bag_start: int = 0

    @property
    def length(self) -> int:
        return len(self.positions)


@dataclass
class Plan:
    episodes: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)   # camera frames left out, by reason
    notes: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)


def valid_at(series: Series, t: np.ndarray) -> np.ndarray:
    """Index of the last message with time <= t (-1 where there is none yet)."""
    return np.searchsorted(series.times, t, side='right') - 1


def check_clock(bag: BagData) -> None:
    """Refuse stamps that jump against the recorder's clock: such frames cannot be aligned."""
    drift = bag.image_stamps - bag.image_log
    jumps = np.flatnonzero(np.abs(np.diff(drift)) > CLOCK_JUMP_NS)
    if jumps.size:
        i = int(jumps[0])
        step = (bag.image_stamps[i + 1] - bag.image_stamps[i]) / NS
        logged = (bag.image_log[i + 1] - bag.image_log[i]) / NS
        raise DatasetError(
            f'{bag.path}: clock jump in {bag.image_topic} at frame {i + 1}: capture stamps move '
            f'{step:+.3f} s while the recording moves {logged:+.3f} s; cannot align (split the bag there)')
    # the commands must be stamped on the camera's clock, or "valid at capture time" means nothing
    lo, hi = bag.image_stamps.min(), bag.image_stamps.max()
    if bag.cmd.times[0] > hi + CLOCK_JUMP_NS or bag.cmd.times[-1] < lo - CLOCK_JUMP_NS:
        raise DatasetError(
            f'{bag.path}: {bag.cmd_topic} stamps ({bag.cmd.times[0] / NS:.3f}..{bag.cmd.times[-1] / NS:.3f} s) '
            f'do not overlap the camera stamps ({lo / NS:.3f}..{hi / NS:.3f} s): different clocks?')


def _windows(bag: BagData, opts: Options) -> tuple[list, str]:
    """Episode windows [start, end) in stamp time, and where they came from."""
    end_of_bag = int(bag.image_stamps.max()) + 1
    if bag.episode is not None:
        windows, start = [], None
        for t, on in zip(bag.episode.times, bag.episode.values):
            if on and start is None:
                start = int(t)
            elif not on and start is not None:
                windows.append((start, int(t)))
                start = None
        if start is not None:  # recording stopped inside an episode: it ends with the bag
            windows.append((start, end_of_bag))
        return windows, 'markers'
    if bag.mode is not None:
        segments = []  # (start, end, mode); the first value held from the start (transient local)
        begin = min(int(bag.image_stamps.min()), int(bag.mode.times[0]))
        for k, (t, mode) in enumerate(zip(bag.mode.times, bag.mode.values)):
            t0 = begin if k == 0 else int(t)
            t1 = int(bag.mode.times[k + 1]) if k + 1 < len(bag.mode) else end_of_bag
            if segments and segments[-1][2] == mode:  # the same mode republished: one segment
                segments[-1] = (segments[-1][0], t1, mode)
            else:
                segments.append((t0, t1, mode))
        return [(a, b) for a, b, m in segments if m == MANUAL or opts.include_autonomous], 'mode'
    return [(int(bag.image_stamps.min()), end_of_bag)], 'bag'


def _value_at(series: Series | None, t: np.ndarray, default):
    """Value valid at each t; before the first message, the first value (latched topics)."""
    if series is None:
        return np.full(t.shape, default, dtype=object)
    idx = np.maximum(valid_at(series, t), 0)
    return series.values[idx]


def plan_bag(bag: BagData, opts: Options, skipped: Counter) -> list[Episode]:
    check_clock(bag)
    stamps = bag.image_stamps
    n = len(stamps)
    reason = np.full(n, '', dtype=object)

    # a frame stamped no later than one received before it is a duplicate or arrived out of order
    newest_before = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], stamps[:-1]]))
    reason[stamps <= newest_before] = DUPLICATE

    windows, source = _windows(bag, opts)
    in_window = np.zeros(n, bool)
    window_id = np.full(n, -1)
    for w, (a, b) in enumerate(windows):
        sel = (stamps >= a) & (stamps < b)
        in_window |= sel
        window_id[sel] = w
    reason[(reason == '') & ~in_window] = 'outside any episode'

    mode = _value_at(bag.mode, stamps, MANUAL)
    if not opts.include_autonomous:
        reason[(reason == '') & (mode != MANUAL)] = 'not manual (assisted/autonomous)'
    estop = _value_at(bag.estop, stamps, False).astype(bool)
    reason[(reason == '') & estop] = 'e-stop engaged'

    max_age = int(opts.max_age_s * NS)
    picks = {}
    for name, series in (('command', bag.cmd), ('state', bag.state)):
        idx = valid_at(series, stamps)
        reason[(reason == '') & (idx < 0)] = f'no {name} yet'
        age = stamps - series.times[np.maximum(idx, 0)]
        reason[(reason == '') & (idx >= 0) & (age > max_age)] = f'{name} older than {opts.max_age_s:g} s'
        picks[name] = np.maximum(idx, 0)

    for r in reason[reason != '']:
        skipped[r] += 1

    # runs of usable frames: any left-out frame (e-stop, autonomous, stale, ...) or a long hole
    # in the frames ends a run; a duplicate frame does not
    runs, current = [], []
    max_gap = int(opts.max_gap_s * NS)
    for i in range(n):
        if reason[i] != '' and reason[i] != DUPLICATE:
            current = _close(runs, current)
            continue
        if reason[i] == DUPLICATE:
            continue
        if current and (window_id[i] != window_id[current[-1]] or stamps[i] - stamps[current[-1]] > max_gap):
            current = _close(runs, current)
        current.append(i)
    _close(runs, current)

    episodes = []
    for run in runs:
        slots, repeated, dropped = resample(stamps[run], opts.fps)
        if len(slots) < opts.min_frames:
            skipped[f'episode shorter than {opts.min_frames} frames'] += len(run)
            continue
        pos = np.asarray(run)[slots]
        episodes.append(Episode(
            bag=bag.path, source=source, positions=pos, stamps=stamps[pos],
            state=bag.state.values[picks['state'][pos]], action=bag.cmd.values[picks['command'][pos]],
            repeated=repeated, dropped=dropped, bag_start=int(stamps.min())))
    return episodes


def _close(runs: list, current: list) -> list:
    if current:
        runs.append(current)
    return []


def resample(stamps: np.ndarray, fps: int) -> tuple[np.ndarray, int, int]:
    """Grid slots t0 + k/fps -> index of the newest frame captured by the middle of the slot.

    Returns (indices into `stamps` per slot, slots that repeat a frame, frames never used).
    """
    period = NS / fps
    t0 = int(stamps[0])
    n_slots = int(np.floor((int(stamps[-1]) - t0) / period + 0.5)) + 1
    grid = t0 + np.arange(n_slots) * period
    idx = np.searchsorted(stamps, grid + period / 2, side='left') - 1
    repeated = int(np.sum(idx[1:] == idx[:-1]))
    dropped = len(stamps) - len(np.unique(idx))
    return idx, repeated, dropped


def plan(bags: list[BagData], opts: Options) -> Plan:
    result = Plan()
    for bag in bags:
        result.notes.extend(bag.notes)
        result.episodes.extend(plan_bag(bag, opts, result.skipped))
    if not result.episodes:
        why = ', '.join(f'{k}: {v}' for k, v in result.skipped.most_common()) or 'no frames'
        raise DatasetError(f'no usable episode in the bag(s) ({why})')
    return result

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rover_policy.chunk_scheduler import ChunkScheduler

RATE = 30.0
DT = 1.0 / RATE


def chunk(base, length=10):
    """Actions whose values encode (chunk id, index): [base + i, -(base + i)]."""
    values = base + np.arange(length, dtype=float)
    return np.stack([values, -values], axis=1)


def test_empty_is_none():
    scheduler = ChunkScheduler(RATE, 10)
    assert scheduler.action_at(100.0) is None
    assert scheduler.lookup(100.0) == (None, None, None, 0)


def test_actions_are_aligned_to_the_capture_stamp():
    scheduler = ChunkScheduler(RATE, 10)
    stamp = 1000.0
    scheduler.add_chunk(chunk(0), stamp)
    assert scheduler.action_at(stamp - 0.001) is None          # before the frame: nothing due
    assert scheduler.action_at(stamp)[0] == 0
    assert scheduler.action_at(stamp + 0.5 * DT)[0] == 0
    assert scheduler.action_at(stamp + DT)[0] == 1             # exactly due
    assert scheduler.action_at(stamp + 3 * DT)[0] == 3
    # A tick that comes after a slow inference skips the actions that are past.
    action, used_stamp, index, depth = scheduler.lookup(stamp + 0.1 + 0.004)
    assert (action[0], used_stamp, index, depth) == (3, stamp, 3, 6)


def test_only_n_action_steps_are_used():
    scheduler = ChunkScheduler(RATE, 4)
    scheduler.add_chunk(chunk(0), 0.0)
    assert scheduler.action_at(3 * DT)[0] == 3
    assert scheduler.action_at(4 * DT) is None   # spent: neutral until a new chunk comes
    assert len(scheduler) == 0                   # and it was dropped


def test_newest_chunk_replaces_older_and_late_old_chunks_are_ignored():
    scheduler = ChunkScheduler(RATE, 10)
    scheduler.add_chunk(chunk(0), 0.0)
    assert scheduler.add_chunk(chunk(100), 2 * DT)
    assert scheduler.action_at(3 * DT)[0] == 101
    assert not scheduler.add_chunk(chunk(200), 1 * DT)  # older frame finished later
    assert scheduler.action_at(3 * DT)[0] == 101
    scheduler.clear()
    assert scheduler.action_at(3 * DT) is None


def test_temporal_ensembling_uses_lerobot_weights_oldest_first():
    coeff = 0.5
    scheduler = ChunkScheduler(RATE, 1, temporal_ensemble_coeff=coeff)  # n_action_steps unused
    scheduler.add_chunk(chunk(0), 0.0)
    scheduler.add_chunk(chunk(100), DT)
    scheduler.add_chunk(chunk(1000), 2 * DT)
    now = 2 * DT
    # due actions: chunk 0 index 2 (=2), chunk 100 index 1 (=101), chunk 1000 index 0 (=1000)
    weights = np.exp(-coeff * np.arange(3))
    expected = (weights * np.array([2, 101, 1000])).sum() / weights.sum()
    action, stamp, index, _ = scheduler.lookup(now)
    assert action[0] == pytest.approx(expected) and action[1] == pytest.approx(-expected)
    assert (stamp, index) == (2 * DT, 0)
    # a chunk inserted out of order still gets its place by stamp
    scheduler.add_chunk(chunk(50), 0.5 * DT)
    due = [2, 51, 101, 1000]
    weights = np.exp(-coeff * np.arange(4))
    assert scheduler.action_at(now)[0] == pytest.approx((weights * due).sum() / weights.sum())
    # zero coefficient = plain mean; a chunk past its whole length stops counting
    flat = ChunkScheduler(RATE, 1, temporal_ensemble_coeff=0.0)
    flat.add_chunk(chunk(0, length=3), 0.0)
    flat.add_chunk(chunk(10, length=3), DT)
    assert flat.action_at(2 * DT)[0] == pytest.approx((2 + 11) / 2)
    assert flat.action_at(3 * DT)[0] == pytest.approx(12)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        ChunkScheduler(0, 10)
    with pytest.raises(ValueError):
        ChunkScheduler(RATE, 0)
    with pytest.raises(ValueError):
        ChunkScheduler(RATE, 10, temporal_ensemble_coeff=float('nan'))
    assert ChunkScheduler(RATE, 1, temporal_ensemble_coeff=-0.5).ensembling   # valid in LeRobot
    with pytest.raises(ValueError):
        ChunkScheduler(RATE, 10).add_chunk(np.zeros(5), 0.0)


@settings(max_examples=200, deadline=None)
@given(stamp=st.floats(1e9, 2e9), offset=st.floats(0, 20 * DT), steps=st.integers(1, 10))
def test_due_index_property(stamp, offset, steps):
    """The action used is the latest due one, never a future one, never past n_action_steps."""
    scheduler = ChunkScheduler(RATE, steps)
    scheduler.add_chunk(chunk(0), stamp)
    now = stamp + offset
    action, _, index, depth = scheduler.lookup(now)
    expected = math.floor((now - stamp) * RATE + 1e-6)
    if expected >= steps:
        assert action is None
    else:
        assert index == expected and action[0] == expected and depth == steps - expected - 1
        # 1 us tolerance both ways: stamps near 1e9 s (ROS time) resolve to ~0.2 us in float64
        assert stamp + index * DT <= now + 1e-6 and now - 1e-6 < stamp + (index + 1) * DT

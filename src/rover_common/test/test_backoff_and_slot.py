"""Backoff and the latest-item hand-over (camera, serial link, inference), without ROS."""
import threading

from rover_common.backoff import Backoff
from rover_common.latest_slot import LatestSlot


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(initial=0.25, maximum=1.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    backoff.reset()
    assert backoff.next_delay() == 0.25
    assert Backoff(initial=0.25, maximum=0.1).next_delay() == 0.1


def test_latest_slot_keeps_the_newest_and_counts_overwrites():
    slot = LatestSlot()
    assert slot.get(timeout=0.01) is None
    slot.put(1)
    slot.put(2)
    slot.put(3)
    assert slot.get(timeout=0.01) == 3 and slot.overwritten == 2
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.get(timeout=5)))
    consumer.start()
    slot.put(4)
    consumer.join(5)
    assert got == [4]
    slot.close()
    assert slot.get(timeout=5) is None  # closed: returns at once


def test_take_counts_the_items_replaced_since_the_previous_take():
    slot = LatestSlot()
    for item in range(4):
        slot.put(item)
    assert slot.take(timeout=0.01) == (3, 3)
    slot.put(4)
    assert slot.take(timeout=0.01) == (4, 0)
    assert slot.take(timeout=0.01) == (None, 0)  # timed out: nothing replaced
    slot.put(5)
    slot.put(6)
    slot.close()
    assert slot.take() == (6, 1)  # closed: what is there is still handed over
    assert slot.take() == (None, 0)  # closed and empty: at once, no timeout needed

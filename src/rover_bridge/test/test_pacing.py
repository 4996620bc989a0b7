"""SendPacer in fake time: the serial link's COMMAND schedule, phase-locked to the publisher."""
import math
import random

import pytest

from rover_bridge.pacing import SendPacer

P = 1 / 30
MARGIN, WINDOW = 0.001, 0.005


def pacer() -> SendPacer:
    return SendPacer(30.0, sync_margin=MARGIN, sync_window=WINDOW)


def run_link(pacer: SendPacer, publications: list[float], end: float) -> list[tuple[float, bool]]:
    """The link thread's loop in fake time: it wakes at a publication or at the pacer's deadline
    and sends when a COMMAND is due (any send carries the newest value). Returns [(time, fresh)]."""
    sends, waiting, now, i = [], False, 0.0, 0
    pacer.restart(now)
    while True:
        publication = publications[i] if i < len(publications) else math.inf
        now = max(now, min(publication, pacer.deadline(now, waiting)))
        if now > end:
            return sends
        if now == publication:
            waiting, i = True, i + 1
        fresh = pacer.fresh_due(now, waiting)
        if fresh or pacer.repeat_due(now):
            waiting = False
            pacer.sent(now, fresh)
            sends.append((now, fresh))


def test_without_publisher_the_command_repeats_every_period_from_the_first_at_once():
    sends = run_link(pacer(), [], end=0.99)
    assert sends[0] == (0.0, False) and not any(fresh for _, fresh in sends)
    assert [t for t, _ in sends] == pytest.approx([k * P for k in range(len(sends))])
    assert len(sends) == 30


def test_a_stalled_loop_re_anchors_instead_of_bursting():
    p = pacer()
    p.restart(0.0)
    p.sent(0.0, fresh=False)
    p.sent(0.5, fresh=False)  # the thread did not run for 15 periods
    assert not p.repeat_due(0.5 + P - 1e-9) and p.repeat_due(0.5 + P)


def test_a_fresh_command_goes_out_once_the_last_fresh_one_is_period_minus_margin_old():
    p = pacer()
    p.restart(0.0)
    p.sent(0.0, fresh=True)
    assert not p.fresh_due(0.010, True) and p.deadline(0.010, True) == pytest.approx(P - MARGIN)
    assert p.fresh_due(P - MARGIN, True)
    assert p.deadline(0.010, False) == pytest.approx(P + WINDOW)  # nothing waiting: the repeat


@pytest.mark.parametrize('after', [0.0, WINDOW, 0.020, P - 0.002])
def test_a_repeat_never_holds_a_fresh_command_back(after):
    p = pacer()
    p.restart(0.0)
    p.sent(0.0, fresh=False)
    assert p.fresh_due(after, True) and p.deadline(after, True) == float('-inf')
    p.sent(after, fresh=True)
    assert not p.fresh_due(after + 0.001, True)  # a fresh send is never replaced
    assert p.deadline(after + 0.001, True) == pytest.approx(after + P - MARGIN)


def test_after_a_fresh_send_the_repeat_waits_a_period_and_the_window():
    p = pacer()
    p.restart(0.0)
    p.sent(0.0, fresh=False)
    p.sent(0.020, fresh=True)
    assert p.deadline(0.021, False) == pytest.approx(0.020 + P + WINDOW)
    assert not p.repeat_due(0.020 + P + WINDOW - 1e-9) and p.repeat_due(0.020 + P + WINDOW)


def test_locks_to_a_publisher_of_another_phase_and_its_commands_then_go_out_at_once():
    rng = random.Random(3)
    publications = [0.0137 + k * P + rng.uniform(-0.0004, 0.0004) for k in range(90)]
    # (two publications are then never closer than period - margin)
    sends = run_link(pacer(), publications, end=3.1)
    latency = [min(t for t, _ in sends if t >= pub) - pub for pub in publications]
    assert latency == [0.0] * len(publications)  # from the first: the repeat at 0 does not hold it back
    locked = [s for s in sends if publications[0] <= s[0] <= publications[-1]]
    assert all(fresh for _, fresh in locked) and len(locked) == len(publications)  # no extra repeats
    # when the publisher stops, the repeats take over a period and the window after its last command
    after = [t for t, _ in sends if t > publications[-1]]
    assert after[0] == pytest.approx(publications[-1] + P + WINDOW)
    assert after[1] - after[0] == pytest.approx(P)


def test_a_publisher_waking_late_keeps_the_lock():
    """One publication 12 ms late (the repeat goes out first, 7 ms before it): it goes out at
    once, the next ones wait only what is left of the flood cap, and the lock is back after
    as many periods as the lateness has sync_margins."""
    late = 0.012
    publications = [0.0137 + k * P + (late if k == 30 else 0.0) for k in range(90)]
    sends = run_link(pacer(), publications, end=3.1)
    latency = [min(t for t, _ in sends if t >= pub) - pub for pub in publications]
    assert latency[30] == 0.0  # not held back by the repeat sent at 30 + window
    assert any(t == pytest.approx(publications[29] + P + WINDOW) and not f for t, f in sends)
    after = latency[31:]
    assert max(after) <= late - MARGIN + 1e-9
    assert all(b <= a for a, b in zip(after, after[1:]))  # shrinking a margin a period
    assert after[math.ceil(late / MARGIN):] == [0.0] * (len(after) - math.ceil(late / MARGIN))


def test_a_flood_of_fresh_commands_is_capped_near_one_per_period():
    publications = [k * 0.0001 for k in range(1, 20000)]  # 10 kHz for 2 s
    sends = run_link(pacer(), publications, end=2.0)
    fresh = sends[1:]  # after the first repeat, which the first publication replaces at once
    assert sends[0] == (0.0, False) and fresh[0] == (0.0001, True) and all(f for _, f in fresh)
    rate = (len(fresh) - 1) / (fresh[-1][0] - fresh[0][0])
    assert rate == pytest.approx(1 / (P - MARGIN))  # about 31 Hz

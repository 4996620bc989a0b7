"""Decide per control tick whether the policy's action is published, or neutral.

Stale or missing input means neutral, never the last command. Neutral is
always (0, 0): trims belong to the bridge and the firmware, so no setting here
can turn "neutral" into motion.
"""
import math
from dataclasses import dataclass

ESTOP = 'estop'
NO_FRAME = 'no_frame'
STALE_FRAME = 'stale_frame'
QUEUE_EMPTY = 'queue_empty'
INVALID_ACTION = 'invalid_action'


@dataclass(frozen=True)
class Decision:
    steering: float
    throttle: float
    neutral_reason: str | None  # None: the policy's action is sent

    @property
    def neutral(self) -> bool:
        return self.neutral_reason is not None


class SafetyGate:
    """Applies the neutral rules and counts transitions into neutral (events)."""

    def __init__(self, max_frame_age: float):
        self.max_frame_age = float(max_frame_age)
        self.neutral_events = 0
        self.last_reason: str | None = None
        self._was_neutral = None

    def decide(self, now: float, estop: bool, newest_frame_stamp: float | None,
               action: tuple | None) -> Decision:
        """`action` is (steering, throttle) from the scheduler or None when its queue is empty."""
        reason = self.reason(now, estop, newest_frame_stamp, action)
        neutral = reason is not None
        if neutral and self._was_neutral is False:
            self.neutral_events += 1
        self._was_neutral = neutral
        self.last_reason = reason
        if neutral:
            return Decision(0.0, 0.0, reason)
        return Decision(float(action[0]), float(action[1]), None)

    def reason(self, now, estop, newest_frame_stamp, action) -> str | None:
        if estop:
            return ESTOP
        if newest_frame_stamp is None:
            return NO_FRAME
        if now - newest_frame_stamp > self.max_frame_age:
            return STALE_FRAME
        if action is None:
            return QUEUE_EMPTY
        if not all(math.isfinite(float(v)) for v in action):
            return INVALID_ACTION
        return None

"""Which command drives the car: the human's, the policy's, or neutral (no ROS here).

Semantics follow twist_mux, the arbiter ROS users know: each source is used
only while its newest message is fresher than its own timeout (receive time,
not header stamps, which teleop tools may leave at 0), and the human source
has the higher priority. On top of that, driving modes as in donkeycar
(user / local_angle / local pilot):

- manual:     the human drives; the policy may infer and publish, nothing of it is applied.
- assisted:   the policy steers, the human throttles; a human steering input beyond
              `takeover_deadband` takes the steering back.
- autonomous: the policy drives; any fresh human command takes over both axes
              (twist_mux: the higher priority wins while fresh).

Stale sources give neutral, never an older command. An engaged e-stop drops
to manual and forgets every held command, so neither a release nor a
policy that kept publishing can move the car: only a command received after
the release can.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MANUAL = 'manual'
ASSISTED = 'assisted'
AUTONOMOUS = 'autonomous'
MODES = (MANUAL, ASSISTED, AUTONOMOUS)

# Who produced an applied command (published on rover/cmd_source and in diagnostics).
HUMAN = 'human'
POLICY = 'policy'
POLICY_STEERING_HUMAN_THROTTLE = 'policy_steering+human_throttle'
NEUTRAL = 'neutral'


@dataclass
class _Held:
    steering: float
    throttle: float
    received: float


@dataclass(frozen=True)
class Decision:
    steering: float
    throttle: float
    source: str           # HUMAN / POLICY / POLICY_STEERING_HUMAN_THROTTLE / NEUTRAL
    reason: str = ''      # why neutral (or why the human took over)


def _finite(*values) -> bool:
    return all(math.isfinite(v) for v in values)


class Arbiter:
    def __init__(self, mode: str = MANUAL, human_timeout: float = 0.5, policy_timeout: float = 0.25,
                 takeover_deadband: float = 0.05):
        self.mode = MANUAL
        self.estop = False
        self.set_mode(mode)
        self.human_timeout = float(human_timeout)
        self.policy_timeout = float(policy_timeout)
        self.takeover_deadband = float(takeover_deadband)
        self._human: _Held | None = None
        self._policy: _Held | None = None
        self.takeovers = 0
        self._was_takeover = False

    # ---- inputs ----
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f'mode {mode!r} is not one of {", ".join(MODES)}')
        if self.estop and mode != MANUAL:
            raise ValueError('e-stop engaged: release it first (the car stays in manual)')
        self.mode = mode

    def set_estop(self, engaged: bool) -> None:
        """Engaging or releasing forgets every held command; engaging drops to manual."""
        engaged = bool(engaged)
        if engaged:
            self.mode = MANUAL
        if engaged != self.estop:
            self._human = self._policy = None
        self.estop = engaged

    def human(self, steering: float, throttle: float, now: float) -> None:
        self._human = _Held(float(steering), float(throttle), now)

    def policy(self, steering: float, throttle: float, now: float) -> None:
        self._policy = _Held(float(steering), float(throttle), now)

    # ---- the decision ----
    def _fresh(self, held: _Held | None, timeout: float, now: float) -> _Held | None:
        if held is None or now - held.received > timeout or not _finite(held.steering, held.throttle):
            return None
        return held

    def decide(self, now: float) -> Decision:
        decision = self._decide(now)
        takeover = decision.reason == 'human_takeover'
        if takeover and not self._was_takeover:
            self.takeovers += 1
        self._was_takeover = takeover
        return decision

    def _decide(self, now: float) -> Decision:
        if self.estop:
            return Decision(0.0, 0.0, NEUTRAL, 'estop')
        human = self._fresh(self._human, self.human_timeout, now)
        policy = self._fresh(self._policy, self.policy_timeout, now)
        if self.mode == MANUAL:
            if human is None:
                return Decision(0.0, 0.0, NEUTRAL, 'human_stale')
            return Decision(human.steering, human.throttle, HUMAN)
        if self.mode == ASSISTED:
            if human is not None and abs(human.steering) > self.takeover_deadband:
                return Decision(human.steering, human.throttle, HUMAN, 'human_takeover')
            if policy is None:
                return Decision(0.0, 0.0, NEUTRAL, 'policy_stale')
            if human is None:  # nobody gives throttle: stand still, wheels straight
                return Decision(0.0, 0.0, NEUTRAL, 'human_stale')
            return Decision(policy.steering, human.throttle, POLICY_STEERING_HUMAN_THROTTLE)
        # autonomous
        if human is not None:
            return Decision(human.steering, human.throttle, HUMAN, 'human_takeover')
        if policy is None:
            return Decision(0.0, 0.0, NEUTRAL, 'policy_stale')
        return Decision(policy.steering, policy.throttle, POLICY)

    def ages(self, now: float) -> tuple[float, float]:
        """(human, policy) seconds since the newest message; inf when none."""
        age = lambda held: math.inf if held is None else now - held.received
        return age(self._human), age(self._policy)


class ButtonEdges:
    """Rising edges of gamepad buttons (sensor_msgs/Joy buttons): one action per press."""

    def __init__(self):
        self._previous: list[int] = []

    def pressed(self, buttons) -> set[int]:
        buttons = list(buttons)
        before = self._previous + [0] * (len(buttons) - len(self._previous))
        self._previous = buttons
        return {i for i, (was, now) in enumerate(zip(before, buttons)) if now and not was}


# Which input's arrival publishes a decision from each source.
PACING_INPUT = {HUMAN: 'human', POLICY: 'policy', POLICY_STEERING_HUMAN_THROTTLE: 'policy'}
TIMER = 'timer'
ESTOP = 'estop'


class PublishPacer:
    """When the arbiter publishes rover/cmd, so its rate is the driving source's rate.

    The input that paces the current source (the human in manual, the policy
    otherwise) publishes the moment it arrives: lowest latency, and its own
    30 Hz becomes the car's. Any other input (the human's throttle riding
    along in assisted mode, a policy chunk shown in manual) only updates the
    held command: publishing it too would add a second rate on top. A change
    of who drives, or an e-stop, publishes at once. The keep-alive timer
    publishes when the pacing input is late by half a period (its jitter must
    not add a message between two of its own), then every period while no
    pacing input arrives (a keyboard's sparse repeats, a stopped policy).
    """

    def __init__(self, period: float):
        self.period = period
        self._last_publish = -math.inf
        self.last_source = None
        self._last_trigger = None
        # commands published per source (diagnostics turn these into rates)
        self.counts = {HUMAN: 0, POLICY: 0, POLICY_STEERING_HUMAN_THROTTLE: 0, NEUTRAL: 0}

    def should_publish(self, trigger: str, source: str, now: float) -> bool:
        if trigger == ESTOP or source != self.last_source or trigger == PACING_INPUT.get(source):
            return True
        if trigger != TIMER:
            return False
        limit = self.period * (0.95 if self._last_trigger == TIMER else 1.5)
        return now - self._last_publish >= limit

    def published(self, trigger: str, source: str, now: float) -> None:
        self._last_publish = now
        self.last_source = source
        self._last_trigger = trigger
        self.counts[source] += 1

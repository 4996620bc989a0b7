"""What the bridge sends, decided without ROS: sanitising, hold timeout, e-stop, trims.

Commands are normalized [-1, 1] (steering + = left, throttle + = forward).
`Shaping` maps between the command convention and what goes on the wire (trim,
limit, inversion) and back, so rover/state uses the same convention as rover/cmd.
`CommandHolder` keeps the newest command for at most `timeout` seconds; stale,
missing, non-finite or e-stopped means neutral. `EstopFile` keeps the e-stop
latch on disk so that it survives a restart of the bridge.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import threading
import time
from typing import NamedTuple

# Neutral steering may differ from the wire's 0 by the steering trim only, and the
# trim is bounded to this band (normalized; 0.2 is about 1/5 of full lock, more than
# any servo horn needs). Neutral throttle is always exactly 0.
STEERING_TRIM_BAND = 0.2
THROTTLE_TRIM_BAND = 0.2


def _clamp(value: float, limit: float = 1.0) -> float:
    return max(-limit, min(limit, value))


@dataclasses.dataclass(frozen=True)
class Shaping:
    steering_trim: float = 0.0
    throttle_trim: float = 0.0
    max_steering: float = 1.0
    max_throttle: float = 1.0
    invert_steering: bool = False
    invert_throttle: bool = False

    def __post_init__(self):
        for name in ('steering_trim', 'throttle_trim', 'max_steering', 'max_throttle'):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f'{name} must be finite')
        if not (0.0 <= self.max_steering <= 1.0 and 0.0 <= self.max_throttle <= 1.0):
            raise ValueError('max_steering and max_throttle must be within [0, 1]')
        if abs(self.steering_trim) > STEERING_TRIM_BAND:
            raise ValueError(f'steering_trim {self.steering_trim} is outside the trim band '
                             f'+-{STEERING_TRIM_BAND}: re-centre the servo horn instead')
        if abs(self.throttle_trim) > THROTTLE_TRIM_BAND:
            raise ValueError(f'throttle_trim {self.throttle_trim} is outside +-{THROTTLE_TRIM_BAND}')

    def to_wire(self, steering: float, throttle: float) -> tuple[float, float]:
        """A sane command -> the normalized values for COMMAND (trim, then limit, then invert).

        A commanded throttle of exactly 0 is a stop and stays 0: the trim only shifts motion.
        """
        s = _clamp(steering + self.steering_trim, self.max_steering)
        t = _clamp(throttle + self.throttle_trim, self.max_throttle) if throttle != 0.0 else 0.0
        return (-s if self.invert_steering else s), (-t if self.invert_throttle else t)

    def neutral_wire(self) -> tuple[float, float]:
        """Neutral: steering at the trimmed centre, throttle exactly at the firmware's neutral.

        The ESC learns its neutral from the pulses it sees while arming, which are
        the firmware's neutral; a throttle trim must never make "stop" move the car.
        """
        s = _clamp(self.steering_trim, self.max_steering)
        return (-s if self.invert_steering else s), 0.0

    def from_wire(self, steering: float, throttle: float) -> tuple[float, float]:
        """Applied wire values -> the command convention (inverse of to_wire, limits aside)."""
        s = -steering if self.invert_steering else steering
        t = -throttle if self.invert_throttle else throttle
        return s - self.steering_trim, (t - self.throttle_trim if t != 0.0 else 0.0)


def sanitize(steering: float, throttle: float) -> tuple[float, float, str]:
    """(steering, throttle, problem): problem is '' for a clean command, 'nonfinite' or 'clamped'."""
    try:
        steering, throttle = float(steering), float(throttle)
    except (TypeError, ValueError):
        return 0.0, 0.0, 'nonfinite'
    if not (math.isfinite(steering) and math.isfinite(throttle)):
        return 0.0, 0.0, 'nonfinite'
    if abs(steering) > 1.0 or abs(throttle) > 1.0:
        return _clamp(steering), _clamp(throttle), 'clamped'
    return steering, throttle, ''


class CommandHolder:
    """The newest command, held for at most `timeout` s; thread-safe.

    `submit` runs in the subscription callback, `current` in the sender thread.
    Counters say why a tick sent what it sent.
    """

    def __init__(self, timeout: float, shaping: Shaping | None = None, clock=time.monotonic,
                 estop: bool = False):
        if not timeout > 0:
            raise ValueError(f'cmd_timeout must be > 0, got {timeout}')
        self.timeout = timeout
        self.shaping = shaping or Shaping()
        self._clock = clock
        self._lock = threading.Lock()
        self._command = None  # (steering, throttle, receive time, unusable)
        self._estop = bool(estop)
        self.counts = collections.Counter()

    def submit(self, steering: float, throttle: float, now: float | None = None) -> str:
        """Store a command; NaN/inf store neutral (the newest word from the sender is unusable)."""
        steering, throttle, problem = sanitize(steering, throttle)
        now = self._clock() if now is None else now
        with self._lock:
            self._command = (steering, throttle, now, problem == 'nonfinite')
            self.counts['received'] += 1
            if problem:
                self.counts[problem] += 1
        return problem

    def set_estop(self, engaged: bool) -> None:
        """Engage or release; either way the held command is dropped, so a release
        sends neutral until a command arrives that was sent after it."""
        with self._lock:
            self._estop = bool(engaged)
            self._command = None

    @property
    def estop(self) -> bool:
        return self._estop

    def configure(self, timeout: float | None = None, shaping: Shaping | None = None) -> None:
        with self._lock:
            if timeout is not None:
                if not timeout > 0:
                    raise ValueError(f'cmd_timeout must be > 0, got {timeout}')
                self.timeout = timeout
            if shaping is not None:
                self.shaping = shaping

    def current(self, now: float | None = None) -> tuple[float, float, str]:
        """The wire values to send now and why: 'command', 'stale', 'none', 'nonfinite' or 'estop'."""
        now = self._clock() if now is None else now
        with self._lock:
            shaping = self.shaping
            if self._estop:
                reason = 'estop'
            elif self._command is None:
                reason = 'none'
            elif now - self._command[2] > self.timeout:
                reason = 'stale'
            elif self._command[3]:
                reason = 'nonfinite'
            else:
                reason = 'command'
            self.counts[f'sent_{reason}'] += 1
            if reason != 'command':
                return (*shaping.neutral_wire(), reason)
            return (*shaping.to_wire(self._command[0], self._command[1]), reason)

    def snapshot(self) -> dict:
        """A consistent copy of the counters (they change on other threads)."""
        with self._lock:
            return dict(self.counts)

    def age(self, now: float | None = None) -> float:
        """Seconds since the newest command arrived (inf when none)."""
        now = self._clock() if now is None else now
        with self._lock:
            return math.inf if self._command is None else now - self._command[2]


class EstopState(NamedTuple):
    engaged: bool
    reason: str   # who/what last changed it, as written
    problem: str  # '' when the file was readable (or absent)


class EstopFile:
    """The e-stop latch in a small JSON file, so a respawned bridge starts latched.

    Written on every change: a temporary file beside it, fsync, rename, fsync of the
    directory, so a crash or power cut leaves the old or the new state, never half a file.
    A missing file means the latch was never engaged on this machine (released);
    a file that cannot be read or parsed means latched.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))

    def load(self) -> EstopState:
        try:
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
            engaged, reason = data['engaged'], str(data.get('reason', ''))
        except FileNotFoundError:
            return EstopState(False, '', '')
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return EstopState(True, '', f'cannot read the e-stop state file {self.path}: {exc!r}')
        if not isinstance(engaged, bool):
            return EstopState(True, '', f'e-stop state file {self.path}: "engaged" is {engaged!r}, not true/false')
        return EstopState(engaged, reason, '')

    def save(self, engaged: bool, reason: str = '') -> None:
        """Persist the latch atomically; raises OSError when it cannot."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        tmp = f'{self.path}.tmp{os.getpid()}'
        body = json.dumps({'engaged': bool(engaged), 'reason': reason,
                           'written': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})
        try:
            with open(tmp, 'w', encoding='utf-8') as f:
                f.write(body + '\n')
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself is on disk
        finally:
            os.close(fd)

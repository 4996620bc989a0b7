"""The firmware's Python twin: rover::Firmware of rover_protocol.h, without the hardware.

`FirmwareCore` has the firmware's state machine and method names (arming,
watchdog, e-stop latch, manual override, range rejection, replies) and reuses the
Python codec; `test_firmware_twin_mirror.py` runs the same timelines through both
and compares every output. `FirmwareConfig` holds the compile-time constants,
whose defaults are read from rover_protocol.h. No I/O and no clock: callers pass
the time in milliseconds (`pty_board` runs it on a pseudo-terminal).
"""
from __future__ import annotations

import dataclasses

from rover_bridge import firmware_host
from rover_bridge import protocol as p

RC_MIN_VALID_US = 800
RC_MAX_VALID_US = 2200
U16 = 0xFFFF
U32 = 0xFFFFFFFF


# The firmware's compile-time defaults, read from rover_protocol.h: one truth for both twins.
_DEFAULTS = firmware_host.firmware_defaults()


@dataclasses.dataclass(frozen=True)
class FirmwareConfig:
    """The firmware's compile-time constants (defaults = rover_protocol.h defaults)."""
    watchdog_ms: int = _DEFAULTS['WATCHDOG_MS']
    arming_ms: int = _DEFAULTS['ARMING_MS']
    telemetry_period_ms: int = _DEFAULTS['TELEMETRY_MS']
    steering_min_us: int = _DEFAULTS['STEERING_MIN_US']
    steering_center_us: int = _DEFAULTS['STEERING_CENTER_US']
    steering_max_us: int = _DEFAULTS['STEERING_MAX_US']
    throttle_min_us: int = _DEFAULTS['THROTTLE_MIN_US']
    throttle_neutral_us: int = _DEFAULTS['THROTTLE_NEUTRAL_US']
    throttle_max_us: int = _DEFAULTS['THROTTLE_MAX_US']
    rc_manual_override: bool = bool(_DEFAULTS['RC_MANUAL_OVERRIDE'])

    def __post_init__(self):
        if not self.steering_min_us <= self.steering_center_us <= self.steering_max_us:
            raise ValueError('steering limits out of order (need min <= center <= max)')
        if not self.throttle_min_us <= self.throttle_neutral_us <= self.throttle_max_us:
            raise ValueError('throttle limits out of order (need min <= neutral <= max)')
        if not (p.PULSE_MIN_US <= min(self.steering_min_us, self.throttle_min_us)
                and max(self.steering_max_us, self.throttle_max_us) <= p.PULSE_MAX_US):
            raise ValueError(f'pulse limits outside [{p.PULSE_MIN_US}, {p.PULSE_MAX_US}] us')
        if self.watchdog_ms <= 0 or self.telemetry_period_ms <= 0 or self.arming_ms < 0:
            raise ValueError('watchdog_ms and telemetry_period_ms must be > 0, arming_ms >= 0')

    def compiler_flags(self) -> list[str]:
        """-D flags that build the C++ firmware with this configuration."""
        names = ['watchdog_ms', 'arming_ms', 'steering_min_us', 'steering_center_us', 'steering_max_us',
                 'throttle_min_us', 'throttle_neutral_us', 'throttle_max_us']
        flags = [f'-DROVER_{n.upper()}={getattr(self, n)}' for n in names]
        flags.append(f'-DROVER_TELEMETRY_MS={self.telemetry_period_ms}')
        flags.append(f'-DROVER_RC_MANUAL_OVERRIDE={int(self.rc_manual_override)}')
        return flags


# ---- output mapping: same integer arithmetic as rover_protocol.h ----

def clamp_normalized(n: int) -> int:
    return max(-p.SCALE, min(p.SCALE, n))


def clamp_us(us: int, lo: int, hi: int) -> int:
    return lo if us < lo else (hi if us > hi else us)


def normalized_to_us(n: int, lo: int, mid: int, hi: int) -> int:
    n = clamp_normalized(n)
    if n >= 0:
        return mid + (n * (hi - mid) + p.SCALE // 2) // p.SCALE
    return mid - ((-n) * (mid - lo) + p.SCALE // 2) // p.SCALE


def us_to_normalized(us: int, lo: int, mid: int, hi: int) -> int:
    us = clamp_us(us, lo, hi)
    if us >= mid:
        span = hi - mid
        return 0 if span == 0 else ((us - mid) * p.SCALE + span // 2) // span
    span = mid - lo
    return -(((mid - us) * p.SCALE + span // 2) // span)


class FirmwareCore:
    """The firmware's logic, mirroring rover::Firmware in rover_protocol.h (same method names)."""

    def __init__(self, config: FirmwareConfig | None = None, version: tuple[int, int] | None = None):
        self.config = config or FirmwareConfig()
        self.version = version or (p.PROTOCOL_VERSION_MAJOR, p.PROTOCOL_VERSION_MINOR)
        self.on_frame = None  # optional callback(seq, message, now_ms) for every valid frame
        self.begin(0)

    def begin(self, now_ms: int) -> None:
        c = self.config
        self.parser = p.StreamDecoder()
        self.boot_ms = now_ms & U32
        self.last_cmd_ms = self.boot_ms
        self.have_cmd = False
        self.cmd = (0, 0)
        self.ack_seq = 0
        self.tx_seq = 0
        self.estop = False
        self.range_flag = False
        self.arming = True
        self.tripped = True
        self.watchdog_trips = 0
        self.mode = p.Mode.ARMING
        self.rc_steering_us = 0
        self.rc_throttle_us = 0
        self.steering_us = c.steering_center_us
        self.throttle_us = c.throttle_neutral_us

    def _next_seq(self) -> int:
        seq = self.tx_seq
        self.tx_seq = (self.tx_seq + 1) & 0xFF
        return seq

    def on_bytes(self, data: bytes, now_ms: int) -> list[bytes]:
        """Feed received bytes; returns the reply frames (PONG, HELLO) to send, in order.

        One delimiter at a time (each ends at most one frame), so a range rejection
        and a valid COMMAND in one read set and clear the RANGE flag in wire order,
        as the firmware's byte-by-byte parser does. An out-of-range frame applies
        nothing: the last valid command and its watchdog keep running.
        """
        replies = []
        now_ms &= U32
        data = bytes(data)
        start = 0
        while start < len(data):
            end = data.find(b'\x00', start)
            end = len(data) if end < 0 else end + 1
            rejected = self.parser.range_errors
            frames = self.parser.feed(data[start:end])
            if self.parser.range_errors != rejected:
                self.range_flag = True
            for seq, message in frames:
                replies += self._on_message(seq, message, now_ms)
            start = end
        return replies

    def _on_message(self, seq: int, message, now_ms: int) -> list[bytes]:
        if self.on_frame is not None:
            self.on_frame(seq, message, now_ms)
        replies = []
        if isinstance(message, p.Command):
            self.cmd = (message.steering, message.throttle)
            self.range_flag = False
            self.have_cmd = True
            self.last_cmd_ms = now_ms
            self.ack_seq = seq
        elif isinstance(message, p.Estop):
            self.estop = message.engage != 0
        elif isinstance(message, p.Ping):
            replies.append(p.encode(p.Pong(message.token), self._next_seq()))
        elif isinstance(message, p.HelloRequest):
            replies.append(self.hello_frame())
        return replies

    def _rc_present(self) -> bool:
        return (RC_MIN_VALID_US <= self.rc_steering_us <= RC_MAX_VALID_US
                and RC_MIN_VALID_US <= self.rc_throttle_us <= RC_MAX_VALID_US)

    def _set_neutral(self) -> None:
        self.steering_us = self.config.steering_center_us
        self.throttle_us = self.config.throttle_neutral_us

    def update(self, now_ms: int, rc_steering_us: int = 0, rc_throttle_us: int = 0) -> None:
        c = self.config
        now_ms &= U32
        self.rc_steering_us = rc_steering_us & U16
        self.rc_throttle_us = rc_throttle_us & U16
        if self.arming and ((now_ms - self.boot_ms) & U32) >= c.arming_ms:
            self.arming = False
        fresh = self.have_cmd and ((now_ms - self.last_cmd_ms) & U32) < c.watchdog_ms
        if not fresh and not self.tripped and self.have_cmd:
            self.watchdog_trips = (self.watchdog_trips + 1) & U16
        self.tripped = not fresh

        if self.arming:
            self.mode = p.Mode.ARMING
            self._set_neutral()
        elif self.estop:
            self.mode = p.Mode.ESTOP
            self._set_neutral()
        elif c.rc_manual_override and self._rc_present():
            self.mode = p.Mode.MANUAL
            self.steering_us = clamp_us(self.rc_steering_us, c.steering_min_us, c.steering_max_us)
            self.throttle_us = clamp_us(self.rc_throttle_us, c.throttle_min_us, c.throttle_max_us)
        elif fresh:
            self.mode = p.Mode.AUTONOMOUS
            self.steering_us = normalized_to_us(self.cmd[0], c.steering_min_us, c.steering_center_us,
                                                c.steering_max_us)
            self.throttle_us = normalized_to_us(self.cmd[1], c.throttle_min_us, c.throttle_neutral_us,
                                                c.throttle_max_us)
        else:
            self.mode = p.Mode.FAILSAFE
            self._set_neutral()
        self.steering_us = clamp_us(self.steering_us, c.steering_min_us, c.steering_max_us)
        self.throttle_us = clamp_us(self.throttle_us, c.throttle_min_us, c.throttle_max_us)

    def hello(self) -> p.Hello:
        c = self.config
        return p.Hello(self.version[0], self.version[1], c.watchdog_ms, c.telemetry_period_ms, c.arming_ms,
                       c.steering_min_us, c.steering_center_us, c.steering_max_us,
                       c.throttle_min_us, c.throttle_neutral_us, c.throttle_max_us)

    def hello_frame(self) -> bytes:
        return p.encode(self.hello(), self._next_seq())

    def flags(self) -> int:
        f = 0
        if self.tripped:
            f |= p.Flag.WATCHDOG
        if self.estop:
            f |= p.Flag.ESTOP
        if self.arming:
            f |= p.Flag.ARMING
        if self._rc_present():
            f |= p.Flag.RC_PRESENT
        if self.range_flag:
            f |= p.Flag.RANGE
        return int(f)

    def applied_normalized(self) -> tuple[int, int]:
        c = self.config
        return (us_to_normalized(self.steering_us, c.steering_min_us, c.steering_center_us, c.steering_max_us),
                us_to_normalized(self.throttle_us, c.throttle_min_us, c.throttle_neutral_us, c.throttle_max_us))

    def telemetry(self, now_ms: int) -> p.Telemetry:
        steering, throttle = self.applied_normalized()
        return p.Telemetry(
            self.ack_seq, int(self.mode), self.flags(), self.steering_us, self.throttle_us, steering, throttle,
            self.rc_steering_us, self.rc_throttle_us, self.parser.crc_errors & U16,
            (self.parser.frame_errors + self.parser.range_errors) & U16,  # all dropped frames, as the firmware
            self.watchdog_trips, ((now_ms & U32) - self.boot_ms) & U32)

    def telemetry_frame(self, now_ms: int) -> bytes:
        return p.encode(self.telemetry(now_ms), self._next_seq())

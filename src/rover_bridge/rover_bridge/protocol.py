"""Wire protocol between the bridge and the Arduino (see PROTOCOL.md).

Pure Python, no ROS: framing (COBS, 0x00 delimiters), CRC-16/CCITT-FALSE,
sequence numbers and the fixed little-endian message layouts. The firmware
header `firmware/rover_firmware/rover_protocol.h` implements the same rules;
`protocol_vectors.json` holds the test vectors both must pass.
"""
from __future__ import annotations

import binascii
import dataclasses
import enum
import math
import struct
from typing import ClassVar, NamedTuple

PROTOCOL_VERSION_MAJOR = 1
PROTOCOL_VERSION_MINOR = 1  # 1.1: CRC-valid frames with impossible fields are rejected (kind 'range')

# Normalized [-1, 1] values travel as signed integers in units of 1/SCALE.
SCALE = 10000

# A received segment longer than this (COBS-encoded, without delimiters) is
# discarded as one frame error; every valid frame is far shorter.
MAX_ENCODED_LEN = 64
FRAME_OVERHEAD = 4  # type + seq + crc16
DELIMITER = 0

# Range checks (PROTOCOL.md, "Range checks"): a CRC-valid frame whose fields are
# impossible is dropped like a corrupt one. A servo or ESC pulse outside this
# window is no setting any firmware build could produce.
PULSE_MIN_US = 500
PULSE_MAX_US = 2500


class MsgType(enum.IntEnum):
    HELLO = 0x01          # Arduino -> host: version and limits, sent at boot and on request
    HELLO_REQUEST = 0x02  # host -> Arduino: "send HELLO" (boards that did not reset on open)
    COMMAND = 0x10        # host -> Arduino: steering and throttle
    ESTOP = 0x11          # host -> Arduino: engage (1) or release (0) the e-stop latch
    TELEMETRY = 0x20      # Arduino -> host: applied outputs, mode, flags, counters
    PING = 0x30           # host -> Arduino: token to echo (round-trip time)
    PONG = 0x31           # Arduino -> host: the echoed token


class Mode(enum.IntEnum):
    ARMING = 0      # ESC arming after boot: outputs neutral, commands not applied yet
    AUTONOMOUS = 1  # applying fresh COMMANDs
    MANUAL = 2      # RC receiver passthrough (firmware option)
    FAILSAFE = 3    # watchdog: no valid COMMAND for watchdog_ms -> neutral
    ESTOP = 4       # e-stop latched -> neutral until released


class Flag(enum.IntFlag):
    WATCHDOG = 0x01    # no valid COMMAND within watchdog_ms (set at boot until the first one)
    ESTOP = 0x02       # e-stop latched
    ARMING = 0x04      # ESC arming in progress
    RC_PRESENT = 0x08  # valid RC receiver pulses on both channels
    RANGE = 0x10       # a frame was rejected for out-of-range fields since the last valid COMMAND


KNOWN_FLAGS = int(Flag.WATCHDOG | Flag.ESTOP | Flag.ARMING | Flag.RC_PRESENT | Flag.RANGE)


class ProtocolError(ValueError):
    """A frame that must be dropped; `kind` is 'crc', 'frame' or 'range' (impossible field values)."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


# --- messages -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Hello:
    """Layout frozen across all protocol versions so any bridge can read any version."""
    TYPE: ClassVar[MsgType] = MsgType.HELLO
    FORMAT: ClassVar[str] = '<BBHHHHHHHHH'
    version_major: int
    version_minor: int
    watchdog_ms: int
    telemetry_period_ms: int
    arming_ms: int
    steering_min_us: int
    steering_center_us: int
    steering_max_us: int
    throttle_min_us: int
    throttle_neutral_us: int
    throttle_max_us: int


@dataclasses.dataclass(frozen=True)
class HelloRequest:
    TYPE: ClassVar[MsgType] = MsgType.HELLO_REQUEST
    FORMAT: ClassVar[str] = '<'


@dataclasses.dataclass(frozen=True)
class Command:
    TYPE: ClassVar[MsgType] = MsgType.COMMAND
    FORMAT: ClassVar[str] = '<hh'
    steering: int  # 1/SCALE units, + = left (REP-103 angular.z)
    throttle: int  # 1/SCALE units, + = forward


@dataclasses.dataclass(frozen=True)
class Estop:
    TYPE: ClassVar[MsgType] = MsgType.ESTOP
    FORMAT: ClassVar[str] = '<B'
    engage: int  # 1 = latch neutral, 0 = release


@dataclasses.dataclass(frozen=True)
class Telemetry:
    TYPE: ClassVar[MsgType] = MsgType.TELEMETRY
    FORMAT: ClassVar[str] = '<BBBHHhhHHHHHI'
    ack_seq: int         # sequence number of the last valid COMMAND
    mode: int            # Mode
    flags: int           # Flag bits
    steering_us: int     # pulse widths being output
    throttle_us: int
    steering: int        # the same outputs in 1/SCALE units
    throttle: int
    rc_steering_us: int  # RC receiver inputs, 0 = no signal / not wired
    rc_throttle_us: int
    crc_errors: int      # frames the Arduino dropped (wrap at 2^16)
    frame_errors: int
    watchdog_trips: int  # transitions fresh -> stale since boot
    uptime_ms: int


@dataclasses.dataclass(frozen=True)
class Ping:
    TYPE: ClassVar[MsgType] = MsgType.PING
    FORMAT: ClassVar[str] = '<I'
    token: int


@dataclasses.dataclass(frozen=True)
class Pong:
    TYPE: ClassVar[MsgType] = MsgType.PONG
    FORMAT: ClassVar[str] = '<I'
    token: int


MESSAGE_CLASSES = {cls.TYPE: cls for cls in (Hello, HelloRequest, Command, Estop, Telemetry, Ping, Pong)}
_STRUCTS = {t: struct.Struct(cls.FORMAT) for t, cls in MESSAGE_CLASSES.items()}
BODY_SIZES = {t: s.size for t, s in _STRUCTS.items()}


def fields(message) -> dict:
    return dataclasses.asdict(message)


class Frame(NamedTuple):
    seq: int
    message: object


# --- CRC and COBS -------------------------------------------------------------

def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    return binascii.crc_hqx(data, crc)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (Cheshire & Baker): the result has no 0x00."""
    out = bytearray(b'\x00')
    code_index = 0
    code = 1
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte != 0:
            out.append(byte)
            code += 1
        if byte == 0 or code == 0xFF:
            out[code_index] = code
            code = 1
            code_index = len(out)
            if byte == 0 or i < last:  # a full block at the very end needs no new block
                out.append(0)
    if code_index < len(out):
        out[code_index] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode; raises ProtocolError('frame') on a malformed block."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError('frame', 'zero byte inside a COBS block')
        i += 1
        end = i + code - 1
        if end > n:
            raise ProtocolError('frame', 'COBS block runs past the end of the frame')
        out += data[i:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --- frames -------------------------------------------------------------------

def to_fixed(value: float) -> int:
    """A normalized float as the wire integer (clamped to [-1, 1], rounded)."""
    if not math.isfinite(value):
        raise ValueError(f'not a finite number: {value}')
    return int(round(max(-1.0, min(1.0, value)) * SCALE))


def from_fixed(value: int) -> float:
    return value / SCALE


def pack_body(message) -> bytes:
    return _STRUCTS[message.TYPE].pack(*dataclasses.astuple(message))


def encode(message, seq: int) -> bytes:
    """The bytes on the wire: 0x00, COBS(type, seq, body, crc16 LE), 0x00.

    The leading delimiter ends any garbage the receiver may hold, so the
    frame is never merged with it; the trailing one ends the frame at once.
    """
    payload = bytes((int(message.TYPE), seq & 0xFF)) + pack_body(message)
    payload += struct.pack('<H', crc16(payload))
    return b'\x00' + cobs_encode(payload) + b'\x00'


def decode_payload(payload: bytes) -> Frame:
    """Check and unpack one COBS-decoded frame; raises ProtocolError."""
    if len(payload) < FRAME_OVERHEAD:
        raise ProtocolError('frame', f'frame of {len(payload)} bytes is shorter than {FRAME_OVERHEAD}')
    (received_crc,) = struct.unpack_from('<H', payload, len(payload) - 2)
    if crc16(payload[:-2]) != received_crc:
        raise ProtocolError('crc', 'CRC mismatch')
    msg_type, seq = payload[0], payload[1]
    body = payload[2:-2]
    if msg_type not in BODY_SIZES:
        raise ProtocolError('frame', f'unknown message type 0x{msg_type:02x}')
    if len(body) != BODY_SIZES[msg_type]:
        raise ProtocolError('frame', f'{MsgType(msg_type).name} body of {len(body)} bytes, '
                                     f'expected {BODY_SIZES[msg_type]}')
    message = MESSAGE_CLASSES[msg_type](*_STRUCTS[msg_type].unpack(body))
    problem = range_problem(message)
    if problem:
        raise ProtocolError('range', f'{MsgType(msg_type).name}: {problem}')
    return Frame(seq, message)


def _normalized_ok(value: int) -> bool:
    return -SCALE <= value <= SCALE


def _pulse_ok(us: int) -> bool:
    return PULSE_MIN_US <= us <= PULSE_MAX_US


def range_problem(message) -> str:
    """Why a decoded message's fields are impossible, or '' when they are fine.

    The same rules as `fields_in_range` in rover_protocol.h (the vectors check both).
    A HELLO of another major version is not checked: the bridge must read its
    version to refuse it cleanly.
    """
    if isinstance(message, Command):
        if not (_normalized_ok(message.steering) and _normalized_ok(message.throttle)):
            return f'steering/throttle ({message.steering}, {message.throttle}) outside +-{SCALE}'
    elif isinstance(message, Estop):
        if message.engage not in (0, 1):
            return f'engage {message.engage} is neither 0 nor 1'
    elif isinstance(message, Telemetry):
        if message.mode not in Mode._value2member_map_:
            return f'unknown mode {message.mode}'
        if message.flags & ~KNOWN_FLAGS:
            return f'unknown flag bits 0x{message.flags & ~KNOWN_FLAGS:02x}'
        if not (_normalized_ok(message.steering) and _normalized_ok(message.throttle)):
            return f'steering/throttle ({message.steering}, {message.throttle}) outside +-{SCALE}'
        if not (_pulse_ok(message.steering_us) and _pulse_ok(message.throttle_us)):
            return (f'pulses ({message.steering_us}, {message.throttle_us}) us outside '
                    f'[{PULSE_MIN_US}, {PULSE_MAX_US}]')
    elif isinstance(message, Hello) and message.version_major == PROTOCOL_VERSION_MAJOR:
        if message.watchdog_ms == 0 or message.telemetry_period_ms == 0:
            return 'zero watchdog or telemetry period'
        for lo, mid, hi in ((message.steering_min_us, message.steering_center_us, message.steering_max_us),
                            (message.throttle_min_us, message.throttle_neutral_us, message.throttle_max_us)):
            if not (PULSE_MIN_US <= lo <= mid <= hi <= PULSE_MAX_US):
                return f'pulse limits ({lo}, {mid}, {hi}) us out of order or outside [{PULSE_MIN_US}, {PULSE_MAX_US}]'
    return ''


def decode_segment(segment: bytes) -> Frame:
    """One delimiter-free segment from the wire -> Frame; raises ProtocolError."""
    return decode_payload(cobs_decode(segment))


class StreamDecoder:
    """Splits a byte stream into frames; survives garbage, partial reads and overflow.

    Feed it whatever the port returned; it keeps unfinished bytes for the next
    call. Bad frames are counted (`crc_errors`, `frame_errors`, and
    `range_errors` for CRC-valid frames with impossible fields) and dropped;
    the next delimiter always resynchronises.
    """

    def __init__(self, max_encoded_len: int = MAX_ENCODED_LEN):
        self.max_encoded_len = max_encoded_len
        self._buffer = bytearray()
        self._overflow = False
        self.crc_errors = 0
        self.frame_errors = 0
        self.range_errors = 0
        self.frames = 0
        self.last_error = ''

    def reset(self) -> None:
        """Forget a partial frame (e.g. after reopening the port); keeps the counters."""
        self._buffer.clear()
        self._overflow = False

    def _append(self, chunk) -> None:
        if self._overflow or not chunk:
            return
        if len(self._buffer) + len(chunk) > self.max_encoded_len:
            self._overflow = True
            self._buffer.clear()
        else:
            self._buffer += chunk

    def _finish_segment(self, frames: list) -> None:
        if self._overflow:
            self._overflow = False
            self.frame_errors += 1
            self.last_error = f'segment longer than {self.max_encoded_len} bytes'
            return
        if not self._buffer:
            return  # empty segment between two delimiters: idle, not an error
        segment = bytes(self._buffer)
        self._buffer.clear()
        try:
            frames.append(decode_segment(segment))
            self.frames += 1
        except ProtocolError as exc:
            if exc.kind == 'crc':
                self.crc_errors += 1
            elif exc.kind == 'range':
                self.range_errors += 1
            else:
                self.frame_errors += 1
            self.last_error = str(exc)

    def feed(self, data: bytes) -> list:
        frames: list = []
        view = memoryview(data)
        start = 0
        while True:
            end = data.find(b'\x00', start)
            if end < 0:
                self._append(view[start:])
                return frames
            self._append(view[start:end])
            self._finish_segment(frames)
            start = end + 1


def seq_gap(previous: int, current: int) -> int:
    """Frames missing between two u8 sequence numbers (0 when consecutive)."""
    return (current - previous - 1) & 0xFF

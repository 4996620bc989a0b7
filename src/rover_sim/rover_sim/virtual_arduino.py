"""A virtual Arduino on a pseudo-terminal: the rover firmware without the hardware.

`FirmwareCore` mirrors `rover_bridge/firmware/rover_firmware/rover_protocol.h` line
for line (arming, watchdog, e-stop latch, manual override, range rejection, replies) and
reuses the Python codec; a test runs the same timelines through both and compares
every output. `VirtualArduino` runs it on the master end of a pty, like the board
behind /dev/ttyACM0: the bridge opens the slave end (or a stable symlink to it,
like /dev/serial/by-id/...), the board "resets" when the port is opened and sends
HELLO after a boot delay, then TELEMETRY at a fixed rate, and drives a
`BicycleModel` with the outputs it applies. Tests use its fault injection
(garbage, corrupt frames, unplug/replug, reset) and read its state thread-safely.
A link path is owned through an flock on `<link>.lock` (`LinkLock`): a second
instance refuses the live link of a running one (`LinkInUse`) instead of taking
over its port; `run_link_path` gives each run a path of its own.

CLI: python -m rover_sim.virtual_arduino --link /tmp/rover_arduino
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import fcntl
import math
import os
import random
import select
import signal
import struct
import sys
import tempfile
import threading
import time
import tty
from typing import NamedTuple

from rover_bridge import firmware_host
from rover_bridge import protocol as p
from rover_sim.vehicle_model import BicycleModel, Pose

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


# ---- the virtual board on a pty ----

def run_link_path(namespace: str = '', domain_id: str | None = None, run_id: int | None = None) -> str:
    """A link path of its own for one run of the simulated rover.

    Under $XDG_RUNTIME_DIR (else the temp dir), named after the ROS domain, the
    namespace and the run (the launching process's pid by default), so two demos
    or two namespaced sims never open each other's board. Compute it once per run
    and give the same path to the sim (`serial_link`) and the bridge (`port`).
    """
    base = os.environ.get('XDG_RUNTIME_DIR', '')
    if not (base and os.path.isdir(base) and os.access(base, os.W_OK)):
        base = tempfile.gettempdir()
    domain = os.environ.get('ROS_DOMAIN_ID', '0') if domain_id is None else str(domain_id)
    parts = ['rover_sim_arduino', f'd{domain or 0}']
    ns = namespace.strip('/').replace('/', '_')
    if ns:
        parts.append(ns)
    parts.append(str(os.getpid() if run_id is None else run_id))
    return os.path.join(base, '-'.join(parts))


class LinkInUse(FileExistsError):
    """The link path belongs to another running virtual Arduino."""


class LinkLock:
    """Ownership of a link path: an flock on `<link>.lock`, held while the board runs.

    The kernel drops the lock when its owner dies, so a link left behind by a
    crash is replaced, while the live link of another running instance is
    refused with a clear error. The firmware runner (tests/firmware) uses the same lock.
    """

    def __init__(self, link: str):
        self.link = link
        self.path = f'{link}.lock'
        self._fd = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors='replace').strip() or '?'
                os.close(fd)
                raise LinkInUse(f'{self.link} is the live link of another virtual Arduino (pid {owner}); '
                                'refusing to replace it: give this run its own serial_link') from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not unlinked by its previous owner between our open and our lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.unlink(self.path)
            os.close(self._fd)
            self._fd = None


class Applied(NamedTuple):
    steering: float        # normalized outputs being applied
    throttle: float
    steering_us: int
    throttle_us: int
    mode: p.Mode
    flags: int
    watchdog_tripped: bool
    estop: bool
    booting: bool          # in the simulated bootloader: no pulses, no serial


class CommandRecord(NamedTuple):
    time: float            # monotonic receive time
    seq: int
    steering: int          # wire integers (1/SCALE)
    throttle: int


class VirtualArduino:
    """The firmware on one end of a pty, with a vehicle model. Thread-safe accessors."""

    def __init__(self, link: str | None = None, config: FirmwareConfig | None = None,
                 model: BicycleModel | None = None, boot_delay: float = 0.2, reset_on_open: bool = True,
                 physics_hz: float = 100.0, version: tuple[int, int] | None = None,
                 log_size: int = 10000, clock=time.monotonic):
        self.link = link
        self.config = config or FirmwareConfig()
        self.model = model or BicycleModel()
        self.boot_delay = float(boot_delay)
        self.reset_on_open = reset_on_open
        self.physics_period = 1.0 / physics_hz
        self._clock = clock
        self._core = FirmwareCore(self.config, version)
        self._core.on_frame = self._on_frame
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._master = None
        self._device = None
        self._poll = None
        self._peer_open = False
        self._boot_until = None       # monotonic time the simulated bootloader ends
        self._t0 = clock()
        self._last_physics = None
        self._next_telemetry = 0.0
        self._link_lock = LinkLock(link) if link else None
        self._commands = collections.deque(maxlen=log_size)
        self._estops = collections.deque(maxlen=log_size)
        self._counters = collections.Counter()
        self._frame_time = 0.0

    # -- lifecycle --
    def start(self) -> 'VirtualArduino':
        """Raises LinkInUse when another running instance owns the link."""
        with self._lock:
            if self._link_lock is not None:
                self._link_lock.acquire()
            try:
                self._open_pty()
            except OSError:
                if self._link_lock is not None:
                    self._link_lock.release()
                raise
            now = self._clock()
            self._last_physics = now
            if not self.reset_on_open:
                self._boot(now)  # a board that was already running
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='virtual_arduino', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_pty()
            if self._link_lock is not None:
                self._link_lock.release()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> str:
        """The path a client opens: the stable link if one was asked for, else the pty device."""
        return self.link or self._device

    @property
    def device(self) -> str | None:
        return self._device

    # -- fault injection --
    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host as if the board sent them."""
        with self._lock:
            self._write(bytes(data))
            self._counters['injected_bytes'] += len(data)

    def inject_garbage(self, size: int = 64, seed: int | None = None) -> bytes:
        """Random bytes (delimiters included) into the host's input."""
        rng = random.Random(seed)
        data = bytes(rng.randrange(256) for _ in range(size))
        self.inject(data)
        return data

    def inject_corrupt_frame(self, kind: str = 'crc') -> bytes:
        """A TELEMETRY frame the host must drop.

        'crc': one body bit flipped (a CRC error); 'frame': the first COBS code points past
        the end (a framing error); 'truncated': cut in the middle (either, depending on the cut).
        """
        with self._lock:
            telemetry = self._core.telemetry(self._now_ms())
            frame = bytearray(p.encode(telemetry, 0))
            if kind == 'crc':  # flip a body bit under an intact COBS layer: only the CRC can tell
                payload = bytearray((int(p.MsgType.TELEMETRY), 0)) + p.pack_body(telemetry)
                payload += struct.pack('<H', p.crc16(bytes(payload)))
                payload[3] ^= 0x01
                frame = bytearray(b'\x00' + p.cobs_encode(bytes(payload)) + b'\x00')
            elif kind == 'frame':
                frame[1] = 0xFE
            elif kind == 'truncated':
                frame = frame[:len(frame) // 2] + b'\x00'
            else:
                raise ValueError(f'unknown corruption kind {kind!r}; expected crc, frame or truncated')
            self._write(bytes(frame))
            self._counters[f'injected_{kind}'] += 1
            return bytes(frame)

    def unplug(self) -> None:
        """Like pulling the USB cable: the port and the stable link disappear; the board keeps running."""
        with self._lock:
            self._close_pty()
            self._counters['unplugs'] += 1

    def replug(self) -> None:
        """The board re-enumerates: a new pty (new device name), the same stable link."""
        with self._lock:
            if self._master is None:
                self._open_pty()

    def reset(self) -> None:
        """A reset (brown-out, button): reboots now, HELLO again after the boot delay."""
        with self._lock:
            self._reboot(self._clock())

    # -- state (thread-safe) --
    def pose(self) -> Pose:
        with self._lock:
            return self.model.pose()

    def applied(self) -> Applied:
        with self._lock:
            core = self._core
            steering, throttle = core.applied_normalized()
            flags = core.flags()
            return Applied(steering / p.SCALE, throttle / p.SCALE, core.steering_us, core.throttle_us,
                           p.Mode(core.mode), flags, bool(flags & p.Flag.WATCHDOG), bool(flags & p.Flag.ESTOP),
                           self._booting())

    def telemetry(self) -> p.Telemetry:
        with self._lock:
            return self._core.telemetry(self._now_ms())

    def counters(self) -> dict:
        with self._lock:
            counts = dict(self._counters)
            counts['crc_errors'] = self._core.parser.crc_errors
            counts['frame_errors'] = self._core.parser.frame_errors
            counts['range_errors'] = self._core.parser.range_errors
            counts['watchdog_trips'] = self._core.watchdog_trips
            counts['peer_open'] = int(self._peer_open)
            return counts

    def commands(self, since: float | None = None) -> list[CommandRecord]:
        """COMMANDs received (newest last), optionally only those received after `since` (monotonic)."""
        with self._lock:
            return [c for c in self._commands if since is None or c.time > since]

    def estop_events(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._estops)

    def wait_for(self, predicate, timeout: float, interval: float = 0.01) -> bool:
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            if predicate(self):
                return True
            time.sleep(interval)
        return predicate(self)

    # -- internals (called with the lock held) --
    def _now_ms(self) -> int:
        return int((self._clock() - self._t0) * 1000.0) & U32

    def _booting(self) -> bool:
        return self._boot_until is not None

    def _boot(self, now: float) -> None:
        self._core.begin(self._now_ms())
        self._boot_until = None
        self._counters['boots'] += 1
        self._next_telemetry = now + self.config.telemetry_period_ms / 1000.0
        if self._peer_open:
            self._write(self._core.hello_frame())
            self._counters['hello_sent'] += 1

    def _reboot(self, now: float) -> None:
        # The real board: bootloader first (no pulses, no serial), then setup() sends HELLO.
        self._core.begin(self._now_ms())
        self._boot_until = now + self.boot_delay
        if self.boot_delay <= 0:
            self._boot(now)

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # settings stay with the pty after we close our slave fd
        self._device = os.ttyname(slave)
        os.close(slave)  # so the host's open/close is visible to us (POLLHUP)
        os.set_blocking(master, False)
        self._master = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN)
        self._peer_open = False
        if self.link:
            tmp = f'{self.link}.tmp{os.getpid()}'
            if os.path.lexists(self.link) and not os.path.islink(self.link):
                os.close(master)
                self._master = None
                raise FileExistsError(f'{self.link} exists and is not a symlink; refusing to replace it')
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self._device, tmp)
            os.replace(tmp, self.link)  # atomic: the link never points nowhere while we run

    def _close_pty(self) -> None:
        if self._master is None:
            return
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self._device:
            os.unlink(self.link)
        os.close(self._master)
        self._master = None
        self._poll = None
        self._peer_open = False

    def _write(self, data: bytes) -> None:
        if self._master is None or not self._peer_open or self._booting():
            self._counters['tx_discarded'] += len(data)  # nobody listening: bytes are lost, as on USB
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError:
            written = 0
        if written < len(data):
            self._counters['tx_dropped'] += len(data) - written

    def _on_frame(self, seq, message, now_ms) -> None:
        self._counters['frames_rx'] += 1
        if isinstance(message, p.Command):
            self._commands.append(CommandRecord(self._frame_time, seq, message.steering, message.throttle))
            self._counters['commands_rx'] += 1
        elif isinstance(message, p.Estop):
            self._estops.append((self._frame_time, message.engage))
            self._counters['estops_rx'] += 1
        elif isinstance(message, p.Ping):
            self._counters['pings_rx'] += 1
        elif isinstance(message, p.HelloRequest):
            self._counters['hello_requests_rx'] += 1
            self._counters['hello_sent'] += 1

    def _handle_events(self, events, now: float) -> None:
        """Notice the host opening/closing the port; feed what it sent to the firmware."""
        hung_up = any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in events)
        readable = any(ev & select.POLLIN for _, ev in events)
        if not hung_up and not self._peer_open:
            self._peer_open = True
            self._counters['peer_opens'] += 1
            if self.reset_on_open:
                self._reboot(now)  # the DTR pulse on open resets an Uno/Nano
        if readable:
            # Read before acting on a hang-up: the host's last words (neutral) come right before it.
            try:
                data = os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                data = b''
            except OSError:  # EIO: the host closed the port and nothing is left
                data = b''
                hung_up = True
            if data and self._boot_until is None:  # the bootloader does not run our parser
                self._frame_time = now
                now_ms = self._now_ms()
                for reply in self._core.on_bytes(data, now_ms):
                    self._write(reply)
                self._core.update(now_ms)  # like loop(): outputs follow right after the bytes are read
        if hung_up and self._peer_open:
            self._peer_open = False
            self._counters['peer_closes'] += 1

    def _tick(self, now: float) -> float:
        """Boot completion, firmware update, physics, telemetry; returns the next deadline."""
        if self._boot_until is not None and now >= self._boot_until:
            self._boot(now)
        booting = self._boot_until is not None
        if not booting:
            self._core.update(self._now_ms())
        if now - self._last_physics >= self.physics_period:
            steering, throttle = (0, 0) if booting else self._core.applied_normalized()
            self.model.step(now - self._last_physics, steering / p.SCALE, throttle / p.SCALE)
            self._last_physics = now
        if not booting and now >= self._next_telemetry:
            period = self.config.telemetry_period_ms / 1000.0
            self._next_telemetry += period
            if self._next_telemetry < now:
                self._next_telemetry = now + period  # fell behind: no burst
            if self._peer_open:
                self._write(self._core.telemetry_frame(self._now_ms()))
                self._counters['telemetry_sent'] += 1
        deadline = self._last_physics + self.physics_period
        if not booting:
            deadline = min(deadline, self._next_telemetry)
        else:
            deadline = min(deadline, self._boot_until)
        return deadline

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                now = self._clock()
                wait = min(max(0.0, self._tick(now) - now), 0.01)
                poller, peer_open = self._poll, self._peer_open
            if poller is None:  # unplugged
                self._stop.wait(min(wait, 0.005))
                continue
            if peer_open:
                events = poller.poll(int(math.ceil(wait * 1000)))
            else:
                # POLLHUP is level-triggered while nobody has the port open: look, then sleep.
                events = poller.poll(0)
            with self._lock:
                if self._poll is poller:  # not unplugged meanwhile
                    self._handle_events(events, self._clock())
                    peer_open = self._peer_open
            if not peer_open:
                self._stop.wait(min(wait, 0.005))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='virtual_arduino', description='Run the rover firmware on a pseudo-terminal with a vehicle model.')
    parser.add_argument('--link', default='/tmp/rover_arduino',
                        help='stable symlink to the pty for the bridge to open (default %(default)s)')
    parser.add_argument('--boot-delay', type=float, default=0.2,
                        help='seconds between the port opening and HELLO (bootloader)')
    parser.add_argument('--no-reset-on-open', action='store_true',
                        help='do not reboot when the host opens the port (the host must send HELLO_REQUEST)')
    parser.add_argument('--watchdog-ms', type=int, default=FirmwareConfig.watchdog_ms)
    parser.add_argument('--arming-ms', type=int, default=FirmwareConfig.arming_ms)
    parser.add_argument('--telemetry-ms', type=int, default=FirmwareConfig.telemetry_period_ms)
    parser.add_argument('--protocol-major', type=int, default=p.PROTOCOL_VERSION_MAJOR,
                        help='announce another protocol version (to test the bridge refusing it)')
    parser.add_argument('--status-period', type=float, default=1.0,
                        help='seconds between status lines on stdout (0 = quiet)')
    args = parser.parse_args(argv)
    try:
        config = FirmwareConfig(watchdog_ms=args.watchdog_ms, arming_ms=args.arming_ms,
                                telemetry_period_ms=args.telemetry_ms)
        arduino = VirtualArduino(link=args.link, config=config, boot_delay=args.boot_delay,
                                 reset_on_open=not args.no_reset_on_open,
                                 version=(args.protocol_major, p.PROTOCOL_VERSION_MINOR)).start()
    except (ValueError, OSError) as exc:
        print(f'virtual_arduino: cannot start: {exc}', file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f'virtual arduino: {arduino.port} -> {arduino.device}', flush=True)
    try:
        while not stop.wait(args.status_period if args.status_period > 0 else 3600):
            a, pose, c = arduino.applied(), arduino.pose(), arduino.counters()
            print(f'mode={a.mode.name} steering={a.steering:+.3f} throttle={a.throttle:+.3f} '
                  f'x={pose.x:.2f} y={pose.y:.2f} yaw={math.degrees(pose.yaw):.0f}deg v={pose.speed:.2f} '
                  f'commands={c.get("commands_rx", 0)} crc_errors={c["crc_errors"]} '
                  f'watchdog_trips={c["watchdog_trips"]}', flush=True)
    finally:
        arduino.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())

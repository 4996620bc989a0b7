"""A virtual Arduino on a pseudo-terminal: the firmware twin where the board would be.

`VirtualArduino` runs `FirmwareCore` on the master end of a pty, like the board
behind /dev/ttyACM0: the bridge opens the slave end (or a stable symlink to it,
like /dev/serial/by-id/...), the board "resets" when the port is opened and sends
HELLO after a boot delay, then TELEMETRY at a fixed rate. It can drive a vehicle
with the outputs it applies (rover_sim gives it a bicycle model). Tests use its
fault injection (garbage, corrupt frames, unplug/replug, reset) and read its
state thread-safely. A link path is owned through `LinkLock`: a second instance
refuses the live link of a running one (`LinkInUse`) instead of taking over its port.
"""
from __future__ import annotations

import collections
import math
import os
import select
import threading
import time
import tty
from typing import NamedTuple, Protocol

from rover_bridge import protocol as p
from rover_bridge.twin import faults
from rover_bridge.twin.firmware_twin import U32, FirmwareConfig, FirmwareCore
from rover_bridge.twin.link_lock import LinkLock


class Vehicle(Protocol):
    """What the board's outputs drive, e.g. rover_sim's BicycleModel."""

    def step(self, dt: float, steering: float, throttle: float): ...

    def pose(self): ...


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
    """The firmware on one end of a pty. Thread-safe accessors.

    With a `vehicle`, the board steps it at `physics_hz` on its own thread with the
    normalized outputs it applies (neutral while booting).
    """

    def __init__(self, link: str | None = None, config: FirmwareConfig | None = None,
                 vehicle: Vehicle | None = None, boot_delay: float = 0.2, reset_on_open: bool = True,
                 physics_hz: float = 100.0, version: tuple[int, int] | None = None,
                 log_size: int = 10000, clock=time.monotonic):
        self.link = link
        self.config = config or FirmwareConfig()
        self.vehicle = vehicle
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
        self._watchdog_trips = collections.deque(maxlen=log_size)  # monotonic time of each trip
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
        data = faults.garbage(size, seed)
        self.inject(data)
        return data

    def inject_corrupt_frame(self, kind: str = 'crc') -> bytes:
        """A TELEMETRY frame the host must drop (kinds: see faults.corrupt_frame)."""
        with self._lock:
            frame = faults.corrupt_frame(self._core.telemetry(self._now_ms()), kind)
            self._write(frame)
            self._counters[f'injected_{kind}'] += 1
            return frame

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
    def pose(self):
        """The vehicle's pose (needs a vehicle)."""
        with self._lock:
            return self.vehicle.pose()

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

    def watchdog_trip_times(self) -> list[float]:
        """Monotonic time of each watchdog trip, taken by the board when it went neutral (what a
        test should time: polling the board from a loaded test process only adds its own lag)."""
        with self._lock:
            return list(self._watchdog_trips)

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

    def _step_vehicle(self, now: float, booting: bool) -> float:
        """Physics with the applied outputs, when a step is due; returns when the next one is."""
        if self.vehicle is None:
            return math.inf
        if now - self._last_physics >= self.physics_period:
            steering, throttle = (0, 0) if booting else self._core.applied_normalized()
            self.vehicle.step(now - self._last_physics, steering / p.SCALE, throttle / p.SCALE)
            self._last_physics = now
        return self._last_physics + self.physics_period

    def _tick(self, now: float) -> float:
        """Boot completion, firmware update, physics, telemetry; returns the next deadline."""
        if self._boot_until is not None and now >= self._boot_until:
            self._boot(now)
        booting = self._boot_until is not None
        if not booting:
            trips = self._core.watchdog_trips
            self._core.update(self._now_ms())
            if self._core.watchdog_trips != trips:
                self._watchdog_trips.append(now)
        deadline = self._step_vehicle(now, booting)
        if not booting and now >= self._next_telemetry:
            period = self.config.telemetry_period_ms / 1000.0
            self._next_telemetry += period
            if self._next_telemetry < now:
                self._next_telemetry = now + period  # fell behind: no burst
            if self._peer_open:
                self._write(self._core.telemetry_frame(self._now_ms()))
                self._counters['telemetry_sent'] += 1
        return min(deadline, self._boot_until if booting else self._next_telemetry)

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

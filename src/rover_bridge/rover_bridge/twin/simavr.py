"""The flashed program itself on an emulated ATmega328P: the real firmware where the twin would be.

tests/firmware/ builds the sketch (avr-gcc, Debian's Arduino AVR core, no library) and
simavr_runner, which runs the .elf at 16 MHz with UART0 on a pty behind a symlink (what the
bridge opens) and logs the pulse widths on pins 9/10 (steering/throttle) with simulated and
wall time. This module builds both into a cache dir (`build`), starts the runner (`EmulatedBoard`),
parses its log, and turns the measured widths back into normalized outputs with the firmware's
own mapping (`FirmwareConfig`: centre/neutral, min/max; no inversion, no trim beyond the limits).
`FirmwareArduino` drives a vehicle with them, as `VirtualArduino` drives it with the twin's.

Needs the toolchain and simavr: apt-get install gcc-avr avr-libc arduino-core-avr simavr libsimavr-dev,
and the source tree (tests/firmware and src/rover_bridge/firmware; ROVER_FIRMWARE_MAKE_DIR overrides
where tests/firmware is looked for).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.link_lock import LinkInUse
from rover_common.deadline_loop import DeadlineLoop

DEBIAN_PACKAGES = ('gcc-avr', 'avr-libc', 'arduino-core-avr', 'simavr', 'libsimavr-dev')
INSTALL = 'apt-get install ' + ' '.join(DEBIAN_PACKAGES)
ARDUINO_AVR = Path('/usr/share/arduino/hardware/arduino/avr')
SIMAVR_HEADER = Path('/usr/include/simavr/sim_avr.h')
STEERING_PIN, THROTTLE_PIN = 9, 10


class FirmwareUnavailable(RuntimeError):
    """The toolchain, simavr or the firmware sources are missing, or the build failed."""


def find_make_dir() -> Path | None:
    """tests/firmware of the source tree: $ROVER_FIRMWARE_MAKE_DIR, else above this file
    (source tree or a colcon install inside the workspace), else above the working directory."""
    env = os.environ.get('ROVER_FIRMWARE_MAKE_DIR')
    if env:
        return Path(env) if (Path(env) / 'Makefile').is_file() else None
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in (start, *start.parents):
            candidate = parent / 'tests' / 'firmware'
            if (candidate / 'Makefile').is_file() and (parent / 'src' / 'rover_bridge' / 'firmware').is_dir():
                return candidate
    return None


def missing_tool(make_dir: Path | None = None) -> str:
    """Why the firmware cannot be built and emulated here ('' when it can)."""
    for tool in ('avr-gcc', 'avr-g++', 'avr-objcopy', 'avr-size', 'cc', 'make'):
        if shutil.which(tool) is None:
            return f'{tool} not found'
    if not (ARDUINO_AVR / 'cores' / 'arduino' / 'Arduino.h').exists():
        return f'no Arduino AVR core in {ARDUINO_AVR}'
    if not SIMAVR_HEADER.exists():
        return 'simavr headers not found'
    make_dir = make_dir or find_make_dir()
    if make_dir is None or not make_dir.is_dir():
        return 'tests/firmware not found (the firmware is built from the source tree; set ROVER_FIRMWARE_MAKE_DIR)'
    return ''


class Build(NamedTuple):
    elf: Path
    runner: Path
    output: str  # make's stdout (the size line)


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / 'rover_firmware_avr'


def build(defines: str = '', make_dir: Path | None = None, timeout: float = 300.0) -> Build:
    """`make -C tests/firmware` into a cache dir per set of -D flags (make rebuilds what changed).

    Raises FirmwareUnavailable (naming the Debian packages) when it cannot."""
    make_dir = make_dir or find_make_dir()
    why = missing_tool(make_dir)
    if why:
        raise FirmwareUnavailable(f'cannot emulate the firmware: {why}: {INSTALL}')
    root = cache_root()
    out = root / hashlib.sha256(defines.encode()).hexdigest()[:12]
    root.mkdir(exist_ok=True)
    with open(root / '.lock', 'w') as lock:  # parallel runs (tests, sims) share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(['make', '-C', str(make_dir), f'OUT={out}', f'DEFINES={defines}'],
                                capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise FirmwareUnavailable(f'firmware build failed (make -C {make_dir}):\n'
                                  + result.stdout[-3000:] + result.stderr[-3000:])
    return Build(out / 'rover_firmware.elf', out / 'simavr_runner', result.stdout)


def us_to_unit(us: float, lo: int, mid: int, hi: int) -> float:
    """A measured pulse width as the firmware's normalized output in [-1, 1] (its mapping, inverted)."""
    if us >= mid:
        value = 0.0 if hi == mid else (us - mid) / (hi - mid)
    else:
        value = 0.0 if mid == lo else -(mid - us) / (mid - lo)
    return max(-1.0, min(1.0, value))


def widths_to_controls(steering_us: float | None, throttle_us: float | None,
                       config: FirmwareConfig | None = None) -> tuple[float, float]:
    """(steering, throttle) in [-1, 1] from pins 9/10; no pulse yet is neutral (the ESC's and servo's idea)."""
    c = config or FirmwareConfig()
    steering = 0.0 if steering_us is None else us_to_unit(
        steering_us, c.steering_min_us, c.steering_center_us, c.steering_max_us)
    throttle = 0.0 if throttle_us is None else us_to_unit(
        throttle_us, c.throttle_min_us, c.throttle_neutral_us, c.throttle_max_us)
    return steering, throttle


def _sigterm_on_parent_death():
    """In the child: SIGTERM when the process (thread) that started it dies, so a killed sim
    leaves no runner holding its link (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


class EmulatedBoard:
    """simavr_runner with the firmware on `link`; its log parsed on a thread.

    Raises LinkInUse when another live board owns the link, FirmwareUnavailable when the
    runner does not come up.
    """

    def __init__(self, firmware: Build | tuple, link: str, realtime_factor: float = 1.0,
                 ready_timeout: float = 10.0, die_with_parent: bool = False, boot_ms: float = 200.0):
        elf, runner, _ = firmware
        self.link = link
        # boot_ms: the bootloader's wait after the reset an open causes (VirtualArduino's boot_delay)
        self.proc = subprocess.Popen([str(runner), str(elf), '--link', link, '--realtime-factor', str(realtime_factor),
                                      '--boot-ms', str(boot_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=_sigterm_on_parent_death if die_with_parent else None)
        self.lines = []
        self.pulses = {STEERING_PIN: [], THROTTLE_PIN: []}  # (us, sim_ms, wall_ms) at every change of width
        self.rx = []                   # sim_ms of every batch of bytes handed to the UART
        self.resets = []               # sim_ms
        self.sim_ms = 0.0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, name='simavr_log', daemon=True)
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                out = self.output()
                refused = [line for line in out.splitlines() if 'live link of another' in line]
                if refused:
                    raise LinkInUse(refused[0])
                raise FirmwareUnavailable(f'simavr_runner did not start on {link}:\n{out}')

    def _read(self):
        for line in self.proc.stdout:
            values = dict(re.findall(r'(\w+)=(\S+)', line))
            with self._lock:
                self.lines.append(line.rstrip())
                if len(self.lines) > 20000:  # a long sim run: keep the recent log only
                    del self.lines[:10000]
                if 'sim_ms' in values:
                    self.sim_ms = float(values['sim_ms'])
                if line.startswith('pulse'):
                    self.pulses[int(values['pin'])].append(
                        (float(values['us']), float(values['sim_ms']), float(values['wall_ms'])))
                elif line.startswith('rx'):
                    self.rx.append(float(values['sim_ms']))
                elif line.startswith('reset'):
                    self.resets.append(float(values['sim_ms']))
                elif line.startswith('ready'):
                    self._ready.set()

    def output(self) -> str:
        with self._lock:
            return '\n'.join(self.lines[-40:])

    def width(self, pin: int) -> float | None:
        with self._lock:
            return self.pulses[pin][-1][0] if self.pulses[pin] else None

    def widths(self) -> tuple:
        return self.width(STEERING_PIN), self.width(THROTTLE_PIN)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM: the runner removes its link and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=5)
        self._thread.join(timeout=5)
        return code


class FirmwareArduino:
    """The emulated firmware on `link` driving `vehicle` with the pulse widths it puts on pins 9/10.

    The stand-in for `VirtualArduino(link, vehicle=...)` in the simulated rover: same start/stop/pose.
    The vehicle is stepped at `physics_hz` in wall time (the runner is paced to the wall clock; on
    a loaded machine its simulated time may fall a little behind).
    """

    def __init__(self, link: str, vehicle, config: FirmwareConfig | None = None, physics_hz: float = 100.0,
                 defines: str = '', realtime_factor: float = 1.0):
        self.link = link
        self.vehicle = vehicle
        self.config = config or FirmwareConfig()
        self.physics_period = 1.0 / physics_hz
        self.defines = defines
        self.realtime_factor = realtime_factor
        self.board: EmulatedBoard | None = None
        self.firmware: Build | None = None
        self._lock = threading.Lock()
        self._loop: DeadlineLoop | None = None
        self._last_step: float | None = None

    def start(self) -> 'FirmwareArduino':
        """Builds (cached) and starts the runner. Raises FirmwareUnavailable or LinkInUse."""
        self.firmware = build(self.defines)
        # started from the node's main thread: dies with the sim process, never outlives it
        self.board = EmulatedBoard(self.firmware, self.link, self.realtime_factor, die_with_parent=True)
        self._last_step = None
        self._loop = DeadlineLoop(self.physics_period, self._step, name='firmware_vehicle').start()
        return self

    def _step(self, scheduled, actual):
        steering, throttle = self.controls()
        with self._lock:
            if self._last_step is not None:
                self.vehicle.step(actual - self._last_step, steering, throttle)
            self._last_step = actual

    def controls(self) -> tuple[float, float]:
        """The normalized (steering, throttle) the pins show now."""
        return widths_to_controls(*self.widths(), self.config)

    def widths(self) -> tuple:
        return self.board.widths() if self.board else (None, None)

    def pose(self):
        with self._lock:
            return self.vehicle.pose()

    def alive(self) -> bool:
        return self.board is not None and self.board.alive()

    def stop(self) -> int:
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        code = self.board.stop() if self.board else 0
        return code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

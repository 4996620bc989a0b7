"""The flashed program itself: the sketch built with avr-gcc, run on an emulated ATmega328P.

tests/firmware/ builds the .elf (Debian's Arduino AVR core, no library) and simavr_runner
(started and its log parsed by rover_bridge.twin.simavr), which runs it at 16 MHz with UART0 on a pty and logs the pulse widths on pins 9/10 with
simulated and wall time. Time-based assertions use simulated time: on a loaded machine
the emulator may run slower than real time.
"""
import math
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import serial

from rover_bridge import protocol as p
from rover_bridge.twin import simavr
from rover_bridge.twin.firmware_twin import FirmwareConfig, FirmwareCore, normalized_to_us
from rover_bridge.twin.pty_board import VirtualArduino
from rover_common.process import wait_for

REPO = Path(__file__).resolve().parents[3]
MAKE_DIR = REPO / 'tests' / 'firmware'
INSTALL = simavr.INSTALL
CONFIG = FirmwareConfig()  # the defaults, read from rover_protocol.h
ARMED_S = CONFIG.arming_ms / 1000 + 0.2


pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(bool(simavr.missing_tool(MAKE_DIR)),
                                 reason=f'{simavr.missing_tool(MAKE_DIR)}: {INSTALL}')]


def build(defines: str = '') -> simavr.Build:
    """(elf, runner, make output), cached per set of -D flags (rover_bridge.twin.simavr)."""
    return simavr.build(defines, MAKE_DIR)


@pytest.fixture(scope='module')
def firmware():
    return build()


Emulated = simavr.EmulatedBoard  # simavr_runner with the firmware; its log parsed on a thread


@pytest.fixture
def board(firmware, tmp_path):
    b = Emulated(firmware, str(tmp_path / 'arduino'))
    yield b
    assert b.stop() == 0, b.output()
    assert b.lines[-1].startswith('exit') and not os.path.lexists(b.link)


class Host:
    """The host end of the port: frames out, decoded frames in (with receive times)."""

    def __init__(self, port):
        self.ser = serial.Serial(port, 115200, timeout=0)
        self.decoder = p.StreamDecoder()
        self.frames = []
        self.seq = 0
        self.last_command_seq = None

    def write(self, data: bytes):
        self.ser.write(data)

    def send(self, message):
        self.write(p.encode(message, self.seq))
        if isinstance(message, p.Command):
            self.last_command_seq = self.seq
        self.seq = (self.seq + 1) & 0xFF

    def send_raw(self, message):
        """A CRC-valid frame with any field values (pack_body does no range check)."""
        data = bytes((int(message.TYPE), self.seq)) + p.pack_body(message)
        self.write(b'\x00' + p.cobs_encode(data + p.crc16(data).to_bytes(2, 'little')) + b'\x00')
        self.seq = (self.seq + 1) & 0xFF

    def pump(self, duration=0.0, until=None):
        deadline = time.monotonic() + duration
        while True:
            for seq, message in self.decoder.feed(self.ser.read(4096)):
                self.frames.append((time.monotonic(), seq, message))
            if until is not None and until():
                return True
            if time.monotonic() >= deadline:
                return until is None
            time.sleep(0.002)

    def of_type(self, cls):
        return [m for _, _, m in self.frames if isinstance(m, cls)]

    def telemetry(self) -> p.Telemetry:
        return self.of_type(p.Telemetry)[-1]

    def uptime_ms(self) -> int:
        assert self.pump(10.0, until=lambda: self.of_type(p.Telemetry)), 'no TELEMETRY'
        return self.telemetry().uptime_ms

    def run_for(self, seconds, tick=None, rate=30.0):
        """`tick` at `rate` Hz (wall) for `seconds` of the board's own clock (TELEMETRY uptime):
        an emulator slower than real time on a loaded machine gets the same script."""
        end = self.uptime_ms() + seconds * 1000
        while self.uptime_ms() < end:
            if tick:
                tick(self)
            self.pump(1.0 / rate)

    def drive(self, steering, throttle, seconds, extra=None):
        def tick(host):
            host.send(p.Command(steering, throttle))
            if extra:
                extra(host)
        self.run_for(seconds, tick)

    def wait_armed(self):
        assert self.pump(10.0, until=lambda: self.of_type(p.Telemetry) and self.telemetry().mode != p.Mode.ARMING)

    def close(self):
        self.ser.close()


@pytest.fixture
def host(board):
    h = Host(board.link)
    yield h
    h.close()


def settle(board, expected, timeout=3.0):
    """Waits until both pins output `expected` (us) within 0.25 us."""
    return wait_for(lambda: None not in board.widths() and
                    all(abs(w - e) <= 0.25 for w, e in zip(board.widths(), expected)), timeout)


# ---------------------------------------------------------------------------------------------

def test_builds_without_library_within_the_size_budget(firmware):
    _, _, output = firmware
    match = re.search(r'firmware: flash=(\d+) B \(budget (\d+).*ram=(\d+) B \(budget (\d+)', output)
    assert match, output
    flash, flash_budget, ram, ram_budget = map(int, match.groups())
    assert flash <= flash_budget and ram <= ram_budget
    print(f'FIRMWARE flash={flash} B ram={ram} B')
    sketch = (REPO / 'src/rover_bridge/firmware/rover_firmware/rover_firmware.ino').read_text()
    assert '#include <Servo.h>' not in sketch  # flashing needs the Arduino core only


def test_handshake_hello_and_telemetry_contents(board, host):
    assert host.pump(5.0, until=lambda: host.of_type(p.Hello))
    assert host.of_type(p.Hello)[0] == FirmwareCore(CONFIG).hello()  # the twin's HELLO, field for field
    assert board.resets, board.output()  # opening the port reset the board (DTR)
    assert host.pump(5.0, until=lambda: len(host.of_type(p.Telemetry)) >= 10)
    t = host.telemetry()
    assert (t.mode, t.flags) == (p.Mode.ARMING, p.Flag.WATCHDOG | p.Flag.ARMING)
    uptimes = [m.uptime_ms for m in host.of_type(p.Telemetry)]
    periods = [b - a for a, b in zip(uptimes, uptimes[1:])]
    assert all(CONFIG.telemetry_period_ms <= d <= CONFIG.telemetry_period_ms + 2 for d in periods), periods
    host.wait_armed()
    host.drive(5000, 2000, 0.4)
    t = host.telemetry()
    assert (t.mode, t.flags, t.steering_us, t.throttle_us, t.steering, t.throttle) == (
        p.Mode.AUTONOMOUS, 0, 1750, 1600, 5000, 2000)
    assert (t.ack_seq, t.crc_errors, t.frame_errors, t.rc_steering_us, t.rc_throttle_us) == (
        (host.seq - 1) & 0xFF, 0, 0, 0, 0)
    host.send(p.Ping(0xC0FFEE42))
    assert host.pump(2.0, until=lambda: p.Pong(0xC0FFEE42) in host.of_type(p.Pong))
    host.send(p.HelloRequest())
    assert host.pump(2.0, until=lambda: len(host.of_type(p.Hello)) == 2)


def test_after_the_reset_an_open_causes_the_bootloader_waits_and_swallows_what_arrives(firmware, tmp_path):
    # As on an Uno/Nano: DTR resets the MCU, the bootloader waits, then setup() sends HELLO. The
    # wait is also what lets pyserial flush its input after open() without losing that HELLO.
    board = Emulated(firmware, str(tmp_path / 'arduino'), boot_ms=300)
    opened = time.monotonic()
    host = Host(board.link)
    try:
        host.send(p.Ping(0x0B00710A))  # reaches the bootloader, not the sketch
        assert host.pump(5.0, until=lambda: host.of_type(p.Hello))
        hello_at = next(t for t, _, m in host.frames if isinstance(m, p.Hello))
        assert hello_at - opened >= 0.3, hello_at - opened
        assert board.resets, board.output()
        host.send(p.Ping(0xC0FFEE42))
        assert host.pump(2.0, until=lambda: host.of_type(p.Pong))
        assert host.of_type(p.Pong) == [p.Pong(0xC0FFEE42)]
    finally:
        host.close()
        assert board.stop() == 0, board.output()


PULSE_TABLE = [  # (steering, throttle) in 1/10000
    (0, 0), (10000, 10000), (-10000, -10000), (5000, 2000), (-2500, -5000), (1, -1), (3333, 6667), (9999, -9999)]


def test_commands_map_to_pulse_widths_on_pins_9_and_10(board, host):
    host.wait_armed()
    measured = []
    for steering, throttle in PULSE_TABLE:
        expected = (normalized_to_us(steering, CONFIG.steering_min_us, CONFIG.steering_center_us,
                                     CONFIG.steering_max_us),
                    normalized_to_us(throttle, CONFIG.throttle_min_us, CONFIG.throttle_neutral_us,
                                     CONFIG.throttle_max_us))
        host.drive(steering, throttle, 0.1)
        ok = wait_for(lambda: (host.drive(steering, throttle, 0.03), settle(board, expected, 0.0))[1], 3.0)
        assert ok, (steering, throttle, expected, board.widths())
        measured.append((steering, throttle, *board.widths()))
    # Out of range: rejected, not clamped: the last valid command stays on the pins...
    for _ in range(3):
        host.send(p.Command(12000, -32768))
        host.pump(0.01)
    assert host.pump(3.0, until=lambda: host.telemetry().frame_errors == 3)
    t = host.telemetry()
    assert t.flags & p.Flag.RANGE and (t.mode, t.steering_us, t.throttle_us) == (p.Mode.AUTONOMOUS, 2000, 1000)
    assert settle(board, measured[-1][2:], 0.0), board.widths()
    # ...until its watchdog runs out: rejected frames are no sign of life.
    host.drive(12000, -32768, 0.4)
    assert settle(board, (1500, 1500), 0.0) and host.telemetry().mode == p.Mode.FAILSAFE
    print('PULSES ' + ' '.join(f'({s / 1e4:+.4f},{t / 1e4:+.4f})->{a:.1f}/{b:.1f}us' for s, t, a, b in measured))


def test_watchdog_goes_neutral_250ms_after_the_last_command_in_simulated_time(board, host):
    host.wait_armed()
    host.drive(5000, 2000, 0.5)
    assert settle(board, (1750, 1600))

    def neutral_after_last_rx():  # the bridge froze: no more bytes
        last_rx = board.rx[-1]
        return [sim - last_rx for us, sim, _ in list(board.pulses[10]) if sim > last_rx and abs(us - 1500) <= 0.25]
    assert host.pump(10.0, until=neutral_after_last_rx), board.output()
    watchdog_ms = neutral_after_last_rx()[0]
    assert host.pump(5.0, until=lambda: host.telemetry().mode == p.Mode.FAILSAFE)
    # 250 ms, then the new width starts with the next 20 ms PWM frame and is logged at its end (1.5 ms).
    assert 250 <= watchdog_ms <= 250 + 20 + 2, watchdog_ms
    t = host.telemetry()
    assert (t.mode, t.watchdog_trips) == (p.Mode.FAILSAFE, 1) and t.flags & p.Flag.WATCHDOG
    print(f'WATCHDOG sim_ms={watchdog_ms:.1f}')


def test_estop_latches_neutral_until_released(board, host):
    host.wait_armed()
    host.drive(8000, 8000, 0.3)
    assert settle(board, (1900, 1900))
    host.send(p.Estop(1))
    host.drive(8000, 8000, 0.5)
    assert settle(board, (1500, 1500), 0.0) and host.telemetry().mode == p.Mode.ESTOP
    assert host.telemetry().flags & p.Flag.ESTOP
    host.send(p.Estop(0))
    host.drive(8000, 8000, 0.5)
    assert settle(board, (1900, 1900), 0.0) and host.telemetry().mode == p.Mode.AUTONOMOUS


def test_random_garbage_never_moves_the_outputs(board, host):
    host.wait_armed()
    rng = random.Random(14)
    garbage = bytearray()
    start = board.sim_ms
    for _ in range(100):  # 100 x 64 random bytes, one in ten a delimiter, at about the line rate
        chunk = bytes(0 if rng.random() < 0.1 else rng.randrange(1, 256) for _ in range(64))
        host.write(chunk)
        garbage += chunk
        host.pump(0.006)
    host.write(b'\x00')
    # The firmware drops exactly what the Python codec drops: no byte lost, nothing got through.
    reference = p.StreamDecoder()
    assert reference.feed(bytes(garbage) + b'\x00') == []
    dropped = reference.crc_errors + reference.frame_errors + reference.range_errors
    assert host.pump(10.0, until=lambda: host.telemetry().crc_errors + host.telemetry().frame_errors >= dropped)
    host.run_for(0.1)
    assert all(abs(us - 1500) <= 0.25 for pin in (9, 10) for us, _, _ in board.pulses[pin]), board.pulses
    assert board.sim_ms - start > 500  # the bytes took their time on the 115200 baud line
    t = host.telemetry()
    assert (t.mode, t.ack_seq, t.crc_errors, t.frame_errors) == (
        p.Mode.FAILSAFE, 0, reference.crc_errors, reference.frame_errors + reference.range_errors)
    assert t.frame_errors > 300
    host.drive(-5000, 1000, 0.4)  # and the next valid command still gets through
    assert settle(board, (1250, 1550)), (host.telemetry(), board.output())


def test_bridge_refuses_a_firmware_of_another_protocol_version(tmp_path):
    from rover_bridge.link import LinkConfig, LinkState, SerialLink
    board = Emulated(build('-DROVER_PROTOCOL_VERSION_MAJOR=2'), str(tmp_path / 'arduino'))
    logs = []
    link = SerialLink(LinkConfig(port=board.link), command_source=lambda: (0.5, 0.5, 'command'),
                      neutral_source=lambda: (0.0, 0.0), on_telemetry=lambda t, now: None,
                      on_log=lambda level, text: logs.append(text))
    try:
        link.start()
        assert wait_for(lambda: link.state == LinkState.INCOMPATIBLE, 10.0), logs
        assert any('incompatible firmware' in text and '2.' in text for text in logs), logs
        time.sleep(ARMED_S)
        assert {us for pin in (9, 10) for us, _, _ in board.pulses[pin]} <= {1499.8, 1499.9, 1500.0, 1500.1, 1500.2}
    finally:
        link.stop()
        assert board.stop() == 0


def test_runner_owns_its_link_and_exits_cleanly_on_sigint(firmware, board):
    from rover_bridge.twin.link_lock import LinkInUse
    with pytest.raises(LinkInUse, match=f'pid {board.proc.pid}'):
        VirtualArduino(link=board.link).start()
    _, runner, _ = firmware
    second = subprocess.run([str(runner), str(firmware[0]), '--link', board.link], capture_output=True, text=True,
                            timeout=20)
    assert second.returncode == 2 and 'refusing to replace it' in second.stderr
    assert board.proc.poll() is None and os.path.islink(board.link)
    board.proc.send_signal(signal.SIGINT)
    assert board.proc.wait(timeout=10) == 0
    assert not os.path.lexists(board.link) and not os.path.lexists(board.link + '.lock')


# ---- one scenario, both twins: the Python virtual Arduino and the firmware binary ----

SCENARIO = [  # (what, argument, seconds of board time)
    ('idle', None, ARMED_S),
    ('drive', (5000, 2000), 0.25),
    ('drive', (-10000, 10000), 0.25),
    ('drive_with_rejects', (3000, -3000), 0.25),  # each valid COMMAND followed by an out-of-range one
    ('estop', 1, 0.25),
    ('estop', 0, 0.25),
    ('garbage', 7, 0.25),
    ('drive', (-2500, 0), 0.25),
    ('idle', None, 0.5),  # watchdog
    ('drive', (10000, -10000), 0.25),
]
# Both boards run at half speed: the script's host may stall (a loaded machine) up to 0.5 s
# of wall time before it looks like a frozen bridge to either watchdog.
SPEED = 0.5


def run_scenario(port) -> list[tuple]:
    """The script on one board; after each step the TELEMETRY that answers its last COMMAND."""
    host = Host(port)
    try:
        assert host.pump(5.0, until=lambda: host.of_type(p.Hello))
        steps = []
        for what, arg, seconds in SCENARIO:
            if what == 'idle':
                host.run_for(seconds)
            elif what == 'drive':
                host.drive(*arg, seconds)
            elif what == 'drive_with_rejects':
                host.drive(*arg, seconds, extra=lambda h: h.send_raw(p.Command(20000, 0)))
            elif what == 'estop':
                host.send(p.Estop(arg))
                host.drive(8000, 8000, seconds)
            elif what == 'garbage':
                rng = random.Random(arg)
                host.drive(4000, 4000, seconds, extra=lambda h: h.write(rng.randbytes(24)))
            if what != 'idle':
                sent = len(host.frames)
                assert host.pump(5.0, until=lambda: any(
                    isinstance(m, p.Telemetry) and m.ack_seq == host.last_command_seq
                    for _, _, m in host.frames[sent:]))
            t = host.telemetry()
            steps.append((what, t.mode, t.flags, t.steering_us, t.throttle_us, t.steering, t.throttle,
                          t.watchdog_trips, t.ack_seq == host.last_command_seq, t.crc_errors + t.frame_errors > 0))
        return steps
    finally:
        host.close()


def test_one_scenario_gives_the_same_outputs_on_both_twins(firmware, tmp_path):
    with VirtualArduino(link=str(tmp_path / 'twin'), config=CONFIG, boot_delay=0.0,
                        clock=lambda: time.monotonic() * SPEED) as twin:
        python = run_scenario(twin.port)
    board = Emulated(firmware, str(tmp_path / 'arduino'), realtime_factor=SPEED)
    try:
        emulated = run_scenario(board.link)
    finally:
        assert board.stop() == 0, board.output()
    for i, (a, b) in enumerate(zip(python, emulated)):
        assert a == b, f'step {i} {SCENARIO[i][0]}: Python twin {a} != firmware {b}'
    assert len(python) == len(emulated) == len(SCENARIO)
    # The pins agree with what the firmware reports.
    assert abs(board.width(9) - python[-1][3]) <= 0.25 and abs(board.width(10) - python[-1][4]) <= 0.25
    # The script exercised what it claims: driving, range rejection, e-stop, garbage, watchdog.
    modes = {step[1] for step in python}
    assert {p.Mode.AUTONOMOUS, p.Mode.ESTOP, p.Mode.FAILSAFE} <= modes
    assert any(step[2] & p.Flag.RANGE for step in python) and python[-2][7] >= 1


# ---- the unchanged bridge node against the emulated board ----

def test_bridge_node_end_to_end_with_port_close_and_reopen(firmware, tmp_path):
    from test_bridge_node import Publisher, Ros, bridge_process
    ros = Ros()
    board = Emulated(firmware, str(tmp_path / 'arduino'))
    bridge = bridge_process(ros, tmp_path, board.link).start()
    try:
        with Publisher(ros, (0.5, 0.2)):
            assert settle(board, (1750, 1600), 20.0), bridge.output() + board.output()
            assert wait_for(lambda: ros.states and math.isclose(ros.states[-1][1].twist.linear.x, 0.2,
                                                                abs_tol=1e-3), 5.0)
            resets = len(board.resets)
            assert bridge.stop() == 0, bridge.output()  # closes the port after sending neutral
            assert settle(board, (1500, 1500), 2.0), board.output()
            bridge = bridge_process(ros, tmp_path, board.link).start()  # reopens: the board resets
            assert settle(board, (1750, 1600), 20.0), bridge.output() + board.output()
            assert len(board.resets) == resets + 1
        assert 'incompatible' not in bridge.output()
    finally:
        bridge.stop()
        assert board.stop() == 0
        ros.close()

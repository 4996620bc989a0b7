"""The virtual Arduino (the firmware twin on a pty), driven by pyserial like the bridge would."""
import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from rover_bridge import protocol as p
from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.link_lock import LinkInUse
from rover_bridge.twin.pty_board import VirtualArduino

FAST = FirmwareConfig(arming_ms=50)


class Host:
    """A minimal host on the pty: sends frames, collects decoded frames with their times."""

    def __init__(self, port):
        self.ser = serial.Serial(port, 115200, timeout=0)
        self.decoder = p.StreamDecoder()
        self.frames = []  # (time, seq, message)
        self.seq = 0

    def send(self, message):
        self.ser.write(p.encode(message, self.seq))
        self.seq = (self.seq + 1) & 0xFF

    def pump(self, duration=0.0, until=None):
        deadline = time.monotonic() + duration
        while True:
            data = self.ser.read(4096)
            now = time.monotonic()
            self.frames += [(now, seq, m) for seq, m in self.decoder.feed(data)]
            if until is not None and until():
                return True
            if now >= deadline:
                return until is None
            time.sleep(0.002)

    def of_type(self, cls):
        return [f for f in self.frames if isinstance(f[2], cls)]

    def drive(self, steering, throttle, duration, rate=30.0):
        end = time.monotonic() + duration
        while time.monotonic() < end:
            self.send(p.Command(steering, throttle))
            self.pump(1.0 / rate)

    def close(self):
        self.ser.close()


class RecordingVehicle:
    """A vehicle that keeps what the board steps it with; its pose is that record."""

    def __init__(self):
        self.steps = []  # (dt, steering, throttle)

    def step(self, dt, steering, throttle):
        self.steps.append((dt, steering, throttle))

    def pose(self):
        return list(self.steps)


@pytest.fixture
def arduino(tmp_path):
    board = VirtualArduino(link=str(tmp_path / 'arduino'), config=FAST, boot_delay=0.05,
                           vehicle=RecordingVehicle()).start()
    yield board
    board.stop()


@pytest.fixture
def host(arduino):
    """A host on the board's port, past the board's HELLO."""
    h = Host(arduino.port)
    try:
        assert h.pump(2.0, until=lambda: h.of_type(p.Hello))
        yield h
    finally:
        h.close()


def test_hello_after_boot_delay_then_telemetry_at_a_fixed_rate(arduino):
    opened = time.monotonic()
    host = Host(arduino.port)
    try:
        assert host.pump(2.0, until=lambda: host.of_type(p.Hello))
        t_hello, _, hello = host.of_type(p.Hello)[0]
        assert t_hello - opened >= 0.04  # the simulated bootloader comes first
        assert (hello.version_major, hello.watchdog_ms, hello.arming_ms) == (p.PROTOCOL_VERSION_MAJOR, 250, 50)
        host.pump(1.0)
        times = [t for t, _, _ in host.of_type(p.Telemetry) if t > t_hello + 0.1]
        rate = (len(times) - 1) / (times[-1] - times[0])
        assert 40 <= rate <= 60, rate  # 50 Hz, measured over ~0.9 s
        assert host.decoder.crc_errors == host.decoder.frame_errors == 0
    finally:
        host.close()


def test_commands_drive_the_outputs_and_the_vehicle(arduino, host):
    host.drive(5000, 4000, 1.0)
    applied = arduino.applied()
    assert (applied.mode, applied.steering_us, applied.throttle_us) == (p.Mode.AUTONOMOUS, 1750, 1700)
    assert (applied.steering, applied.throttle) == (0.5, 0.4)
    telemetry = host.of_type(p.Telemetry)[-1][2]
    assert (telemetry.steering, telemetry.throttle, telemetry.mode) == (5000, 4000, p.Mode.AUTONOMOUS)
    steps = arduino.pose()
    # neutral before the first command, then the applied outputs, one step per physics period at most
    assert steps[0][1:] == (0.0, 0.0) and steps[-1][1:] == (0.5, 0.4)
    assert min(dt for dt, _, _ in steps) >= arduino.physics_period
    log = arduino.commands()
    assert len(log) >= 20 and all((c.steering, c.throttle) == (5000, 4000) for c in log)


def test_watchdog_goes_neutral_when_commands_stop(arduino, host):
    host.drive(-3000, 2000, 0.5)
    last_command = arduino.commands()[-1].time
    assert arduino.wait_for(lambda a: a.applied().watchdog_tripped, 2.0)
    tripped_after = arduino.watchdog_trip_times()[-1] - last_command
    assert 0.24 <= tripped_after <= 0.25 + 0.15, tripped_after
    applied = arduino.applied()
    assert (applied.mode, applied.steering_us, applied.throttle_us) == (p.Mode.FAILSAFE, 1500, 1500)
    assert arduino.counters()['watchdog_trips'] == 1
    host.drive(-3000, 2000, 0.2)  # valid commands resume
    assert arduino.applied().mode == p.Mode.AUTONOMOUS


def test_garbage_and_corrupt_frames_from_the_host_are_counted(arduino, host):
    host.drive(1000, 1000, 0.2)
    bad = bytearray(p.encode(p.Command(9999, 9999), 1))
    bad[4] ^= 0x10
    host.ser.write(b'\x00\x07\x01\x02\x00' + bytes(bad) + b'\x55' * 100 + b'\x00')
    host.drive(2000, 1000, 0.3)
    counters = arduino.counters()
    assert counters['crc_errors'] == 1 and counters['frame_errors'] == 2
    assert arduino.applied().steering_us == 1600  # the good commands still got through
    telemetry = host.of_type(p.Telemetry)[-1][2]
    assert (telemetry.crc_errors, telemetry.frame_errors) == (1, 2)


def test_ping_estop_and_hello_request_without_reset_on_open(tmp_path):
    board = VirtualArduino(link=str(tmp_path / 'a'), config=FirmwareConfig(arming_ms=0),
                           reset_on_open=False).start()
    host = Host(board.port)
    try:
        host.pump(0.3)
        assert host.of_type(p.Telemetry) and not host.of_type(p.Hello)  # already running: no HELLO
        host.send(p.HelloRequest())
        host.send(p.Ping(77))
        assert host.pump(1.0, until=lambda: host.of_type(p.Hello) and host.of_type(p.Pong))
        assert host.of_type(p.Pong)[0][2].token == 77
        host.send(p.Estop(1))
        host.drive(8000, 8000, 0.3)
        applied = board.applied()
        assert applied.estop and (applied.mode, applied.throttle_us) == (p.Mode.ESTOP, 1500)
        host.send(p.Estop(0))
        host.drive(8000, 8000, 0.2)
        assert board.applied().throttle_us == 1900
        assert [e for _, e in board.estop_events()] == [1, 0]
    finally:
        host.close()
        board.stop()


def test_unplug_and_replug_like_usb(arduino):
    host = Host(arduino.port)
    first_device = arduino.device
    try:
        host.pump(2.0, until=lambda: host.of_type(p.Hello))
        arduino.unplug()
        assert not os.path.lexists(arduino.port)
        with pytest.raises(serial.SerialException):
            host.pump(0.2)
            host.send(p.Command(0, 0))
    finally:
        host.close()
    arduino.replug()
    assert os.path.islink(arduino.port) and os.readlink(arduino.port) == arduino.device
    host = Host(arduino.port)
    try:
        assert host.pump(2.0, until=lambda: host.of_type(p.Hello))  # re-enumerated board resets on open
        assert arduino.counters()['boots'] == 2 and arduino.counters()['unplugs'] == 1
    finally:
        host.close()
    assert first_device is not None


def test_injected_faults_reach_the_host_as_errors(arduino, host):
    arduino.inject_corrupt_frame('crc')
    arduino.inject_corrupt_frame('frame')
    arduino.inject(b'\x00\x03\x01\x00')
    host.pump(0.2)
    assert host.decoder.crc_errors == 1 and host.decoder.frame_errors == 2
    count = len(host.of_type(p.Telemetry))
    host.pump(0.2)
    assert len(host.of_type(p.Telemetry)) > count  # still in sync
    with pytest.raises(ValueError):
        arduino.inject_corrupt_frame('nonsense')


def test_reset_sends_hello_again_and_rearms(arduino, host):
    host.drive(3000, 3000, 0.3)
    arduino.reset()
    assert arduino.applied().booting and arduino.applied().throttle_us == 1500
    assert host.pump(2.0, until=lambda: len(host.of_type(p.Hello)) == 2)
    assert arduino.counters()['boots'] == 2


def test_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / 'not_a_link'
    path.write_text('precious')
    with pytest.raises(FileExistsError):
        VirtualArduino(link=str(path)).start()
    assert path.read_text() == 'precious'


def test_cli_serves_the_link_and_exits_cleanly(tmp_path):
    link = str(tmp_path / 'cli_arduino')
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, '-m', 'rover_bridge.twin.cli', '--link', link,
                             '--status-period', '0.2', '--arming-ms', '0', '--boot-delay', '0.05'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f'virtual arduino: {link} -> /dev/pts/'), first
        host = Host(link)
        try:
            assert host.pump(3.0, until=lambda: host.of_type(p.Hello))
            host.drive(0, 5000, 0.3)
        finally:
            host.close()
        status = proc.stdout.readline()
        assert 'mode=' in status and 'commands=' in status
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    assert not os.path.lexists(link)


def test_refuses_to_take_over_the_live_link_of_another_instance(tmp_path):
    link = str(tmp_path / 'arduino')
    proc = subprocess.Popen([sys.executable, '-m', 'rover_bridge.twin.cli', '--link', link,
                             '--status-period', '0'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    try:
        assert proc.stdout.readline().startswith(f'virtual arduino: {link} -> /dev/pts/')
        target = os.readlink(link)
        with pytest.raises(LinkInUse, match=rf'live link of another virtual Arduino \(pid {proc.pid}\)'):
            VirtualArduino(link=link).start()
        assert os.readlink(link) == target  # untouched: the first board keeps its port
        second = subprocess.run([sys.executable, '-m', 'rover_bridge.twin.cli', '--link', link],
                                capture_output=True, text=True, timeout=20)
        assert second.returncode == 2 and 'refusing to replace it' in second.stderr
    finally:
        proc.kill()  # dies without cleaning up: its link and lock file stay behind
        proc.wait(timeout=5)
    assert os.path.islink(link)
    with VirtualArduino(link=link) as board:  # a dead owner's link is replaced
        assert os.readlink(link) == board.device
    assert not os.path.lexists(link) and not os.path.lexists(link + '.lock')

"""SerialLink (no ROS) against the virtual Arduino and raw ptys."""
import os
import select
import time
import tty

import pytest

from rover_bridge import protocol as p
from rover_bridge.link import LinkConfig, LinkState, SerialLink
from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.pty_board import VirtualArduino
from rover_common.process import wait_for

FAST = FirmwareConfig(arming_ms=50)


class Rig:
    def __init__(self, tmp_path, command=(0.5, -0.25), board_kwargs=None, **link_kwargs):
        self.board = VirtualArduino(link=str(tmp_path / 'arduino'), config=FAST, boot_delay=0.05,
                                    **(board_kwargs or {})).start()
        self.logs = []
        self.telemetry = []
        self.command = command
        self.link = SerialLink(
            LinkConfig(port=self.board.port, **link_kwargs),
            command_source=lambda: (*self.command, 'command'),
            neutral_source=lambda: (0.0, 0.0),
            on_telemetry=lambda t, now: self.telemetry.append((now, t)),
            on_log=lambda level, text: self.logs.append((level, text)))

    def start(self):
        self.link.start()
        return self

    def up(self, timeout=3.0):
        return wait_for(lambda: self.link.state == LinkState.UP, timeout)

    def close(self):
        self.link.stop()
        self.board.stop()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path).start()
    yield r
    r.close()


def test_handshake_then_commands_at_the_fixed_rate_with_the_right_values(rig):
    assert rig.up()
    assert rig.link.stats()['firmware'] == f'{p.PROTOCOL_VERSION_MAJOR}.{p.PROTOCOL_VERSION_MINOR}'
    time.sleep(0.3)
    start = time.monotonic()
    time.sleep(1.5)
    window = [c for c in rig.board.commands(since=start) if c.time <= start + 1.5]
    assert 27 <= len(window) / 1.5 <= 33, len(window)
    assert {(c.steering, c.throttle) for c in window} == {(5000, -2500)}
    assert rig.board.applied().steering_us == 1750
    stats = rig.link.stats()
    assert stats['rtt_p50_ms'] > 0 and stats['rx_crc_errors'] == stats['rx_frame_errors'] == 0
    assert rig.telemetry and rig.telemetry[-1][1].steering == 5000
    seqs = [c.seq for c in window]
    assert all((b - a) & 0xFF >= 1 for a, b in zip(seqs, seqs[1:]))  # sequence numbers advance


def test_fresh_commands_go_out_at_once_locked_to_the_publisher_phase(rig):
    """A 30 Hz publisher whose phase differs from the link's: each new command
    reaches the wire within a few ms instead of waiting up to a period."""
    assert rig.up()
    time.sleep(0.2)
    delays = []
    woke_late = []  # the publisher's own wake-up lateness: this machine's scheduling noise right now
    start = time.monotonic()
    next_publish = start + 0.0137  # deliberately off the link's phase
    for i in range(60):
        while time.monotonic() < next_publish:
            time.sleep(0.0005)
        value = (i % 9 + 1) / 10
        rig.command = (value, 0.0)
        published = time.monotonic()
        woke_late.append(published - next_publish)
        rig.link.command_updated()
        want = round(value * 10000)
        assert wait_for(lambda: any(c.steering == want for c in rig.board.commands(since=published)), 0.2,
                        interval=0.001)  # a slow poll here would make this publisher jitter
        arrival = next(c.time for c in rig.board.commands(since=published) if c.steering == want)
        delays.append(arrival - published)
        next_publish += 1 / 30
    # locked from the first command (a repeat never holds one back; the first 20 are left out
    # as the machine's warm-up). Unlocked, the delays spread over the whole 33 ms period (a CI
    # run saw p90 32 ms when a late publisher still lost the lock behind a repeat). The path
    # has two thread wake-ups (the link's sender, the board's reader), so a loaded machine's
    # wake-up noise counts twice.
    p90 = lambda values: sorted(values)[len(values) * 9 // 10]  # noqa: E731
    locked_ms = [d * 1000 for d in delays[20:]]
    noise_ms = p90([w * 1000 for w in woke_late[20:]])
    assert p90(locked_ms) < 5.0 + 2 * noise_ms, (sorted(locked_ms), noise_ms)
    # the fresh sends replace the periodic ones rather than adding to them
    elapsed = time.monotonic() - start
    assert 27 <= len(rig.board.commands(since=start)) / elapsed <= 33


def test_stop_sends_neutral_before_closing(rig):
    assert rig.up()
    assert wait_for(lambda: rig.board.applied().steering_us == 1750, 2.0)
    rig.link.stop()
    assert wait_for(lambda: rig.board.applied().steering_us == 1500, 0.1)  # long before the 250 ms watchdog
    last = rig.board.commands()[-1]
    assert (last.steering, last.throttle) == (0, 0)
    assert not rig.board.applied().watchdog_tripped


def test_board_that_did_not_reset_is_asked_for_hello_at_once(tmp_path):
    r = Rig(tmp_path, board_kwargs={'reset_on_open': False}, hello_request_after=1.5).start()
    try:
        start = time.monotonic()
        assert r.up(timeout=3.0)
        # Telemetry shows the firmware runs, so the bridge asks without waiting 1.5 s for a bootloader.
        assert time.monotonic() - start < 1.0
        assert r.link.counts['hello_requests'] >= 1
    finally:
        r.close()


def test_incompatible_firmware_is_refused_with_a_clear_error(tmp_path):
    r = Rig(tmp_path, board_kwargs={'version': (9, 2)}).start()
    try:
        assert wait_for(lambda: r.link.state == LinkState.INCOMPATIBLE, 3.0)
        errors = [text for level, text in r.logs if level == 'error']
        assert errors and 'incompatible firmware' in errors[0] and '9.2' in errors[0]
        assert 'flash' in errors[0]
        time.sleep(0.3)
        assert r.board.counters().get('commands_rx', 0) == 0  # nothing was ever commanded
        assert not r.board.counters()['peer_open']  # port released, e.g. for flashing
        assert r.link.state == LinkState.INCOMPATIBLE
    finally:
        r.close()


def test_unplug_and_replug_reconnects(rig):
    assert rig.up()
    rig.board.unplug()
    assert wait_for(lambda: rig.link.state != LinkState.UP, 2.0)
    time.sleep(0.8)  # the port stays away for a while: the bridge keeps retrying with backoff
    rig.board.replug()
    replugged = time.monotonic()
    assert wait_for(lambda: rig.board.commands(since=replugged), 2.0)
    stats = rig.link.stats()
    assert stats['reconnects'] == 1 and stats['link_losses'] == 1 and stats['open_failures'] >= 2
    assert any('cannot open' in text for _, text in rig.logs)


def test_garbage_from_the_board_is_counted_and_the_link_stays_up(rig):
    assert rig.up()
    for i in range(10):
        rig.board.inject_garbage(100, seed=i)
        rig.board.inject_corrupt_frame('crc')
        rig.board.inject_corrupt_frame('frame')
        time.sleep(0.02)
    time.sleep(0.3)
    stats = rig.link.stats()
    assert stats['rx_crc_errors'] >= 10 and stats['rx_frame_errors'] >= 10
    assert stats['state'] == 'up' and stats['reconnects'] == 0 and stats['link_losses'] == 0
    assert stats['telemetry_age'] < 0.1


def test_estop_latches_on_the_board_and_survives_its_reset(rig):
    assert rig.up()
    rig.link.set_estop(True)
    assert wait_for(lambda: rig.board.applied().mode == p.Mode.ESTOP, 1.0)  # (after the short arming)
    reset = time.monotonic()
    rig.board.reset()  # the board forgets its latch ...
    applied = []
    assert wait_for(lambda: applied.append(rig.board.applied()) or applied[-1].estop, 3.0, interval=0.002)
    assert rig.link.counts['arduino_resets'] == 1  # ... and the bridge re-sends it
    # from the reset to the latch: neutral all along (bootloader, arming, then ESTOP before any COMMAND)
    assert {(a.steering_us, a.throttle_us) for a in applied} == {(1500, 1500)}
    print(f'SAFETY Arduino reset while latched: relatched_after_ms={(time.monotonic() - reset) * 1000:.1f} '
          f'non_neutral_samples=0 of {len(applied)}')
    rig.link.set_estop(False)
    assert wait_for(lambda: rig.board.applied().mode == p.Mode.AUTONOMOUS, 1.0)
    assert [e for _, e in rig.board.estop_events()][-1] == 0


def test_silent_board_times_out_and_is_reopened(tmp_path):
    """HELLO then silence -> link_timeout; then no HELLO at all -> hello_timeout; both retried."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link_path = str(tmp_path / 'silent')
    os.symlink(os.ttyname(slave), link_path)
    os.close(slave)
    poller = select.poll()
    poller.register(master, select.POLLIN)
    logs = []
    link = SerialLink(LinkConfig(port=link_path, link_timeout=0.3, hello_timeout=0.5, hello_request_after=0.1,
                                 backoff_min=0.05),
                      command_source=lambda: (0.0, 0.0, 'none'), on_log=lambda lv, t: logs.append(t)).start()
    try:
        # Wait until the bridge has the port open (no more POLLHUP), then say HELLO once.
        assert wait_for(lambda: not any(ev & select.POLLHUP for _, ev in poller.poll(0)), 2.0)
        time.sleep(0.05)
        os.write(master, p.encode(p.Hello(1, 0, 250, 20, 0, 1000, 1500, 2000, 1000, 1500, 2000), 0))
        assert wait_for(lambda: link.state == LinkState.UP, 1.0)
        assert wait_for(lambda: link.counts['link_losses'] == 1, 1.5)
        assert any('no data from the Arduino' in t for t in logs)
        assert wait_for(lambda: any('no HELLO' in t for t in logs), 3.0)
        data = b''
        while select.select([master], [], [], 0)[0]:
            try:
                data += os.read(master, 4096)
            except OSError:
                break
        sent = [type(f.message) for f in p.StreamDecoder().feed(data)]
        assert p.HelloRequest in sent and p.Command in sent
    finally:
        link.stop()
        os.close(master)


def _read_commands(master, count, timeout):
    """ESTOP and COMMAND frames the link wrote to the raw pty, until `count` COMMANDs or timeout."""
    decoder, frames = p.StreamDecoder(), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(isinstance(m, p.Command) for m in frames) < count:
        if select.select([master], [], [], 0.01)[0]:
            frames += [f.message for f in decoder.feed(os.read(master, 4096))
                       if isinstance(f.message, (p.Estop, p.Command))]
    return frames


def test_a_link_started_latched_sends_estop_before_any_command_and_only_neutral(tmp_path):
    """Like a bridge respawned with the latch engaged: after every HELLO (connect, board reset)
    ESTOP(1) goes out first, and COMMANDs are neutral even if the command source says otherwise."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link_path = str(tmp_path / 'board')
    os.symlink(os.ttyname(slave), link_path)
    os.close(slave)
    poller = select.poll()
    poller.register(master, select.POLLIN)
    hello = p.encode(p.Hello(1, 0, 250, 20, 0, 1000, 1500, 2000, 1000, 1500, 2000), 0)
    link = SerialLink(LinkConfig(port=link_path, hello_request_after=5.0),
                      command_source=lambda: (0.5, 0.5, 'command'),  # a source that ignores the latch
                      neutral_source=lambda: (0.1, 0.0), estop=True).start()
    try:
        assert wait_for(lambda: not any(ev & select.POLLHUP for _, ev in poller.poll(0)), 2.0)
        time.sleep(0.05)
        for _boot in range(2):  # the connect, then a board reset (HELLO while up)
            os.write(master, hello)
            frames = _read_commands(master, 5, 3.0)
            assert frames and frames[0] == p.Estop(1), frames[:3]
            commands = [m for m in frames if isinstance(m, p.Command)]
            assert len(commands) >= 5 and set(commands) == {p.Command(1000, 0)}
        assert link.stats()['estop'] is True
    finally:
        link.stop()
        os.close(master)

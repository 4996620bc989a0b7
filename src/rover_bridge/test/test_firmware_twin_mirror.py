"""The firmware twin (FirmwareCore) must behave exactly like the C++ firmware.

Random timelines (commands, e-stops, pings, HELLO requests, garbage, corrupt frames,
RC pulses, pauses longer than the watchdog, the millis() wrap) run through both the
C++ header (built with g++) and the Python twin; every output line must match. The
compiled configuration is the twin's, defaults included.
"""
import dataclasses
import random

import pytest

from rover_bridge import firmware_host
from rover_bridge import protocol as p
from rover_bridge.twin.firmware_twin import FirmwareConfig, FirmwareCore

pytestmark = pytest.mark.skipif(
    firmware_host.compiler() is None,
    reason='g++ not found: install a host C++ compiler (apt-get install g++) to compare with the firmware')

CONFIGS = {
    'default': FirmwareConfig(),
    'custom': FirmwareConfig(watchdog_ms=120, arming_ms=0, telemetry_period_ms=10, steering_min_us=1100,
                             steering_center_us=1480, steering_max_us=1950, throttle_min_us=1300,
                             throttle_neutral_us=1500, throttle_max_us=1650, rc_manual_override=True),
}


def random_bytes(rng: random.Random) -> bytes:
    kind = rng.random()
    seq = rng.randrange(256)
    if kind < 0.45:
        return p.encode(p.Command(rng.randrange(-15000, 15000), rng.randrange(-15000, 15000)), seq)
    if kind < 0.52:
        return p.encode(p.Estop(rng.randrange(2)), seq)
    if kind < 0.6:
        return p.encode(p.Ping(rng.randrange(1 << 32)), seq)
    if kind < 0.65:
        return p.encode(p.HelloRequest(), seq)
    if kind < 0.75:
        return rng.randbytes(rng.randrange(1, 80))
    frame = bytearray(p.encode(p.Command(rng.randrange(-10000, 10000), 0), seq))
    frame[rng.randrange(1, len(frame) - 1)] ^= 1 << rng.randrange(8)
    return bytes(frame)


def random_rc(rng: random.Random) -> tuple[int, int]:
    r = rng.random()
    if r < 0.6:
        return 0, 0
    if r < 0.9:
        return rng.randrange(900, 2100), rng.randrange(900, 2100)
    return rng.randrange(0, 3000), rng.randrange(0, 3000)


def timeline(seed: int, config: FirmwareConfig, events: int = 800) -> list[str]:
    rng = random.Random(seed)
    now = boot = rng.choice([0, 123456, 0xFFFFFFFF - 3000])
    last_feed = now
    lines = [f'fw_begin {now}']
    for _ in range(events):
        r = rng.random()
        feed = True
        if r < 0.15:  # probe the watchdog edge exactly: one ms before, at, after
            now = (last_feed + config.watchdog_ms + rng.choice([-1, 0, 1])) & 0xFFFFFFFF
            feed = False
        elif r < 0.18:  # and the end of arming
            now = (boot + config.arming_ms + rng.choice([-1, 0, 1])) & 0xFFFFFFFF
        elif r < 0.95:
            now = (now + rng.randrange(0, 40)) & 0xFFFFFFFF
        else:
            now = (now + rng.randrange(200, 2500)) & 0xFFFFFFFF
        if feed:
            lines.append(f'fw_feed {now} {b"".join(random_bytes(rng) for _ in range(rng.randrange(1, 4))).hex()}')
            last_feed = now
        rc = random_rc(rng)
        lines.append(f'fw_update {now} {rc[0]} {rc[1]}')
        if rng.random() < 0.2:
            lines.append(f'fw_telemetry {now}')
        if rng.random() < 0.02:
            lines.append('fw_hello')
        if rng.random() < 0.01:
            boot = now
            lines.append(f'fw_begin {now}')
    return lines


def run_python(lines: list[str], config: FirmwareConfig) -> list[str]:
    """The same driver language, answered by FirmwareCore."""
    core = FirmwareCore(config)
    out = []
    for line in lines:
        cmd, *args = line.split()
        if cmd == 'fw_begin':
            core.begin(int(args[0]))
            out.append('ok')
        elif cmd == 'fw_feed':
            out += [f'tx {reply.hex()}' for reply in core.on_bytes(bytes.fromhex(args[1]), int(args[0]))]
            out.append('ok')
        elif cmd == 'fw_update':
            core.update(int(args[0]), int(args[1]), int(args[2]))
            out.append(f'state mode={int(core.mode)} flags={core.flags()} steering_us={core.steering_us} '
                       f'throttle_us={core.throttle_us} trips={core.watchdog_trips}')
        elif cmd == 'fw_telemetry':
            out.append(f'tx {core.telemetry_frame(int(args[0])).hex()}')
        elif cmd == 'fw_hello':
            out.append(f'tx {core.hello_frame().hex()}')
    return out


@pytest.mark.parametrize('config_name', sorted(CONFIGS))
@pytest.mark.parametrize('seed', [1, 2, 3])
def test_python_mirror_matches_cpp_firmware(config_name, seed):
    config = CONFIGS[config_name]
    lines = timeline(seed * 100 + len(config_name), config)
    cpp = firmware_host.run_driver(lines, extra_flags=config.compiler_flags())
    python = run_python(lines, config)
    assert len(cpp) == len(python)
    for i, (a, b) in enumerate(zip(cpp, python)):
        assert a == b, f'line {i}: C++ {a!r} != Python {b!r}'
    # The timelines must exercise what they claim to.
    modes = {line.split()[1] for line in cpp if line.startswith('state')}
    expected_modes = {'mode=1', 'mode=3', 'mode=4'} | ({'mode=2'} if config.rc_manual_override else {'mode=0'})
    assert expected_modes <= modes, modes


def test_hello_of_the_mirror_equals_the_firmware_hello():
    for config in CONFIGS.values():
        cpp = firmware_host.run_driver(['fw_begin 0', 'fw_hello'], extra_flags=config.compiler_flags())
        assert cpp[1] == f'tx {FirmwareCore(config).hello_frame().hex()}'


@pytest.mark.parametrize('config_name', sorted(CONFIGS))
def test_the_compiled_configuration_is_the_twins(config_name):
    """The defaults the twin reads from rover_protocol.h are what the compiler sees, and
    compiler_flags() build exactly the twin's configuration (RC override included, which HELLO lacks)."""
    config = CONFIGS[config_name]
    flags = [] if config == FirmwareConfig() else config.compiler_flags()
    out = firmware_host.run_driver(['config'], extra_flags=flags)
    values = ' '.join(f'{f.name}={int(getattr(config, f.name))}' for f in dataclasses.fields(config))
    assert out == [f'config {values}']

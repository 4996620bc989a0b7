"""The firmware twin's logic without a port: output mapping, arming, range rejection, defaults."""
import pytest

from rover_bridge import protocol as p
from rover_bridge.twin import firmware_twin as twin
from rover_bridge.twin.firmware_twin import FirmwareConfig, FirmwareCore


def test_output_mapping_and_config_validation():
    assert twin.normalized_to_us(10000, 1000, 1500, 2000) == 2000
    assert twin.normalized_to_us(-5000, 1100, 1480, 1950) == 1290  # asymmetric: 1480 - 190
    assert twin.normalized_to_us(32000, 1000, 1500, 2000) == 2000  # clamped
    for n in range(-10000, 10001, 137):
        us = twin.normalized_to_us(n, 1000, 1500, 2000)
        assert abs(twin.us_to_normalized(us, 1000, 1500, 2000) - n) <= 10  # 1 us = 20 units
    assert twin.us_to_normalized(1500, 1500, 1500, 1500) == 0
    with pytest.raises(ValueError, match='steering limits'):
        FirmwareConfig(steering_min_us=1600)


def test_core_ignores_commands_while_arming_then_applies_them():
    core = FirmwareCore(FirmwareConfig(arming_ms=100))
    core.begin(0)
    core.on_bytes(p.encode(p.Command(10000, -10000), 3), 10)
    core.update(50)
    assert (core.mode, core.steering_us, core.throttle_us) == (p.Mode.ARMING, 1500, 1500)
    core.on_bytes(p.encode(p.Command(10000, -10000), 4), 90)
    core.update(100)
    assert (core.mode, core.steering_us, core.throttle_us) == (p.Mode.AUTONOMOUS, 2000, 1000)
    assert core.telemetry(100).ack_seq == 4


def raw_frame(message, seq=0) -> bytes:
    """A CRC-valid frame of any field values (what CRC-colliding noise looks like)."""
    data = bytes((int(message.TYPE), seq)) + p.pack_body(message)
    return b'\x00' + p.cobs_encode(data + p.crc16(data).to_bytes(2, 'little')) + b'\x00'


def test_core_rejects_out_of_range_commands_and_keeps_the_last_valid_one():
    core = FirmwareCore(FirmwareConfig(arming_ms=0))
    core.on_bytes(p.encode(p.Command(5000, 2000), 1), 0)
    core.update(0)
    # Rejected whole (no clamping), flagged and counted; an ESTOP(2) is no e-stop either.
    core.on_bytes(raw_frame(p.Command(32767, 0), 2) + raw_frame(p.Command(0, -10001), 3)
                  + raw_frame(p.Estop(2), 4), 100)
    core.update(100)
    assert (core.mode, core.steering_us, core.throttle_us) == (p.Mode.AUTONOMOUS, 1750, 1600)
    assert core.flags() & p.Flag.RANGE and core.parser.range_errors == 3
    telemetry = core.telemetry(100)
    assert (telemetry.ack_seq, telemetry.frame_errors) == (1, 3)
    core.update(249)
    assert core.mode == p.Mode.AUTONOMOUS
    core.update(250)  # the watchdog counts from the last valid COMMAND (t=0), not the rejected ones
    assert (core.mode, core.steering_us) == (p.Mode.FAILSAFE, 1500)
    core.on_bytes(p.encode(p.Command(-5000, 0), 5), 260)
    core.update(260)
    assert core.steering_us == 1250 and not core.flags() & p.Flag.RANGE


def test_defaults_come_from_the_firmware_header():
    from rover_bridge import firmware_host
    defaults = firmware_host.firmware_defaults()
    config = FirmwareConfig()
    assert (config.watchdog_ms, config.telemetry_period_ms, config.arming_ms) == (
        defaults['WATCHDOG_MS'], defaults['TELEMETRY_MS'], defaults['ARMING_MS'])
    assert (defaults['WATCHDOG_MS'], defaults['TELEMETRY_MS']) == (250, 20)  # what PROTOCOL.md documents

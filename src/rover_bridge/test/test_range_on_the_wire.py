"""Issue 10, "range checks on the wire": a CRC-valid TELEMETRY with impossible values
(+-32767 -> rover/state 3.2767, mode 77) must never reach the bridge's telemetry callback;
the link counts it (stats 'rx_range_errors') and stays up."""
import dataclasses
import time

from rover_bridge import protocol as p
from rover_bridge.link import LinkConfig, LinkState, SerialLink
from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.pty_board import VirtualArduino
from rover_common.process import wait_for


def raw_frame(message, seq=0) -> bytes:
    data = bytes((int(message.TYPE), seq)) + p.pack_body(message)
    return b'\x00' + p.cobs_encode(data + p.crc16(data).to_bytes(2, 'little')) + b'\x00'


def test_impossible_telemetry_is_counted_and_never_delivered(tmp_path):
    board = VirtualArduino(link=str(tmp_path / 'arduino'), config=FirmwareConfig(arming_ms=50),
                           boot_delay=0.05).start()
    received = []
    link = SerialLink(LinkConfig(port=board.port), command_source=lambda: (0.0, 0.0, 'command'),
                      neutral_source=lambda: (0.0, 0.0), on_telemetry=lambda t, now: received.append(t),
                      on_log=lambda level, text: None)
    try:
        link.start()
        assert wait_for(lambda: link.state == LinkState.UP and received, 5.0)
        good = board.telemetry()
        bad = [dataclasses.replace(good, steering=32767, throttle=-32767), dataclasses.replace(good, mode=77),
               dataclasses.replace(good, steering_us=0), dataclasses.replace(good, flags=0x80)]
        for message in bad:
            board.inject(raw_frame(message))
        assert wait_for(lambda: link.stats()['rx_range_errors'] == len(bad), 3.0), link.stats()
        time.sleep(0.1)
        assert all(abs(t.steering) <= p.SCALE and abs(t.throttle) <= p.SCALE and t.mode in p.Mode._value2member_map_
                   and p.PULSE_MIN_US <= t.steering_us <= p.PULSE_MAX_US for t in received)
        assert link.state == LinkState.UP and link.stats()['rx_crc_errors'] == 0
    finally:
        link.stop()
        board.stop()

"""The firmware's C++ (rover_protocol.h and the sketch) built with the host g++.

Runs the shared vectors through the C++ parser/encoder, a watchdog timeline
(also across the millis() wrap), a non-default compile-time configuration, and
the real sketch against a stub Arduino core (its Timer1 PWM set-up and pulse widths included).
"""
import json
import random
import re
import struct
import subprocess
from pathlib import Path

import pytest

from rover_bridge import firmware_host
from rover_bridge import protocol as p

pytestmark = pytest.mark.skipif(
    firmware_host.compiler() is None,
    reason='g++ not found: install a host C++ compiler (apt-get install g++) to test the firmware')

VECTORS = json.loads((Path(__file__).resolve().parent.parent / 'protocol_vectors.json').read_text())


def frame_line(entry) -> str:
    """The driver's printout of one decoded frame, built from a vector entry."""
    return ' '.join(['frame', entry['type'], str(entry['seq'])] + [f'{k}={v}' for k, v in entry['fields'].items()])


def python_decode_lines(data: bytes) -> list[str]:
    """What the driver must print for `decode`, computed with the Python codec."""
    decoder = p.StreamDecoder()
    lines = []
    for i in range(len(data)):
        before = (decoder.crc_errors, decoder.frame_errors, decoder.range_errors)
        for seq, message in decoder.feed(data[i:i + 1]):
            lines.append(frame_line({'type': message.TYPE.name, 'seq': seq, 'fields': p.fields(message)}))
        if decoder.crc_errors > before[0]:
            lines.append('crc_error')
        if decoder.frame_errors > before[1]:
            lines.append('frame_error')
        if decoder.range_errors > before[2]:
            lines.append('range_error')
    lines.append(f'counts crc_errors={decoder.crc_errors} frame_errors={decoder.frame_errors} '
                 f'range_errors={decoder.range_errors}')
    return lines


def parse_state(line: str) -> dict:
    assert line.startswith('state '), line
    return {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', line)}


def test_sketch_runs_on_host_with_stub_arduino():
    binary = firmware_host.build('sketch_test.cpp')
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r'sketch test: \d+ checks, 0 failures', result.stdout)


def test_crc_and_cobs_vectors():
    lines = [f'crc {e["data"] or "-"}' for e in VECTORS['crc16_ccitt_false']]
    lines += [f'cobs_encode {e["decoded"] or "-"}' for e in VECTORS['cobs']]
    lines += [f'cobs_decode {e["encoded"]}' for e in VECTORS['cobs']]
    lines += [f'cobs_decode {h}' for h in VECTORS['cobs_invalid']]
    out = firmware_host.run_driver(lines)
    expected = [f'crc {e["crc"]}' for e in VECTORS['crc16_ccitt_false']]
    expected += [f'hex {e["encoded"]}' for e in VECTORS['cobs']]
    expected += [f'hex {e["decoded"] or "-"}' for e in VECTORS['cobs']]
    expected += ['error'] * len(VECTORS['cobs_invalid'])
    assert out == expected


def test_cpp_encodes_every_frame_vector():
    lines = [' '.join(['encode', e['type'], str(e['seq'])] + [str(v) for v in e['fields'].values()])
             for e in VECTORS['frames']]
    assert firmware_host.run_driver(lines) == [f'hex {e["wire"]}' for e in VECTORS['frames']]


def test_cpp_decodes_every_frame_vector():
    out = firmware_host.run_driver([f'decode {e["wire"]}' for e in VECTORS['frames']])
    expected = []
    for e in VECTORS['frames']:
        expected += [frame_line(e), 'counts crc_errors=0 frame_errors=0 range_errors=0']
    assert out == expected


@pytest.mark.parametrize('entry', VECTORS['streams'], ids=lambda e: e['name'])
def test_cpp_decodes_every_stream_vector(entry):
    out = firmware_host.run_driver([f'decode {entry["wire"]}'])
    assert [line for line in out if line.startswith('frame ')] == [frame_line(f) for f in entry['frames']]
    assert out[-1] == (f'counts crc_errors={entry["crc_errors"]} frame_errors={entry["frame_errors"]} '
                       f'range_errors={entry["range_errors"]}')


def test_cpp_and_python_decoders_agree_on_random_streams():
    """Frames, garbage, truncations and bit flips: identical frames and error events."""
    rng = random.Random(5)
    streams = []
    for _ in range(40):
        data = bytearray()
        for _ in range(rng.randrange(1, 12)):
            choice = rng.random()
            frame = bytearray(p.encode(p.Command(rng.randrange(-20000, 20000), rng.randrange(-20000, 20000)),
                                       rng.randrange(256)))
            if choice < 0.15:
                data += rng.randbytes(rng.randrange(1, 90))
            elif choice < 0.3:
                frame[rng.randrange(1, len(frame) - 1)] ^= 1 << rng.randrange(8)
                data += frame
            elif choice < 0.4:
                data += frame[:rng.randrange(1, len(frame))]
            else:
                data += frame
        streams.append(bytes(data))
    out = firmware_host.run_driver([f'decode {s.hex() or "-"}' for s in streams])
    expected = [line for s in streams for line in python_decode_lines(s)]
    assert out == expected


def command_hex(steering, throttle, seq=0):
    return p.encode(p.Command(steering, throttle), seq).hex()


def watchdog_timeline(start_ms: int) -> list[dict]:
    """Commands every 33 ms until 1980, a pause, commands again from 2500; one update per ms."""
    lines = [f'fw_begin {start_ms}']
    for t in range(0, 2701):
        now = (start_ms + t) & 0xFFFFFFFF
        if (t <= 1980 or t >= 2500) and t % 33 == 0 or t == 2500:
            lines.append(f'fw_feed {now} {command_hex(5000, 2000, t % 256)}')
        lines.append(f'fw_update {now} 0 0')
    return [parse_state(line) for line in firmware_host.run_driver(lines) if line.startswith('state')]


@pytest.mark.parametrize('start_ms', [0, 0xFFFFFFFF - 1000], ids=['boot', 'millis-wrap'])
def test_cpp_watchdog_timeline(start_ms):
    states = watchdog_timeline(start_ms)
    neutral = {'steering_us': 1500, 'throttle_us': 1500}
    applied = {'steering_us': 1750, 'throttle_us': 1600}
    for t, s in enumerate(states):
        outputs = {'steering_us': s['steering_us'], 'throttle_us': s['throttle_us']}
        if t < 1500:  # ESC arming: neutral whatever the commands
            assert (s['mode'], outputs) == (p.Mode.ARMING, neutral), t
            assert s['flags'] & p.Flag.ARMING
        elif t < 1980 + 250:  # fresh commands: applied
            assert (s['mode'], outputs) == (p.Mode.AUTONOMOUS, applied), t
        elif t < 2500:  # 250 ms after the last command: neutral, flagged, counted once
            assert (s['mode'], outputs) == (p.Mode.FAILSAFE, neutral), t
            assert s['flags'] & p.Flag.WATCHDOG and s['trips'] == 1, t
        else:  # a valid command resumes at once
            assert (s['mode'], outputs) == (p.Mode.AUTONOMOUS, applied), t
            assert not s['flags'] & p.Flag.WATCHDOG and s['trips'] == 1, t


def test_cpp_compile_time_configuration():
    """-D overrides: 100 ms watchdog, no arming, RC manual override, tighter throttle limit."""
    flags = ['-DROVER_WATCHDOG_MS=100', '-DROVER_ARMING_MS=0', '-DROVER_RC_MANUAL_OVERRIDE=1',
             '-DROVER_THROTTLE_MAX_US=1700']
    lines = ['fw_begin 0', 'fw_hello',
             f'fw_feed 0 {command_hex(0, 10000)}', 'fw_update 0 0 0', 'fw_update 99 0 0', 'fw_update 100 0 0',
             'fw_update 150 1600 1900', 'fw_update 151 700 1900']
    out = firmware_host.run_driver(lines, extra_flags=flags)
    hello = p.decode_segment(bytes.fromhex(out[1].split()[1])[1:-1]).message
    assert (hello.watchdog_ms, hello.arming_ms, hello.throttle_max_us) == (100, 0, 1700)
    states = [parse_state(line) for line in out if line.startswith('state')]
    assert (states[0]['mode'], states[0]['throttle_us']) == (p.Mode.AUTONOMOUS, 1700)  # full throttle -> limit
    assert states[1]['mode'] == p.Mode.AUTONOMOUS
    assert (states[2]['mode'], states[2]['throttle_us']) == (p.Mode.FAILSAFE, 1500)
    # Valid RC pulses take over; the throttle is clamped to the limit.
    assert (states[3]['mode'], states[3]['steering_us'], states[3]['throttle_us']) == (p.Mode.MANUAL, 1600, 1700)
    assert states[3]['flags'] & p.Flag.RC_PRESENT
    # An implausible pulse (700 us) is "no signal": back to failsafe.
    assert states[4]['mode'] == p.Mode.FAILSAFE and not states[4]['flags'] & p.Flag.RC_PRESENT


def test_cpp_replies_to_ping_and_hello_request_and_latches_estop():
    lines = ['fw_begin 0', f'fw_feed 0 {p.encode(p.Ping(0xCAFEF00D), 1).hex()}',
             f'fw_feed 1 {p.encode(p.HelloRequest(), 2).hex()}',
             f'fw_feed 1600 {command_hex(3000, 3000)}', 'fw_update 1600 0 0',
             f'fw_feed 1610 {p.encode(p.Estop(1), 3).hex()}{command_hex(3000, 3000)}', 'fw_update 1610 0 0',
             f'fw_feed 1620 {p.encode(p.Estop(0), 4).hex()}{command_hex(3000, 3000)}', 'fw_update 1620 0 0',
             'fw_telemetry 1621']
    out = firmware_host.run_driver(lines)
    tx = [p.decode_segment(bytes.fromhex(line.split()[1])[1:-1]) for line in out if line.startswith('tx')]
    assert tx[0] == p.Frame(0, p.Pong(0xCAFEF00D))
    assert isinstance(tx[1].message, p.Hello) and tx[1].seq == 1
    states = [parse_state(line) for line in out if line.startswith('state')]
    assert [s['mode'] for s in states] == [p.Mode.AUTONOMOUS, p.Mode.ESTOP, p.Mode.AUTONOMOUS]
    assert states[1]['steering_us'] == 1500 and states[1]['flags'] & p.Flag.ESTOP
    telemetry = tx[2].message
    assert (telemetry.steering, telemetry.throttle, telemetry.steering_us) == (3000, 3000, 1650)
    assert telemetry.uptime_ms == 1621 and tx[2].seq == 2


def raw_hex(msg_type, body: bytes, seq=0):
    """A CRC-valid frame with any field values (what a corrupted-but-CRC-valid frame looks like)."""
    data = bytes((msg_type, seq)) + body
    return (b'\x00' + p.cobs_encode(data + struct.pack('<H', p.crc16(data))) + b'\x00').hex()


def raw_command_hex(steering, throttle, seq=0):
    return raw_hex(p.MsgType.COMMAND, struct.pack('<hh', steering, throttle), seq)


def test_cpp_rejects_out_of_range_commands_and_keeps_the_last_valid_one():
    """Nothing of a rejected COMMAND is applied; the watchdog still counts from the last valid one."""
    lines = ['fw_begin 0', f'fw_feed 1600 {command_hex(5000, 2000, 1)}', 'fw_update 1600 0 0',
             f'fw_feed 1700 {raw_command_hex(32767, 0, 2)}{raw_command_hex(0, -10001, 3)}', 'fw_update 1700 0 0',
             f'fw_feed 1701 {raw_hex(p.MsgType.ESTOP, bytes([2]), 4)}', 'fw_update 1701 0 0',
             'fw_update 1849 0 0', 'fw_update 1850 0 0', 'fw_telemetry 1851',
             f'fw_feed 1900 {command_hex(-5000, 0, 5)}', 'fw_update 1900 0 0']
    out = firmware_host.run_driver(lines)
    states = [parse_state(line) for line in out if line.startswith('state')]
    assert [(s['mode'], s['steering_us'], s['throttle_us']) for s in states[:4]] == [
        (p.Mode.AUTONOMOUS, 1750, 1600)] * 4
    assert states[1]['flags'] & p.Flag.RANGE and not states[0]['flags'] & p.Flag.RANGE
    assert (states[4]['mode'], states[4]['steering_us'], states[4]['trips']) == (p.Mode.FAILSAFE, 1500, 1)
    telemetry = [p.decode_segment(bytes.fromhex(line.split()[1])[1:-1]).message
                 for line in out if line.startswith('tx')][0]
    assert telemetry.ack_seq == 1 and telemetry.frame_errors == 3  # dropped frames include range rejections
    assert (states[5]['mode'], states[5]['steering_us']) == (p.Mode.AUTONOMOUS, 1250)
    assert not states[5]['flags'] & p.Flag.RANGE  # cleared by the next valid COMMAND

"""Write ../protocol_vectors.json: the test vectors the Python codec and the firmware share.

Run it only when the protocol changes on purpose (and bump the version in PROTOCOL.md):
    PYTHONPATH=src/rover_bridge python src/rover_bridge/test/make_vectors.py
The expectations of every stream below are written by hand; this script refuses to
write the file if the codec disagrees with any of them. CRC and COBS entries come
from their published references (CRC catalogue check value, the COBS paper/Wikipedia
examples), not from our code.
"""
import dataclasses
import json
import struct
from pathlib import Path

from rover_bridge import protocol as p

OUT = Path(__file__).resolve().parent.parent / 'protocol_vectors.json'

CRC_REFERENCE = [
    ('313233343536373839', '29b1'),  # "123456789": the catalogue check value of CRC-16/CCITT-FALSE
    ('', 'ffff'),                    # nothing: the initial value
]

COBS_REFERENCE = [
    ('', '01'),
    ('00', '0101'),
    ('0000', '010101'),
    ('001100', '01021101'),
    ('11220033', '0311220233'),
    ('11223344', '0511223344'),
    ('11000000', '0211010101'),
    (bytes(range(1, 255)).hex(), 'ff' + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), '01ff' + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), 'ff' + bytes(range(1, 255)).hex() + '02ff'),
    ((bytes(range(2, 256)) + b'\x00').hex(), 'ff' + bytes(range(2, 256)).hex() + '0101'),
    ((bytes(range(3, 256)) + b'\x00\x01').hex(), 'fe' + bytes(range(3, 256)).hex() + '0201'),
]
COBS_INVALID = ['02', '0311', '05112233', '00', '021100', 'ff' + '11' * 10]

MESSAGES = [
    ('hello default limits', p.Hello(1, 0, 250, 20, 1500, 1000, 1500, 2000, 1000, 1500, 2000), 0),
    ('hello future major version', p.Hello(2, 3, 300, 10, 0, 1100, 1500, 1900, 1200, 1500, 1800), 17),
    ('hello request', p.HelloRequest(), 1),
    ('command neutral', p.Command(0, 0), 0),
    ('command half left slow forward', p.Command(5000, 2000), 1),
    ('command full right full reverse', p.Command(-10000, -10000), 255),
    ('command at the limits', p.Command(10000, -10000), 128),
    ('command with zero bytes', p.Command(256, -256), 0),
    ('estop engage', p.Estop(1), 2),
    ('estop release', p.Estop(0), 3),
    ('telemetry autonomous', p.Telemetry(42, p.Mode.AUTONOMOUS, 0, 1750, 1600, 5000, 2000, 0, 0, 0, 0, 0, 123456), 9),
    ('telemetry failsafe with errors', p.Telemetry(
        7, p.Mode.FAILSAFE, p.Flag.WATCHDOG | p.Flag.RANGE, 1500, 1500, 0, 0, 1488, 1512, 3, 65535, 2,
        4294967295), 200),
    ('telemetry manual negative', p.Telemetry(
        0, p.Mode.MANUAL, p.Flag.RC_PRESENT, 1000, 1250, -10000, -5000, 1000, 1250, 0, 0, 0, 0), 255),
    ('ping', p.Ping(0xDEADBEEF), 4),
    ('pong', p.Pong(0), 5),
]


def payload(msg_type: int, seq: int, body: bytes, crc_delta: int = 0) -> bytes:
    data = bytes((msg_type, seq)) + body
    return data + struct.pack('<H', p.crc16(data) ^ crc_delta)


def wire(data: bytes) -> bytes:
    return b'\x00' + p.cobs_encode(data) + b'\x00'


def raw_frame(message, seq: int) -> bytes:
    """A CRC-valid frame packed without any range check (what noise or a broken peer may send)."""
    return wire(payload(message.TYPE, seq, p.pack_body(message)))


def frame_entry(message, seq):
    return {'type': message.TYPE.name, 'seq': seq, 'fields': p.fields(message)}


def streams():
    cmd = p.Command(5000, -3000)
    good = p.encode(cmd, 10)
    good2 = p.encode(p.Ping(7), 11)
    flipped = bytearray(good)
    flipped[4] ^= 0x01  # a body byte: CRC error, the COBS structure stays intact
    yield 'two frames back to back', good + good2, [frame_entry(cmd, 10), frame_entry(p.Ping(7), 11)], 0, 0, 0
    yield ('garbage without delimiter before a frame', bytes.fromhex('1337c0ffee') + good,
           [frame_entry(cmd, 10)], 0, 1, 0)
    yield 'idle delimiters only', b'\x00' * 8, [], 0, 0, 0
    yield 'bit flip in the body', bytes(flipped) + good2, [frame_entry(p.Ping(7), 11)], 1, 0, 0
    yield 'crc bytes inverted', wire(payload(p.MsgType.COMMAND, 1, struct.pack('<hh', 1, 2), 0xFFFF)), [], 1, 0, 0
    yield 'unknown type with a valid crc', wire(payload(0x7E, 1, b'\x01\x02')), [], 0, 1, 0
    yield 'command body one byte short', wire(payload(p.MsgType.COMMAND, 1, b'\x01\x02\x03')), [], 0, 1, 0
    yield 'hello request with a body', wire(payload(p.MsgType.HELLO_REQUEST, 1, b'\x01')), [], 0, 1, 0
    yield 'frame shorter than type+seq+crc', wire(b'\x10\x01\x02'), [], 0, 1, 0
    yield 'cobs block past the end', b'\x00\x05\x10\x01\x00' + good, [frame_entry(cmd, 10)], 0, 1, 0
    yield 'cobs block decoding to nothing', b'\x00\x01\x00', [], 0, 1, 0
    yield ('segment longer than the buffer then a frame', b'\x00' + b'\x55' * 100 + good,
           [frame_entry(cmd, 10)], 0, 1, 0)
    yield 'frame cut by a delimiter', good[:-4] + b'\x00' + good2, [frame_entry(p.Ping(7), 11)], 0, 1, 0
    yield 'frame without its final delimiter', good2 + good[:-1], [frame_entry(p.Ping(7), 11)], 0, 0, 0
    # CRC-valid frames with impossible fields: range errors; the good frame after each survives.
    telemetry = p.Telemetry(1, p.Mode.AUTONOMOUS, 0, 1500, 1500, 0, 0, 0, 0, 0, 0, 0, 10)
    hello = p.Hello(1, 1, 250, 20, 1500, 1000, 1500, 2000, 1000, 1500, 2000)
    range_cases = [
        ('command steering above +1', p.Command(10001, 0)),
        ('command throttle below -1', p.Command(0, -10001)),
        ('command at the i16 extremes', p.Command(32767, -32768)),
        ('estop engage 2', p.Estop(2)),
        ('telemetry steering 32767', dataclasses.replace(telemetry, steering=32767)),
        ('telemetry throttle -32767', dataclasses.replace(telemetry, throttle=-32767)),
        ('telemetry mode 77', dataclasses.replace(telemetry, mode=77)),
        ('telemetry unknown flag bit', dataclasses.replace(telemetry, flags=0x20)),
        ('telemetry steering pulse 0 us', dataclasses.replace(telemetry, steering_us=0)),
        ('telemetry throttle pulse 2501 us', dataclasses.replace(telemetry, throttle_us=2501)),
        ('hello centre below min', dataclasses.replace(hello, steering_center_us=900)),
        ('hello throttle max 3000 us', dataclasses.replace(hello, throttle_max_us=3000)),
        ('hello zero watchdog', dataclasses.replace(hello, watchdog_ms=0)),
    ]
    for name, message in range_cases:
        yield name, raw_frame(message, 3) + good, [frame_entry(cmd, 10)], 0, 0, 1
    # Another major version's HELLO is not range-checked: the bridge must read it to refuse it.
    future = p.Hello(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    yield 'hello of another major version unchecked', raw_frame(future, 4), [frame_entry(future, 4)], 0, 0, 0
    yield ('limits exactly at the edges', raw_frame(p.Command(-10000, 10000), 5) + raw_frame(dataclasses.replace(
        telemetry, steering_us=500, throttle_us=2500, steering=-10000, throttle=10000, flags=p.KNOWN_FLAGS), 6),
           [frame_entry(p.Command(-10000, 10000), 5), frame_entry(dataclasses.replace(
               telemetry, steering_us=500, throttle_us=2500, steering=-10000, throttle=10000,
               flags=p.KNOWN_FLAGS), 6)], 0, 0, 0)


def main():
    frames = []
    for name, message, seq in MESSAGES:
        encoded = p.encode(message, seq)
        assert p.StreamDecoder().feed(encoded) == [p.Frame(seq, message)], name
        frames.append({'name': name, **frame_entry(message, seq), 'wire': encoded.hex()})
    for data, expected in CRC_REFERENCE:
        assert f'{p.crc16(bytes.fromhex(data)):04x}' == expected
    for data, expected in COBS_REFERENCE:
        assert p.cobs_encode(bytes.fromhex(data)).hex() == expected
    stream_list = []
    for name, data, expected, crc_errors, frame_errors, range_errors in streams():
        decoder = p.StreamDecoder()
        got = [frame_entry(f.message, f.seq) for f in decoder.feed(data)]
        assert got == expected, (name, got)
        counts = (decoder.crc_errors, decoder.frame_errors, decoder.range_errors)
        assert counts == (crc_errors, frame_errors, range_errors), (name, counts)
        stream_list.append({'name': name, 'wire': data.hex(), 'frames': expected, 'crc_errors': crc_errors,
                            'frame_errors': frame_errors, 'range_errors': range_errors})
    document = {
        'description': 'Shared test vectors of the rover serial protocol (see PROTOCOL.md). '
                       'Hex strings; fields in message layout order. Regenerate with test/make_vectors.py.',
        'protocol_version': [p.PROTOCOL_VERSION_MAJOR, p.PROTOCOL_VERSION_MINOR],
        'scale': p.SCALE,
        'max_encoded_len': p.MAX_ENCODED_LEN,
        'pulse_range_us': [p.PULSE_MIN_US, p.PULSE_MAX_US],
        'crc16_ccitt_false': [{'data': d, 'crc': c} for d, c in CRC_REFERENCE],
        'cobs': [{'decoded': d, 'encoded': e} for d, e in COBS_REFERENCE],
        'cobs_invalid': COBS_INVALID,
        'frames': frames,
        'streams': stream_list,
    }
    OUT.write_text(json.dumps(document, indent=1) + '\n')
    print(f'wrote {OUT}: {len(frames)} frames, {len(stream_list)} streams')


if __name__ == '__main__':
    main()

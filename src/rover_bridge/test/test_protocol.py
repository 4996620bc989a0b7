"""The Python codec: shared vectors, round trips, resynchronisation, error detection."""
import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rover_bridge import protocol as p

VECTORS = json.loads((Path(__file__).resolve().parent.parent / 'protocol_vectors.json').read_text())


def crc16_bitwise(data: bytes) -> int:
    """Textbook CRC-16/CCITT-FALSE, independent of binascii."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def message_from(entry):
    cls = p.MESSAGE_CLASSES[p.MsgType[entry['type']]]
    return cls(**entry['fields'])


# ---- shared vectors ----

def test_vectors_match_this_protocol_version():
    assert VECTORS['protocol_version'] == [p.PROTOCOL_VERSION_MAJOR, p.PROTOCOL_VERSION_MINOR]
    assert VECTORS['scale'] == p.SCALE and VECTORS['max_encoded_len'] == p.MAX_ENCODED_LEN
    assert VECTORS['pulse_range_us'] == [p.PULSE_MIN_US, p.PULSE_MAX_US]


def test_range_vectors_cover_every_checked_field():
    names = {e['name'] for e in VECTORS['streams'] if e['range_errors']}
    assert {'command steering above +1', 'command throttle below -1', 'estop engage 2', 'telemetry mode 77',
            'telemetry steering 32767', 'telemetry unknown flag bit', 'telemetry steering pulse 0 us',
            'hello centre below min'} <= names


def raw_frame(message, seq=0) -> bytes:
    """A CRC-valid frame of any field values (pack_body does no range check)."""
    data = bytes((int(message.TYPE), seq)) + p.pack_body(message)
    return b'\x00' + p.cobs_encode(data + struct.pack('<H', p.crc16(data))) + b'\x00'


def test_impossible_telemetry_is_a_range_error_not_a_frame():
    """The issue's case: +-32767 would be published as rover/state 3.2767, mode 77 as is."""
    bad = p.Telemetry(1, 77, 0, 1500, 1500, 32767, -32767, 0, 0, 0, 0, 0, 10)
    with pytest.raises(p.ProtocolError) as info:
        p.decode_segment(raw_frame(bad)[1:-1])
    assert info.value.kind == 'range' and 'mode 77' in str(info.value)
    decoder = p.StreamDecoder()
    assert decoder.feed(raw_frame(bad) * 3) == []
    assert (decoder.range_errors, decoder.crc_errors, decoder.frame_errors) == (3, 0, 0)
    assert 'TELEMETRY' in decoder.last_error


@pytest.mark.parametrize('entry', VECTORS['crc16_ccitt_false'], ids=lambda e: e['data'][:12] or 'empty')
def test_crc_reference_values(entry):
    data = bytes.fromhex(entry['data'])
    assert f'{p.crc16(data):04x}' == entry['crc']
    assert crc16_bitwise(data) == p.crc16(data)


def test_crc_matches_bitwise_reference_on_random_data():
    rng = random.Random(3)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        assert p.crc16(data) == crc16_bitwise(data)


@pytest.mark.parametrize('entry', VECTORS['cobs'], ids=lambda e: e['encoded'][:12])
def test_cobs_reference_examples(entry):
    decoded, encoded = bytes.fromhex(entry['decoded']), bytes.fromhex(entry['encoded'])
    assert p.cobs_encode(decoded) == encoded
    assert p.cobs_decode(encoded) == decoded


@pytest.mark.parametrize('hex_block', VECTORS['cobs_invalid'])
def test_cobs_rejects_malformed_blocks(hex_block):
    with pytest.raises(p.ProtocolError) as info:
        p.cobs_decode(bytes.fromhex(hex_block))
    assert info.value.kind == 'frame'


@pytest.mark.parametrize('entry', VECTORS['frames'], ids=lambda e: e['name'])
def test_frame_vectors_encode_and_decode(entry):
    message = message_from(entry)
    wire = bytes.fromhex(entry['wire'])
    assert p.encode(message, entry['seq']) == wire
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert p.StreamDecoder().feed(wire) == [p.Frame(entry['seq'], message)]


@pytest.mark.parametrize('entry', VECTORS['streams'], ids=lambda e: e['name'])
def test_stream_vectors(entry):
    decoder = p.StreamDecoder()
    frames = decoder.feed(bytes.fromhex(entry['wire']))
    assert [(f.seq, f.message) for f in frames] == [(e['seq'], message_from(e)) for e in entry['frames']]
    assert (decoder.crc_errors, decoder.frame_errors, decoder.range_errors) == (
        entry['crc_errors'], entry['frame_errors'], entry['range_errors'])


@pytest.mark.parametrize('entry', VECTORS['streams'], ids=lambda e: e['name'])
def test_stream_vectors_survive_any_split_into_reads(entry):
    """Partial reads: the same result however the bytes are chunked."""
    wire = bytes.fromhex(entry['wire'])
    rng = random.Random(len(wire))
    for trial in range(20):
        decoder = p.StreamDecoder()
        frames, i = [], 0
        while i < len(wire):
            n = 1 if trial == 0 else rng.randrange(1, 12)
            frames += decoder.feed(wire[i:i + n])
            i += n
        assert [(f.seq, f.message) for f in frames] == [(e['seq'], message_from(e)) for e in entry['frames']]
        assert (decoder.crc_errors, decoder.frame_errors, decoder.range_errors) == (
            entry['crc_errors'], entry['frame_errors'], entry['range_errors'])


# ---- layouts and helpers ----

def test_body_sizes_are_the_documented_layouts():
    assert p.BODY_SIZES == {p.MsgType.HELLO: 20, p.MsgType.HELLO_REQUEST: 0, p.MsgType.COMMAND: 4,
                            p.MsgType.ESTOP: 1, p.MsgType.TELEMETRY: 25, p.MsgType.PING: 4, p.MsgType.PONG: 4}
    longest = max(p.BODY_SIZES.values()) + p.FRAME_OVERHEAD
    assert len(p.cobs_encode(bytes(longest))) <= p.MAX_ENCODED_LEN


def test_command_layout_is_little_endian_signed():
    wire = p.encode(p.Command(-2, 258), 7)
    payload = p.cobs_decode(wire[1:-1])
    assert payload[:2] == bytes((0x10, 7))
    assert payload[2:6] == struct.pack('<hh', -2, 258) == bytes.fromhex('feff0201')


def test_to_fixed_rounds_clamps_and_rejects_non_finite():
    assert p.to_fixed(0.5) == 5000 and p.to_fixed(-0.33334) == -3333
    assert p.to_fixed(7.0) == p.SCALE and p.to_fixed(-7.0) == -p.SCALE
    for bad in (float('nan'), float('inf')):
        with pytest.raises(ValueError):
            p.to_fixed(bad)
    assert p.from_fixed(2500) == 0.25


def test_out_of_range_field_is_rejected_at_encode():
    with pytest.raises(struct.error):
        p.encode(p.Command(40000, 0), 0)


def test_seq_gap_wraps():
    assert p.seq_gap(4, 5) == 0 and p.seq_gap(255, 0) == 0 and p.seq_gap(250, 2) == 7


def test_decoder_reset_drops_partial_frame_but_keeps_counters():
    decoder = p.StreamDecoder()
    wire = p.encode(p.Ping(1), 1)
    decoder.feed(b'\x00\x09\x09')
    decoder.feed(b'\x00')
    assert decoder.frame_errors == 1
    decoder.feed(wire[:-3])
    decoder.reset()
    # The tail alone is a fresh (bad) segment, not the end of the forgotten frame.
    assert decoder.feed(wire[-3:]) == [] and decoder.frame_errors == 2
    assert decoder.feed(wire) == [p.Frame(1, p.Ping(1))]


def test_every_single_byte_corruption_of_every_frame_vector_is_rejected():
    """No change of one byte (any value) turns a valid frame into a valid frame."""
    for entry in VECTORS['frames']:
        wire = bytes.fromhex(entry['wire'])
        for index in range(1, len(wire) - 1):
            for xor in range(1, 256):
                corrupt = bytearray(wire)
                corrupt[index] ^= xor
                assert p.StreamDecoder().feed(bytes(corrupt)) == [], (entry['name'], index, xor)


def test_every_double_bit_flip_of_a_command_is_rejected():
    wire = p.encode(p.Command(5000, -3000), 42)
    positions = [(i, b) for i in range(1, len(wire) - 1) for b in range(8)]
    for n, (i1, b1) in enumerate(positions):
        for i2, b2 in positions[n + 1:]:
            corrupt = bytearray(wire)
            corrupt[i1] ^= 1 << b1
            corrupt[i2] ^= 1 << b2
            assert p.StreamDecoder().feed(bytes(corrupt)) == [], (i1, b1, i2, b2)


def test_random_noise_yields_false_frames_at_most_at_the_crc_rate():
    """1 MB of noise: the type+length+CRC checks leave (almost) nothing through."""
    rng = random.Random(11)
    noise = rng.randbytes(1 << 20)
    decoder = p.StreamDecoder()
    frames = decoder.feed(noise)
    segments = noise.count(0)
    assert decoder.crc_errors + decoder.frame_errors > segments * 0.9
    assert len(frames) <= 1  # expected ~ segments * P(type, length) / 65536 << 1


# ---- property tests ----

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
u32 = st.integers(0, 0xFFFFFFFF)
normalized = st.integers(-p.SCALE, p.SCALE)
pulse = st.integers(p.PULSE_MIN_US, p.PULSE_MAX_US)
limits = st.lists(pulse, min_size=3, max_size=3).map(sorted)


def _hello(major, minor, periods, steering, throttle):
    return p.Hello(major, minor, *periods, *steering, *throttle)


valid_hellos = st.builds(_hello, st.just(p.PROTOCOL_VERSION_MAJOR), u8,
                         st.tuples(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF), u16), limits, limits)
other_version_hellos = st.builds(p.Hello, u8.filter(lambda v: v != p.PROTOCOL_VERSION_MAJOR),
                                 u8, u16, u16, u16, u16, u16, u16, u16, u16, u16)
messages = st.one_of(
    valid_hellos, other_version_hellos,
    st.just(p.HelloRequest()),
    st.builds(p.Command, normalized, normalized),
    st.builds(p.Estop, st.integers(0, 1)),
    st.builds(p.Telemetry, u8, st.sampled_from(list(p.Mode)), st.integers(0, p.KNOWN_FLAGS), pulse, pulse,
              normalized, normalized, u16, u16, u16, u16, u16, u32),
    st.builds(p.Ping, u32),
    st.builds(p.Pong, u32),
)
frames_strategy = st.lists(st.tuples(u8, messages), min_size=1, max_size=8)


@given(frames_strategy)
def test_round_trip_any_message(frames):
    wire = b''.join(p.encode(m, seq) for seq, m in frames)
    assert p.StreamDecoder().feed(wire) == [p.Frame(seq, m) for seq, m in frames]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(frames_strategy, st.lists(st.binary(max_size=120), min_size=8, max_size=8), st.data())
def test_garbage_between_frames_never_yields_a_false_frame_nor_loses_a_good_one(frames, garbage, data):
    wire = bytearray()
    for (seq, message), noise in zip(frames, garbage):
        wire += noise + p.encode(message, seq)
    wire += garbage[-1]
    decoder = p.StreamDecoder()
    # Arbitrary read sizes, like a serial port.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    got, start = [], 0
    for cut in cuts + [len(wire)]:
        got += decoder.feed(bytes(wire[start:cut]))
        start = cut
    assert got == [p.Frame(seq, m) for seq, m in frames]


@given(frames_strategy, st.integers(0, 10_000), st.integers(1, 255))
def test_a_corrupted_byte_loses_only_its_own_frame(frames, position, xor):
    encoded = [p.encode(m, seq) for seq, m in frames]
    target = position % len(encoded)
    corrupt = bytearray(encoded[target])
    index = 1 + position % (len(corrupt) - 2)
    corrupt[index] ^= xor
    encoded[target] = bytes(corrupt)
    got = p.StreamDecoder().feed(b''.join(encoded))
    expected = [p.Frame(seq, m) for i, (seq, m) in enumerate(frames) if i != target]
    assert got == expected


@given(st.one_of(
    st.builds(p.Command, i16, i16).filter(lambda m: max(abs(m.steering), abs(m.throttle)) > p.SCALE),
    st.builds(p.Estop, st.integers(2, 255)),
    st.builds(p.Telemetry, u8, u8, u8, u16, u16, i16, i16, u16, u16, u16, u16, u16, u32).filter(
        lambda m: m.mode > 4 or m.flags & ~p.KNOWN_FLAGS or max(abs(m.steering), abs(m.throttle)) > p.SCALE
        or not (p.PULSE_MIN_US <= m.steering_us <= p.PULSE_MAX_US))))
def test_any_out_of_range_message_is_counted_and_dropped(message):
    good = p.encode(p.Ping(9), 1)
    decoder = p.StreamDecoder()
    assert decoder.feed(raw_frame(message) + good) == [p.Frame(1, p.Ping(9))]
    assert (decoder.range_errors, decoder.crc_errors, decoder.frame_errors) == (1, 0, 0)

"""What a faulty board or cable puts on the wire: noise, and TELEMETRY frames the host must drop."""
from __future__ import annotations

import random
import struct

from rover_bridge import protocol as p


def garbage(size: int = 64, seed: int | None = None) -> bytes:
    """Random bytes, frame delimiters included."""
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


def corrupt_frame(telemetry: p.Telemetry, kind: str = 'crc') -> bytes:
    """`telemetry` as a frame the host must drop.

    'crc': one body bit flipped (a CRC error); 'frame': the first COBS code points past
    the end (a framing error); 'truncated': cut in the middle (either, depending on the cut).
    """
    frame = bytearray(p.encode(telemetry, 0))
    if kind == 'crc':  # flip a body bit under an intact COBS layer: only the CRC can tell
        payload = bytearray((int(p.MsgType.TELEMETRY), 0)) + p.pack_body(telemetry)
        payload += struct.pack('<H', p.crc16(bytes(payload)))
        payload[3] ^= 0x01
        frame = bytearray(b'\x00' + p.cobs_encode(bytes(payload)) + b'\x00')
    elif kind == 'frame':
        frame[1] = 0xFE
    elif kind == 'truncated':
        frame = frame[:len(frame) // 2] + b'\x00'
    else:
        raise ValueError(f'unknown corruption kind {kind!r}; expected crc, frame or truncated')
    return bytes(frame)

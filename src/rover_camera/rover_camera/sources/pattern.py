"""The synthetic source: a moving test pattern with the frame number drawn on it as bits
(decode_frame_counter reads it back, so tests and the benchmark can match frames)."""
from __future__ import annotations

import cv2
import numpy as np

from rover_camera.sources.base import FrameSource

COUNTER_BITS = 24


def _counter_band(width: int, height: int) -> tuple[int, float]:
    """Height of the counter band and width of one bit block."""
    return max(6, height // 10), width / COUNTER_BITS


def draw_frame_counter(image: np.ndarray, counter: int) -> None:
    """Write `counter` as black/white blocks across the top band (survives JPEG and resizing)."""
    height, width = image.shape[:2]
    band, block = _counter_band(width, height)
    value = counter % (1 << COUNTER_BITS)
    for bit in range(COUNTER_BITS):
        on = (value >> (COUNTER_BITS - 1 - bit)) & 1
        image[:band, int(round(bit * block)):int(round((bit + 1) * block))] = 255 if on else 0


def decode_frame_counter(image: np.ndarray) -> int:
    """Read back the counter written by draw_frame_counter (sampling block centres)."""
    height, width = image.shape[:2]
    band, block = _counter_band(width, height)
    gray = image if image.ndim == 2 else image.mean(axis=2)
    value = 0
    for bit in range(COUNTER_BITS):
        x0 = int(bit * block + block * 0.3)
        x1 = max(x0 + 1, int(bit * block + block * 0.7))
        y0, y1 = band // 4, max(band // 4 + 1, (3 * band) // 4)
        value = (value << 1) | int(gray[y0:y1, x0:x1].mean() > 127)
    return value


class TestPatternRenderer:
    """A moving colour pattern with the frame number on it; cheap enough for 30 fps."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        ys, xs = np.mgrid[0:height, 0:2 * width]
        # Periodic in x with period `width`, so a sliding window of it wraps seamlessly.
        phase = 2 * np.pi * xs / width
        base = np.stack([127 + 120 * np.sin(phase),
                         127 + 120 * np.sin(phase + 2.1 + ys / max(1, height) * 3),
                         127 + 120 * np.cos(phase + ys / max(1, height) * 6)], axis=-1)
        self._base = np.clip(base, 0, 255).astype(np.uint8)

    def render(self, counter: int) -> np.ndarray:
        shift = (counter * 4) % self.width
        image = self._base[:, shift:shift + self.width].copy()
        bar = (counter * 8) % self.width  # a bright bar moving faster than the background
        image[:, bar:bar + max(2, self.width // 80)] = 255
        draw_frame_counter(image, counter)
        band, _ = _counter_band(self.width, self.height)
        scale = max(0.4, self.height / 360)
        cv2.putText(image, f'frame {counter}', (8, band + int(30 * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(2 * scale)),
                    cv2.LINE_AA)
        return image


class TestPatternSource(FrameSource):
    kind = 'synthetic'
    __test__ = False  # not a pytest class

    def __init__(self, width: int, height: int):
        super().__init__()
        self._renderer = TestPatternRenderer(width, height)
        self.counter = -1

    @property
    def description(self) -> str:
        return 'synthetic test pattern'

    def open(self) -> None:
        pass

    def grab(self) -> bool:
        self.counter += 1
        return True

    def retrieve(self) -> np.ndarray:
        return self._renderer.render(self.counter)

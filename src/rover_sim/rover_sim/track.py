"""A closed track on a floor: its centre line, and a top-down picture of it.

The track is a stadium (two straights joined by half circles), the shape of a
typical indoor RC track taped on a floor. Distances are metres, world frame
x forward along the first straight, y to the left, yaw counter-clockwise.
"""
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StadiumTrack:
    straight_length: float = 6.0   # m, each straight
    radius: float = 2.0            # m, centre line of the turns
    width: float = 0.9             # m, between the edge lines
    line_width: float = 0.05       # m, tape

    @property
    def length(self) -> float:
        return 2 * self.straight_length + 2 * np.pi * self.radius

    def centre_point(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at arc length s along the centre line (counter-clockwise)."""
        s = s % self.length
        half = self.straight_length / 2
        r = self.radius
        turn = np.pi * r
        if s < self.straight_length:                        # bottom straight, +x
            return -half + s, -r, 0.0
        s -= self.straight_length
        if s < turn:                                        # right turn around (half, 0)
            a = -np.pi / 2 + s / r
            return half + r * np.cos(a), r * np.sin(a), a + np.pi / 2
        s -= turn
        if s < self.straight_length:                        # top straight, -x
            return half - s, r, np.pi
        s -= self.straight_length
        a = np.pi / 2 + s / r                               # left turn around (-half, 0)
        return -half + r * np.cos(a), r * np.sin(a), a + np.pi / 2

    def start_pose(self) -> tuple[float, float, float]:
        return self.centre_point(0.0)

    def distance_from_centre(self, x: float, y: float) -> float:
        """Signed lateral offset from the centre line: > 0 is outside the loop."""
        half = self.straight_length / 2
        cx = np.clip(x, -half, half)  # nearest point on the segment between turn centres
        return float(np.hypot(x - cx, y) - self.radius)

    def progress(self, x: float, y: float) -> float:
        """Arc length of the centre-line point nearest to (x, y)."""
        half, r = self.straight_length / 2, self.radius
        if -half <= x <= half:
            return (x + half) if y < 0 else self.straight_length + np.pi * r + (half - x)
        if x > half:
            a = np.arctan2(y, x - half)                     # -pi/2 .. pi/2
            return self.straight_length + r * (a + np.pi / 2)
        a = np.arctan2(y, x + half) % (2 * np.pi)           # pi/2 .. 3pi/2
        return 2 * self.straight_length + np.pi * r + r * (a - np.pi / 2)


@dataclass(frozen=True)
class FloorMap:
    """A top-down raster of floor and track; world (x, y) -> pixel (col, row)."""
    image: np.ndarray          # HxWx3 uint8 BGR
    metres_per_pixel: float
    origin_x: float            # world x of column 0
    origin_y: float            # world y of row 0 (rows grow towards -y)

    def to_pixels(self, x, y):
        return (x - self.origin_x) / self.metres_per_pixel, (self.origin_y - y) / self.metres_per_pixel


def render_floor(track: StadiumTrack, metres_per_pixel: float = 0.01, margin: float = 2.0,
                 seed: int = 0) -> FloorMap:
    """Grey speckled floor (texture gives the policy something to see move),
    darker track surface, white edge lines and a dashed yellow centre line."""
    half = track.straight_length / 2 + track.radius + margin
    height_m = 2 * (track.radius + margin)
    w = int(round(2 * half / metres_per_pixel))
    h = int(round(height_m / metres_per_pixel))
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3)
    base = 150 + 25 * noise / (noise.std() + 1e-6)
    floor = np.clip(np.stack([base, base * 0.97, base * 0.92], -1), 0, 255).astype(np.uint8)
    fmap = FloorMap(floor, metres_per_pixel, -half, track.radius + margin)

    ys, xs = np.mgrid[0:h, 0:w]
    wx = fmap.origin_x + xs * metres_per_pixel
    wy = fmap.origin_y - ys * metres_per_pixel
    cx = np.clip(wx, -track.straight_length / 2, track.straight_length / 2)
    lateral = np.hypot(wx - cx, wy) - track.radius
    on_track = np.abs(lateral) < track.width / 2
    floor[on_track] = (floor[on_track] * 0.45).astype(np.uint8)
    edge = np.abs(np.abs(lateral) - track.width / 2) < track.line_width / 2
    floor[edge] = (245, 245, 245)
    # dashes on the centre line: 30 cm on, 30 cm off, by angle/arc position
    along = np.where(np.abs(wx) <= track.straight_length / 2, wx,
                     track.radius * np.arctan2(wy, wx - np.sign(wx) * track.straight_length / 2))
    dash = (np.abs(lateral) < track.line_width / 3) & ((along % 0.6) < 0.3)
    floor[dash] = (40, 200, 230)
    return fmap

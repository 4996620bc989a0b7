"""What a forward camera on the car sees of the floor, for a given pose.

The camera is fixed on the car, so the ground point seen by every pixel (in the
car's frame) is computed once; each frame only rotates and shifts those points
by the pose and samples the floor map with cv2.remap. A 640x360 frame costs a
few milliseconds.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from rover_sim.track import FloorMap

SKY_BGR = (200, 170, 140)


@dataclass(frozen=True)
class CameraMount:
    width: int = 640
    height: int = 360
    horizontal_fov_deg: float = 100.0   # wide-angle lens, typical on RC cars
    height_m: float = 0.15              # lens above the floor
    pitch_deg: float = 20.0             # tilted down
    forward_m: float = 0.10             # ahead of the rear axle


class TrackCamera:
    def __init__(self, floor: FloorMap, mount: CameraMount = CameraMount(), max_range_m: float = 8.0):
        self.floor = floor
        self.mount = mount
        w, h = mount.width, mount.height
        f = (w / 2) / np.tan(np.radians(mount.horizontal_fov_deg) / 2)
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        # ray in camera frame (x right, y down, z forward), then pitched down
        x_c, y_c, z_c = (u - w / 2) / f, (v - h / 2) / f, np.ones_like(u)
        p = np.radians(mount.pitch_deg)
        forward = z_c * np.cos(p) - y_c * np.sin(p)
        down = z_c * np.sin(p) + y_c * np.cos(p)
        with np.errstate(divide='ignore', invalid='ignore'):
            t = np.where(down > 1e-6, mount.height_m / down, np.inf)
        ground_fwd = forward * t + mount.forward_m
        ground_left = -x_c * t
        self._visible = np.isfinite(t) & (np.hypot(ground_fwd, ground_left) < max_range_m)
        # points beyond range or above the horizon sample far outside the map
        self._fwd = np.where(self._visible, ground_fwd, 1e6).astype(np.float32)
        self._left = np.where(self._visible, ground_left, 1e6).astype(np.float32)
        self._sky = ~self._visible

    def render(self, x: float, y: float, yaw: float) -> np.ndarray:
        """HxWx3 uint8 BGR view from pose (x, y, yaw) in metres/radians."""
        c, s = np.float32(np.cos(yaw)), np.float32(np.sin(yaw))
        wx = x + c * self._fwd - s * self._left
        wy = y + s * self._fwd + c * self._left
        col, row = self.floor.to_pixels(wx, wy)
        frame = cv2.remap(self.floor.image, col.astype(np.float32), row.astype(np.float32),
                          interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(90, 90, 90))
        frame[self._sky] = SKY_BGR
        return frame

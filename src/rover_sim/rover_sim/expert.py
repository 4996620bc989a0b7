"""A pure-pursuit driver that follows the track's centre line.

It knows the track geometry, which a camera policy does not: the simulation
uses it as a reference driver (a teleop stand-in) to close the loop in tests
and to show what a good lap looks like.
"""
from dataclasses import dataclass, field

import numpy as np

from rover_sim.track import StadiumTrack
from rover_sim.vehicle_model import VehicleParams


@dataclass
class PurePursuit:
    track: StadiumTrack
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    lookahead: float = 0.8         # m along the centre line
    throttle: float = 0.3

    def command(self, x: float, y: float, yaw: float) -> tuple[float, float]:
        """(steering, throttle) in [-1, 1]; steering > 0 turns left."""
        s = self.track.progress(x, y)
        tx, ty, _ = self.track.centre_point(s + self.lookahead)
        alpha = np.arctan2(ty - y, tx - x) - yaw
        alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
        distance = max(np.hypot(tx - x, ty - y), 1e-3)
        wheel_angle = np.arctan2(2 * self.vehicle.wheelbase * np.sin(alpha), distance)
        steering = np.clip(wheel_angle / self.vehicle.max_steer_angle, -1, 1)
        return float(steering), self.throttle

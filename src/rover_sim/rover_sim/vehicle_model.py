"""A kinematic bicycle model of a 1/10 RC car, driven by normalized steering/throttle.

steering in [-1, 1] (+ = left, REP-103) -> front wheel angle through a first-order
servo lag; throttle in [-1, 1] -> target speed, approached with a first-order motor
lag (the acceleration is (target - speed) / tau). Position is the rear axle centre
in the world frame (x forward at yaw 0, y left), yaw counter-clockwise.
"""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class VehicleParams:
    wheelbase: float = 0.26                     # m
    max_steer_angle: float = math.radians(25)   # front wheel angle at steering = +-1
    max_speed: float = 3.0                      # m/s at throttle = +1
    max_reverse_speed: float = 1.5              # m/s at throttle = -1
    motor_time_constant: float = 0.4            # s
    steering_time_constant: float = 0.08        # s (0 = the wheels follow instantly)
    max_substep: float = 0.005                  # s, integration step inside step()

    def __post_init__(self):
        for name in ('wheelbase', 'max_steer_angle', 'max_speed', 'motor_time_constant', 'max_substep'):
            if not getattr(self, name) > 0:
                raise ValueError(f'vehicle parameter {name} must be > 0, got {getattr(self, name)}')
        if self.max_reverse_speed < 0 or self.steering_time_constant < 0:
            raise ValueError('max_reverse_speed and steering_time_constant must be >= 0')
        if self.max_steer_angle >= math.pi / 2:
            raise ValueError('max_steer_angle must be below 90 degrees')


@dataclasses.dataclass(frozen=True)
class Pose:
    x: float
    y: float
    yaw: float
    speed: float
    steer_angle: float = 0.0


def _clamp_input(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, got {value}')
    return max(-1.0, min(1.0, float(value)))


def _lag_factor(dt: float, tau: float) -> float:
    """Exact first-order lag step: stable for any dt."""
    return 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)


class BicycleModel:
    def __init__(self, params: VehicleParams | None = None, x: float = 0.0, y: float = 0.0, yaw: float = 0.0):
        self.params = params or VehicleParams()
        self.steering = 0.0
        self.throttle = 0.0
        self.time = 0.0
        self.distance = 0.0
        self.reset(x, y, yaw)

    def reset(self, x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> None:
        self.x, self.y, self.yaw = float(x), float(y), float(yaw)
        self.speed = 0.0
        self.steer_angle = 0.0

    def set_controls(self, steering: float, throttle: float) -> None:
        self.steering = _clamp_input(steering, 'steering')
        self.throttle = _clamp_input(throttle, 'throttle')

    def target_speed(self) -> float:
        p = self.params
        return self.throttle * (p.max_speed if self.throttle >= 0 else p.max_reverse_speed)

    def step(self, dt: float, steering: float | None = None, throttle: float | None = None) -> Pose:
        """Advance dt seconds (optionally setting new controls first) and return the pose."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f'dt must be finite and >= 0, got {dt}')
        if steering is not None or throttle is not None:
            self.set_controls(self.steering if steering is None else steering,
                              self.throttle if throttle is None else throttle)
        p = self.params
        target_angle = self.steering * p.max_steer_angle
        target_speed = self.target_speed()
        remaining = dt
        while remaining > 1e-12:
            h = min(p.max_substep, remaining)
            remaining -= h
            self.steer_angle += (target_angle - self.steer_angle) * _lag_factor(h, p.steering_time_constant)
            old_speed = self.speed
            self.speed += (target_speed - self.speed) * _lag_factor(h, p.motor_time_constant)
            mean_speed = 0.5 * (old_speed + self.speed)
            yaw_rate = mean_speed * math.tan(self.steer_angle) / p.wheelbase
            mid_yaw = self.yaw + 0.5 * yaw_rate * h
            self.x += mean_speed * math.cos(mid_yaw) * h
            self.y += mean_speed * math.sin(mid_yaw) * h
            self.yaw = math.atan2(math.sin(self.yaw + yaw_rate * h), math.cos(self.yaw + yaw_rate * h))
            self.distance += abs(mean_speed) * h
        self.time += dt
        return self.pose()

    def pose(self) -> Pose:
        return Pose(self.x, self.y, self.yaw, self.speed, self.steer_angle)

    def turning_radius(self) -> float:
        """Radius of the current path (inf when straight)."""
        t = math.tan(self.steer_angle)
        return math.inf if abs(t) < 1e-12 else self.params.wheelbase / abs(t)

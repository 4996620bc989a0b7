"""The bicycle model against closed-form answers."""
import math

import pytest

from rover_sim.vehicle_model import BicycleModel, VehicleParams


def test_straight_line_speed_follows_first_order_lag():
    params = VehicleParams(motor_time_constant=0.5)
    model = BicycleModel(params)
    tau, target = 0.5, 0.5 * params.max_speed
    model.step(tau, steering=0.0, throttle=0.5)
    assert model.speed == pytest.approx(target * (1 - math.exp(-1)), rel=1e-6)
    model.step(10 - tau)
    # Distance of a first-order lag: v_t * (t - tau * (1 - exp(-t / tau))).
    expected_x = target * (10 - tau * (1 - math.exp(-10 / tau)))
    pose = model.pose()
    assert pose.x == pytest.approx(expected_x, rel=1e-3)
    assert pose.y == pytest.approx(0.0, abs=1e-9) and pose.yaw == pytest.approx(0.0, abs=1e-12)
    assert pose.speed == pytest.approx(target, rel=1e-6)


def test_constant_steering_drives_a_circle_of_the_bicycle_radius():
    params = VehicleParams(steering_time_constant=0.0, motor_time_constant=0.05)
    model = BicycleModel(params)
    model.step(1.0, steering=0.6, throttle=0.3)  # settle speed
    delta = 0.6 * params.max_steer_angle
    radius = params.wheelbase / math.tan(delta)
    assert model.turning_radius() == pytest.approx(radius)
    speed = model.speed
    x0, y0, yaw0 = model.x, model.y, model.yaw
    centre = (x0 - radius * math.sin(yaw0), y0 + radius * math.cos(yaw0))  # to the left: + steering turns left
    period = 2 * math.pi * radius / speed
    for _ in range(100):
        model.step(period / 100)
        assert math.hypot(model.x - centre[0], model.y - centre[1]) == pytest.approx(radius, rel=1e-3)
    assert (model.x, model.y) == pytest.approx((x0, y0), abs=radius * 1e-2)
    assert math.cos(model.yaw - yaw0) == pytest.approx(1.0, abs=1e-4)


def test_result_does_not_depend_on_the_caller_step_size():
    a, b = BicycleModel(), BicycleModel()
    for _ in range(1000):
        a.step(0.002, steering=0.3, throttle=0.7)
    for _ in range(20):
        b.step(0.1, steering=0.3, throttle=0.7)
    # Same physics on another integration grid: differences are discretisation only.
    assert (a.x, a.y, a.yaw, a.speed) == pytest.approx((b.x, b.y, b.yaw, b.speed), rel=2e-3, abs=1e-3)


def test_neutral_coasts_to_a_stop_and_reverse_goes_backwards():
    model = BicycleModel()
    model.step(2.0, steering=0.0, throttle=1.0)
    model.step(5.0, throttle=0.0)
    assert abs(model.speed) < 1e-3
    x_stop = model.x
    model.step(3.0, throttle=-1.0)
    assert model.speed == pytest.approx(-model.params.max_reverse_speed, rel=1e-2)
    assert model.x < x_stop


def test_inputs_are_clamped_and_bad_values_rejected():
    model = BicycleModel()
    model.step(3.0, steering=5.0, throttle=9.0)
    assert model.steering == 1.0 and model.throttle == 1.0
    assert model.speed == pytest.approx(model.params.max_speed, rel=1e-2)
    assert model.steer_angle == pytest.approx(model.params.max_steer_angle, rel=1e-6)
    with pytest.raises(ValueError, match='steering'):
        model.step(0.1, steering=float('nan'))
    with pytest.raises(ValueError, match='dt'):
        model.step(-1.0)
    with pytest.raises(ValueError, match='wheelbase'):
        VehicleParams(wheelbase=0.0)


def test_yaw_stays_wrapped_and_reset_keeps_params():
    model = BicycleModel(x=1.0, y=2.0, yaw=3.0)
    model.step(20.0, steering=1.0, throttle=1.0)
    assert -math.pi <= model.yaw <= math.pi
    model.reset(5.0, 6.0, 0.5)
    assert (model.x, model.y, model.yaw, model.speed) == (5.0, 6.0, 0.5, 0.0)

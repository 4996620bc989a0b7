import numpy as np

from rover_sim.expert import PurePursuit
from rover_sim.track import StadiumTrack
from rover_sim.vehicle_model import BicycleModel


def drive(model, expert, track, seconds, dt=1 / 30):
    worst = 0.0
    for _ in range(int(seconds / dt)):
        pose = model.pose()
        model.step(dt, *expert.command(pose.x, pose.y, pose.yaw))
        worst = max(worst, abs(track.distance_from_centre(model.x, model.y)))
    return worst


def test_expert_drives_a_full_lap_inside_the_lines():
    track = StadiumTrack()
    model = BicycleModel(x=track.start_pose()[0], y=track.start_pose()[1], yaw=track.start_pose()[2])
    worst = drive(model, PurePursuit(track), track, seconds=40)
    assert model.distance > track.length          # at 0.3 throttle (0.9 m/s) a lap takes ~28 s
    assert worst < track.width / 2 - 0.1          # never touched the edge lines


def test_expert_recovers_from_a_bad_start():
    track = StadiumTrack()
    x, y, yaw = track.centre_point(3.0)
    model = BicycleModel(x=x, y=y - 0.35, yaw=yaw + 0.5)   # near the outer edge, pointing out
    drive(model, PurePursuit(track), track, seconds=6)
    assert abs(track.distance_from_centre(model.x, model.y)) < 0.1


def test_without_steering_the_car_leaves_the_track():
    """The check above can fail: driving straight does not stay on a loop."""
    track = StadiumTrack()
    x, y, yaw = track.start_pose()
    model = BicycleModel(x=x, y=y, yaw=yaw)
    for _ in range(30 * 20):
        model.step(1 / 30, 0.0, 0.3)
    assert abs(track.distance_from_centre(model.x, model.y)) > track.width / 2

import numpy as np
import pytest

from rover_sim.track import StadiumTrack, render_floor
from rover_sim.track_camera import SKY_BGR, CameraMount, TrackCamera


@pytest.fixture(scope='module')
def track():
    return StadiumTrack()


@pytest.fixture(scope='module')
def camera(track):
    return TrackCamera(render_floor(track))


def test_centre_line_is_continuous_closed_and_consistent(track):
    s = np.linspace(0, track.length, 2000, endpoint=False)
    pts = np.array([track.centre_point(v)[:2] for v in s])
    steps = np.hypot(*np.diff(np.vstack([pts, pts[:1]]), axis=0).T)
    assert np.allclose(steps, track.length / 2000, rtol=1e-3)  # no jumps, closes on itself
    for v, (x, y) in zip(s[::50], pts[::50]):
        assert track.distance_from_centre(x, y) == pytest.approx(0, abs=1e-9)
        assert track.progress(x, y) == pytest.approx(v, abs=1e-6)
    # heading is the direction of travel
    x0, y0, h = track.centre_point(1.0)
    x1, y1, _ = track.centre_point(1.01)
    assert np.arctan2(y1 - y0, x1 - x0) == pytest.approx(h, abs=1e-3)


def test_lateral_offset_sign(track):
    x, y, heading = track.centre_point(2.0)  # bottom straight, loop centre is to the left (+y)
    assert track.distance_from_centre(x, y - 0.3) == pytest.approx(0.3)
    assert track.distance_from_centre(x, y + 0.3) == pytest.approx(-0.3)


def test_view_on_the_straight_is_symmetric_with_sky_and_lines(track, camera):
    frame = camera.render(*track.centre_point(1.0))
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8
    assert tuple(frame[0, 320]) == SKY_BGR                      # top row: sky
    bottom = frame[-40:].astype(int)
    assert bottom.mean() < 130                                  # dark track surface near the car
    # yellow dashes or white lines appear somewhere below the horizon
    yellow = (frame[..., 2] > 180) & (frame[..., 1] > 150) & (frame[..., 0] < 100)
    white = frame.min(axis=-1) > 220
    assert yellow.sum() > 200 and white.sum() > 200
    # on the centre line the white edges are mirror images left/right
    left, right = white[:, :320].sum(), white[:, 320:].sum()
    assert abs(left - right) < 0.1 * (left + right)


def test_view_changes_with_pose_and_turning_shifts_the_lines(track, camera):
    x, y, h = track.centre_point(1.0)
    straight = camera.render(x, y, h)
    assert not np.array_equal(straight, camera.render(x + 0.5, y, h))
    def centre_line_column(frame):
        yellow = (frame[..., 2] > 180) & (frame[..., 1] > 150) & (frame[..., 0] < 100)
        return np.nonzero(yellow.any(axis=0))[0].mean()
    # yawing left moves the scene to the right in the picture, and vice versa
    assert centre_line_column(camera.render(x, y, h + 0.2)) > centre_line_column(straight) + 20
    assert centre_line_column(camera.render(x, y, h - 0.2)) < centre_line_column(straight) - 20


def test_mount_geometry_horizon_moves_with_pitch(track):
    floor = render_floor(track, metres_per_pixel=0.05)
    low = TrackCamera(floor, CameraMount(pitch_deg=5.0))
    high = TrackCamera(floor, CameraMount(pitch_deg=35.0))
    sky_rows = lambda cam: int((cam.render(*track.start_pose()) == SKY_BGR).all(axis=-1).all(axis=1).sum())
    assert sky_rows(low) > sky_rows(high)

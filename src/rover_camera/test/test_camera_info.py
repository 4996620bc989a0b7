"""Calibration YAML (camera_calibration_parsers format) to CameraInfo. No ROS node."""
import pytest

from rover_camera.camera_info import (load_calibration, parse_calibration, to_camera_info_msg,
                                      uncalibrated, url_to_path)

# As written by camera_calibration's cameracalibrator (ost.yaml).
CALIBRATION_YAML = """\
image_width: 640
image_height: 360
camera_name: rover_front
camera_matrix:
  rows: 3
  cols: 3
  data: [455.2, 0, 318.7, 0, 456.1, 181.3, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.31, 0.09, 0.001, -0.0004, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [402.5, 0, 320.1, 0, 0, 420.8, 180.6, 0, 0, 0, 1, 0]
"""


def test_parse_standard_calibration_and_build_the_message(tmp_path):
    path = tmp_path / 'front.yaml'
    path.write_text(CALIBRATION_YAML)
    for url in (f'file://{path}', str(path)):
        calibration = load_calibration(url)
        assert (calibration.width, calibration.height) == (640, 360)
        assert calibration.camera_name == 'rover_front' and calibration.calibrated
        msg = to_camera_info_msg(calibration, 'cam_optical')
        assert msg.header.frame_id == 'cam_optical'
        assert (msg.width, msg.height, msg.distortion_model) == (640, 360, 'plumb_bob')
        assert list(msg.k) == [455.2, 0, 318.7, 0, 456.1, 181.3, 0, 0, 1]
        assert list(msg.d) == [-0.31, 0.09, 0.001, -0.0004, 0]
        assert list(msg.p)[:3] == [402.5, 0, 320.1] and len(msg.p) == 12


def test_rectification_defaults_to_identity_when_absent():
    before, after = CALIBRATION_YAML.split('rectification_matrix:')
    without = before + 'projection_matrix:' + after.split('projection_matrix:')[1]
    assert 'rectification' not in without
    assert parse_calibration(without).r == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_uncalibrated_default_has_size_and_zero_matrices():
    msg = to_camera_info_msg(uncalibrated(320, 240), 'camera')
    assert (msg.width, msg.height) == (320, 240)
    assert list(msg.k) == [0.0] * 9 and list(msg.d) == [] and msg.distortion_model == ''
    assert not uncalibrated(320, 240).calibrated


@pytest.mark.parametrize('mutate, message', [
    (lambda t: t.replace('image_width: 640\n', ''), 'missing image_width'),
    (lambda t: t.replace('[455.2, 0, 318.7, 0, 456.1, 181.3, 0, 0, 1]', '[1, 2, 3]'), 'camera_matrix must be 3x3'),
    (lambda t: t.replace('[-0.31, 0.09, 0.001, -0.0004, 0]', '[1, 2]'), 'distortion_coefficients'),
    (lambda t: t.replace('[455.2,', '[abc,'), 'must hold numbers'),
    (lambda t: t + '  oops: [unclosed', 'not valid YAML'),
    (lambda t: '- just\n- a list\n', 'expected a YAML mapping'),
    (lambda t: t.replace('image_height: 360', 'image_height: -1'), 'positive'),
])
def test_bad_calibrations_are_clear_errors(mutate, message):
    with pytest.raises(ValueError, match=message):
        parse_calibration(mutate(CALIBRATION_YAML), origin='test.yaml')


def test_bad_urls(tmp_path):
    with pytest.raises(ValueError, match='cannot read'):
        load_calibration(f'file://{tmp_path}/missing.yaml')
    with pytest.raises(ValueError, match='only file:// and package://'):
        url_to_path('http://example.com/cam.yaml')
    assert url_to_path('file:///a/b%20c.yaml') == '/a/b c.yaml'

"""Calibration files (camera_calibration_parsers YAML and INI) and URLs <-> CameraInfo. No ROS node."""
import os

import pytest

from rover_camera.camera_info import (from_camera_info_msg, full_frame_problem, load_calibration,
                                      parse_calibration, resolve_url, save_calibration,
                                      to_camera_info_msg, uncalibrated, url_to_path, valid_camera_name)

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


# What cameracalibrator puts beside ost.yaml in /tmp/calibrationdata.tar.gz.
OST_TXT = """\
# oST version 5.0 parameters


[image]

width
640

height
360

[narrow_stereo]

camera matrix
455.200000 0.000000 318.700000
0.000000 456.100000 181.300000
0.000000 0.000000 1.000000

distortion
-0.310000 0.090000 0.001000 -0.000400 0.000000

rectification
1.000000 0.000000 0.000000
0.000000 1.000000 0.000000
0.000000 0.000000 1.000000

projection
402.500000 0.000000 320.100000 0.000000
0.000000 420.800000 180.600000 0.000000
0.000000 0.000000 1.000000 0.000000
"""


def test_ini_from_cameracalibrator_reads_like_the_yaml(tmp_path):
    path = tmp_path / 'ost.txt'
    path.write_text(OST_TXT)
    from_ini, from_yaml = load_calibration(str(path)), parse_calibration(CALIBRATION_YAML)
    assert from_ini.camera_name == 'narrow_stereo' and from_ini.distortion_model == 'plumb_bob'
    for field in ('width', 'height', 'd', 'k', 'r', 'p'):
        assert getattr(from_ini, field) == pytest.approx(getattr(from_yaml, field)), field
    indented = '\n'.join('        ' + line for line in OST_TXT.splitlines())  # newer calibrators indent
    assert parse_calibration(indented).k == from_ini.k


@pytest.mark.parametrize('mutate, message', [
    (lambda t: t.replace('width\n640\n', ''), 'missing width'),
    (lambda t: t.replace('0.000000 0.000000 1.000000\n\ndistortion', '0.0 1.0\n\ndistortion'),
     'camera matrix must have 9 values'),
    (lambda t: t.replace('-0.310000 0.090000', '-0.310000'), 'distortion must have 5 or 8'),
    (lambda t: t.replace('455.200000', 'abc'), 'camera matrix must hold numbers'),
    (lambda t: t.replace('camera matrix', 'camera matrx'), "line 14: 'camera matrx' outside a known entry"),
])
def test_bad_ini_calibrations_are_clear_errors(mutate, message):
    with pytest.raises(ValueError, match=message):
        parse_calibration(mutate(OST_TXT), origin='ost.txt')


def test_urls_like_camera_info_manager(tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'home'))
    assert resolve_url('', 'front') == f'file://{tmp_path}/home/camera_info/front.yaml'
    assert resolve_url('file://${ROS_HOME}/cal/${NAME}.ini', 'rear') == f'file://{tmp_path}/home/cal/rear.ini'
    monkeypatch.delenv('ROS_HOME')
    assert resolve_url('', 'front') == 'file://' + os.path.expanduser('~/.ros/camera_info/front.yaml')
    with pytest.raises(ValueError, match=r'unknown substitution \$\{HOME\}'):
        resolve_url('file://${HOME}/x.yaml', 'front')
    for scheme in ('file', 'FILE', 'File'):
        assert url_to_path(f'{scheme}:///a/b.yaml') == '/a/b.yaml'
    share = url_to_path('Package://rover_camera/README.md')  # the installed package's share/
    assert share.endswith(os.path.join('share', 'rover_camera', 'README.md')) and os.path.exists(share)
    with pytest.raises(ValueError, match='package .no_such_rover_pkg. not found'):
        url_to_path('package://no_such_rover_pkg/cam.yaml')
    assert valid_camera_name('rover_front1') and not valid_camera_name('front cam')
    assert not valid_camera_name('') and not valid_camera_name('../x')


@pytest.mark.parametrize('name', ['saved/front.yaml', 'saved/front.yml', 'saved/ost.txt', 'saved/front.ini'])
def test_saved_calibrations_read_back_the_same(tmp_path, name):
    calibration = parse_calibration(CALIBRATION_YAML)
    calibration.camera_name = 'front'
    path = save_calibration(calibration, f'file://{tmp_path}/{name}')  # creates saved/
    assert path == str(tmp_path / name)
    again = load_calibration(path)
    for field in ('width', 'height', 'camera_name', 'distortion_model', 'd', 'k', 'r', 'p'):
        assert getattr(again, field) == pytest.approx(getattr(calibration, field)), field
    assert [p.name for p in (tmp_path / 'saved').iterdir()] == [os.path.basename(name)]  # no temp file left


def test_saving_refuses_unknown_extensions_and_unwritable_places(tmp_path):
    calibration = parse_calibration(CALIBRATION_YAML)
    with pytest.raises(ValueError, match='cannot save to .json extension'):
        save_calibration(calibration, str(tmp_path / 'cam.json'))
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(ValueError, match='cannot save the calibration'):
        save_calibration(calibration, str(blocker / 'cam.yaml'))


def test_camera_info_message_round_trip_and_full_frame_check():
    msg = to_camera_info_msg(parse_calibration(CALIBRATION_YAML), 'camera_optical_frame')
    back = from_camera_info_msg(msg, 'front')
    assert back.k == pytest.approx(parse_calibration(CALIBRATION_YAML).k) and back.camera_name == 'front'
    assert full_frame_problem(msg) is None
    msg.binning_x = msg.binning_y = 1
    msg.roi.width, msg.roi.height = 640, 360
    assert full_frame_problem(msg) is None  # binning 1 and a full-frame roi are the same as none
    msg.binning_x = 2
    assert 'binning 2x1 is not supported' in full_frame_problem(msg)
    msg.binning_x = 1
    msg.roi.x_offset, msg.roi.width = 10, 320
    assert 'roi 320x360+10+0 is not supported' in full_frame_problem(msg)

"""Calibration frames from rosbag2 (MCAP and SQLite3, Image and CompressedImage)."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rover_quantize.bags import index_bags, load_frames, split_indices, write_test_bag
from rover_quantize.calibration import synthetic_frames
from rover_quantize.errors import BagError

HW = (48, 64)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('image_type,encoding', [('raw', 'bgr8'), ('raw', 'rgb8'), ('raw', 'mono8'),
                                                 ('compressed', None)])
def test_reads_frames_and_pairs_state(tmp_path, storage, image_type, encoding):
    frames = synthetic_frames(12, *HW, seed=7)
    bag = write_test_bag(tmp_path / 'bag', storage=storage, image_type=image_type, encoding=encoding or 'bgr8',
                         frames=frames)
    idx = index_bags([bag], 'camera/image_raw', 'rover/state', 2)  # relative names match /camera/...
    assert idx.total == 12
    if image_type == 'compressed':
        assert idx.image_topic[str(bag)] == '/camera/image_raw/compressed'
        assert any('compressed' in n for n in idx.notes)
    got = load_frames(idx, [0, 5, 11], HW, 2, progress=False)
    assert [f.index for f in got] == [0, 5, 11]
    for frame, want in zip(got, frames[[0, 5, 11]]):
        assert frame.image.shape == (*HW, 3) and frame.image.dtype == np.uint8
        if image_type == 'compressed':
            assert np.abs(frame.image.astype(int) - want.astype(int)).mean() < 6  # jpeg q90
        elif encoding == 'mono8':
            grey = cv2.cvtColor(want, cv2.COLOR_RGB2GRAY)
            for c in range(3):
                np.testing.assert_array_equal(frame.image[..., c], grey)
        else:
            np.testing.assert_array_equal(frame.image, want)
    # write_test_bag stamps state 5 ms before each frame: state i pairs with frame i
    phase = 5 / 12
    np.testing.assert_allclose(got[1].state, [0.5 * np.cos(6.28 * phase), 0.3 + 0.2 * np.sin(6.28 * phase)],
                               atol=1e-6)


def test_resizes_to_model_input(tmp_path):
    bag = write_test_bag(tmp_path / 'bag', n_frames=3, hw=(120, 160))
    idx = index_bags([bag], 'camera/image_raw', 'rover/state', 2)
    assert load_frames(idx, [1], HW, 2, progress=False)[0].image.shape == (*HW, 3)


def test_several_bags_are_one_sequence(tmp_path):
    a = write_test_bag(tmp_path / 'a', n_frames=5, hw=HW, seed=1)
    b = write_test_bag(tmp_path / 'b', storage='sqlite3', n_frames=7, hw=HW, seed=2)
    idx = index_bags([a, b], 'camera/image_raw', 'rover/state', 2)
    assert idx.total == 12
    frames = load_frames(idx, [4, 5, 11], HW, 2, progress=False)
    assert [f.bag for f in frames] == [str(a), str(b), str(b)]
    np.testing.assert_array_equal(frames[1].image, synthetic_frames(7, *HW, seed=2)[0])


def test_missing_topic_lists_what_is_there(tmp_path):
    bag = write_test_bag(tmp_path / 'bag', n_frames=3, hw=HW, image_topic='/front/image')
    with pytest.raises(BagError) as err:
        index_bags([bag], 'camera/image_raw', 'rover/state', 2)
    assert '/front/image (sensor_msgs/msg/Image)' in str(err.value)
    assert '/rover/state (geometry_msgs/msg/TwistStamped)' in str(err.value)
    nostate = write_test_bag(tmp_path / 'nostate', n_frames=3, hw=HW, state_topic=None)
    with pytest.raises(BagError, match='no state topic'):
        index_bags([nostate], 'camera/image_raw', 'rover/state', 2)
    assert index_bags([nostate], 'camera/image_raw', None, 0).total == 3  # stateless model: fine


@pytest.mark.parametrize('storage,suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_truncated_bag_is_a_clear_error(tmp_path, storage, suffix):
    bag = write_test_bag(tmp_path / 'bag', storage=storage, n_frames=30, hw=HW)
    data_file = next(bag.glob(f'*{suffix}'))
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=r'bag .*(truncated|corrupt|cannot)'):
        idx = index_bags([bag], 'camera/image_raw', 'rover/state', 2)
        load_frames(idx, list(range(idx.total)), HW, 2, progress=False)


def test_not_a_bag(tmp_path):
    with pytest.raises(BagError, match='not found'):
        index_bags([tmp_path / 'nope'], 'camera/image_raw', 'rover/state', 2)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='cannot open bag'):
        index_bags([tmp_path / 'empty'], 'camera/image_raw', 'rover/state', 2)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(2, 5000), n_calib=st.integers(1, 300), n_valid=st.integers(1, 80))
def test_split_is_spread_and_disjoint(total, n_calib, n_valid):
    calib, valid = split_indices(total, n_calib, n_valid)
    assert calib and valid
    assert not set(calib) & set(valid)
    assert all(0 <= i < total for i in calib + valid)
    assert len(set(calib)) == len(calib) and len(set(valid)) == len(valid)
    if total >= n_calib + n_valid:
        assert len(calib) == n_calib and len(valid) == n_valid
    if len(calib) >= 4:  # spread over the recording, not the first N
        assert min(calib) <= total * 0.25 and max(calib) >= total * 0.6
    if len(valid) >= 4:
        assert min(valid) <= total * 0.4 and max(valid) >= total * 0.6


def test_split_needs_two_frames():
    with pytest.raises(BagError):
        split_indices(1, 10, 5)

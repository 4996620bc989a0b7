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


# --- Bags users actually have (issue 13) and damaged ones (issue 10) ---

def _flip(path, start, n=4096):
    data = bytearray(path.read_bytes())
    data[start:start + n] = bytes(b ^ 0xFF for b in data[start:start + n])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize('storage,suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_lone_storage_file_without_metadata(tmp_path, storage, suffix):
    bag = write_test_bag(tmp_path / 'bag', storage=storage, n_frames=6, hw=HW, seed=4)
    lone = tmp_path / f'copied{suffix}'
    next(bag.glob(f'*{suffix}')).rename(lone)  # the directory and its metadata.yaml are gone
    idx = index_bags([lone], 'camera/image_raw', 'rover/state', 2)
    assert idx.total == 6
    np.testing.assert_array_equal(load_frames(idx, [2], HW, 2, progress=False)[0].image,
                                  synthetic_frames(6, *HW, seed=4)[2])
    # a directory holding just that one file opens too
    (tmp_path / 'dir').mkdir()
    lone.rename(tmp_path / 'dir' / lone.name)
    assert index_bags([tmp_path / 'dir'], 'camera/image_raw', 'rover/state', 2).total == 6


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_unparseable_service_event_channel_is_skipped_with_one_note(tmp_path, storage):
    from rosbags.highlevel import AnyReader
    bag = write_test_bag(tmp_path / 'bag', storage=storage, n_frames=5, hw=HW, service_event=True)
    with pytest.raises(Exception):  # what a plain rosbags AnyReader does with such a bag
        AnyReader([bag]).open()
    idx = index_bags([bag], 'camera/image_raw', 'rover/state', 2)
    assert idx.total == 5
    skipped = [n for n in idx.notes if 'skipped 1 channel' in n]
    assert len(skipped) == 1 and '\n' not in skipped[0]
    assert '/camera/get_parameters/_service_event (rcl_interfaces/srv/GetParameters_Event)' in skipped[0]


def test_error_about_such_a_bag_is_one_line(tmp_path):
    bag = write_test_bag(tmp_path / 'bag', n_frames=3, hw=HW, service_event=True, image_topic='/front/image')
    with pytest.raises(BagError) as err:
        index_bags([bag], 'camera/image_raw', 'rover/state', 2)
    assert '\n' not in str(err.value) and 'no image topic' in str(err.value)
    assert '/front/image (sensor_msgs/msg/Image)' in str(err.value)


BIG = (120, 160)  # 57 kB frames: about 18 per 1 MiB MCAP chunk, so 60 frames make 4 chunks


def _chunks(bag):
    from rover_quantize.bags import open_bag
    with open_bag(bag) as reader:
        return sorted(reader._mcap_storages()[0].chunks, key=lambda c: c.chunk_start_offset)


def test_damaged_chunk_with_crc_is_skipped_and_counted(tmp_path):
    bag = write_test_bag(tmp_path / 'bag', n_frames=120, hw=BIG, seed=5)
    chunks = _chunks(bag)
    assert len(chunks) >= 6
    lost = chunks[2].channel_count[1]  # channel 1 is the camera
    _flip(next(bag.glob('*.mcap')), chunks[2].chunk_start_offset + 200)
    idx = index_bags([bag], 'camera/image_raw', 'rover/state', 2, max_bad_fraction=0.25)
    assert idx.total == 120 - lost and idx.bad_frames == lost
    assert any(f'skipped 1 damaged chunk(s) holding {lost} frame(s)' in n and 'CRC mismatch' in n
               for n in idx.notes), idx.notes
    frames = load_frames(idx, list(range(idx.total)), HW, 2, progress=False)
    want = synthetic_frames(120, *BIG, seed=5)
    period, start = int(1e9 / 30), 1_700_000_000_000_000_000  # write_test_bag's clock
    numbers = [(f.stamp_ns - start) // period for f in frames]
    assert len(set(numbers)) == len(frames) == 120 - lost
    for frame, i in list(zip(frames, numbers))[::10]:  # each good frame is the one recorded
        np.testing.assert_array_equal(frame.image, cv2.resize(want[i], (HW[1], HW[0]), interpolation=cv2.INTER_AREA))


def test_too_many_bad_frames_refuse_the_bag(tmp_path):
    bag = write_test_bag(tmp_path / 'bag', n_frames=60, hw=BIG)
    chunk = _chunks(bag)[1]
    _flip(next(bag.glob('*.mcap')), chunk.chunk_start_offset + 200)
    with pytest.raises(BagError, match=r'of 60 image messages are bad \(more than 10%\).*CRC mismatch'):
        index_bags([bag], 'camera/image_raw', 'rover/state', 2)
    assert index_bags([bag], 'camera/image_raw', 'rover/state', 2, max_bad_fraction=0.5).bad_frames > 6


def test_without_crcs_damaged_headers_are_still_caught(tmp_path):
    """rosbags' own writer leaves chunk CRCs 0 ("not computed"): then each message is checked."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rover_quantize.bags import _typestore
    ts = _typestore()
    Image, Header, Time = (ts.types[t] for t in ('sensor_msgs/msg/Image', 'std_msgs/msg/Header',
                                                  'builtin_interfaces/msg/Time'))
    px = synthetic_frames(1, *HW)[0]
    with Writer(tmp_path / 'bag', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/camera/image_raw', Image.__msgtype__, typestore=ts)
        for i in range(20):
            h, w, enc, data = HW[0], HW[1], 'rgb8', px.reshape(-1)
            if i == 3:
                data = data[:-100]             # short data
            elif i == 7:
                enc = 'yuv422_yuy2'            # not a camera encoding we read
            elif i == 11:
                h = 100000                     # impossible size
            msg = Image(header=Header(stamp=Time(sec=1, nanosec=i), frame_id='c'), height=h, width=w,
                        encoding=enc, is_bigendian=0, step=w * 3, data=data)
            writer.write(conn, 1_000_000_000 + i, ts.serialize_cdr(msg, msg.__msgtype__))
    idx = index_bags([tmp_path / 'bag'], 'camera/image_raw', None, 0, max_bad_fraction=0.2)
    assert idx.total == 17 and idx.bad_frames == 3
    assert any('skipped 3 bad image message(s)' in n for n in idx.notes)
    with pytest.raises(BagError, match='3 of 20 image messages are bad'):
        index_bags([tmp_path / 'bag'], 'camera/image_raw', None, 0)


def test_data_section_crc_is_checked(tmp_path):
    from rover_quantize.bags import open_bag
    bag = write_test_bag(tmp_path / 'bag', n_frames=10, hw=HW)
    with open_bag(bag) as reader:
        assert reader.notes == []
    data = next(bag.glob('*.mcap'))
    # damage a byte outside any chunk (the header record's library string): only the data CRC sees it
    raw = bytearray(data.read_bytes())
    raw[32] ^= 0x01  # after magic (8), opcode and length (9), "ros2" (8) and the string length (4)
    data.write_bytes(bytes(raw))
    with open_bag(bag) as reader:
        assert any('data section fails its CRC' in n for n in reader.notes)

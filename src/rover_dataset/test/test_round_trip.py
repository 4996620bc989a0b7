"""Bag with known frames/stamps/commands -> dataset -> read back with pyarrow and PyAV only."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import synthbag as sb
from rover_dataset.cli import main
from rover_dataset.inspect_preview import decode_video

KEY = 'observation.images.cam_front'


def valid_at(items, t):
    """Brute force: the last (stamp, ..., steer, thr) with stamp <= t."""
    best = None
    for stamp, _log, steer, thr in items:
        if stamp <= t and (best is None or stamp > best[0]):
            best = (stamp, steer, thr)
    return np.float32([best[1], best[2]])


def marked_drive():
    """6 s; episodes marked 0.5-2.5 s and 3.0 s-end; autonomous 4.0-4.5 s; frame 40 never arrived."""
    rec = sb.drive(6.0, missing={40})
    rec.mode = [(sb.at(-0.1), 'manual'), (sb.at(4.0), 'autonomous'), (sb.at(4.5), 'manual')]
    rec.estop = [(sb.at(-0.1), False)]
    rec.episode = [(sb.at(0.5), True), (sb.at(2.5), False), (sb.at(3.0), True)]
    return rec


def expected_frames(rec):
    """Frame ids per expected episode, written out from the recording, not from the converter."""
    ids = {fid: stamp for fid, stamp, _ in rec.frames}

    def span(a, b):
        return [f for f in sorted(ids) if sb.at(a) <= ids[f] < sb.at(b)]
    ep0 = span(0.5, 2.5)
    at = ep0.index(39)
    ep0 = ep0[:at + 1] + [39] + ep0[at + 1:]  # frame 40 missing: its slot repeats frame 39
    return [ep0, span(3.0, 4.0), span(4.5, 99)], ids


def read_dataset(root):
    info = json.loads((root / 'meta' / 'info.json').read_text())
    data = pq.read_table(root / 'data' / 'chunk-000' / 'file-000.parquet').to_pydict()
    episodes = pq.read_table(root / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet').to_pylist()
    stats = json.loads((root / 'meta' / 'stats.json').read_text())
    video = list(decode_video(root / 'videos' / KEY / 'chunk-000' / 'file-000.mp4'))
    return info, data, episodes, stats, video


@pytest.mark.parametrize('image', ['raw', 'compressed'])
def test_round_trip(tmp_path, image, capsys):
    rec = marked_drive()
    bag = sb.write(rec, tmp_path / 'bag', image=image)
    out = tmp_path / 'ds'
    assert main(['build', str(bag), '-o', str(out), '--no-progress']) == 0
    printed = capsys.readouterr().out
    assert '1 repeated' in printed and 'not manual' in printed

    info, data, episodes, stats, video = read_dataset(out)
    want, stamps = expected_frames(rec)
    n = sum(len(e) for e in want)
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 30
    assert info['total_frames'] == n == len(data['index']) == len(video)
    assert info['total_episodes'] == 3 and [e['length'] for e in episodes] == [len(e) for e in want]
    assert info['features'][KEY]['shape'] == [64, 96, 3]

    # video: pts exactly k/fps; every frame is its bag frame (within codec tolerance), not a neighbour
    flat = [f for ep in want for f in ep]
    for k, ((pts, rgb), fid) in enumerate(zip(video, flat)):
        assert abs(pts - k / 30) < 1e-4
        err = np.abs(rgb.astype(int) - sb.frame_pixels(fid)).mean()
        others = [np.abs(rgb.astype(int) - sb.frame_pixels(o)).mean() for o in (fid - 1, fid + 1)]
        assert err < 6 and err < min(others), (k, fid, err, others)

    # every action / state is the value valid at the frame's capture stamp (not the nearest one)
    action, state = np.float32(data['action']), np.float32(data['observation.state'])
    nearest_differs = 0
    for row, fid in enumerate(flat):
        t = stamps[fid]
        np.testing.assert_array_equal(action[row], valid_at(rec.cmd, t))
        np.testing.assert_array_equal(state[row], valid_at(rec.state, t))
        nearest = min(rec.cmd, key=lambda c: abs(c[0] - t))
        nearest_differs += not np.array_equal(action[row], np.float32(nearest[2:]))
    assert nearest_differs > n // 3  # the recording tells "valid at" from "nearest" apart

    # episode table and indices; timestamps restart per episode; video offsets chain up
    start = 0
    for e, ids in zip(episodes, want):
        assert e['dataset_from_index'] == start and e['dataset_to_index'] == start + len(ids)
        assert e[f'videos/{KEY}/from_timestamp'] == pytest.approx(start / 30)
        assert e[f'videos/{KEY}/to_timestamp'] == pytest.approx((start + len(ids)) / 30)
        rows = slice(start, start + len(ids))
        assert data['frame_index'][rows] == list(range(len(ids)))
        assert np.allclose(data['timestamp'][rows], np.arange(len(ids)) / 30)
        assert set(data['episode_index'][rows]) == {e['episode_index']}
        assert e['tasks'] == ['follow the track']
        np.testing.assert_allclose(e['stats/action/mean'], action[rows].astype(np.float64).mean(0), rtol=1e-6)
        start += len(ids)
    assert data['index'] == list(range(n))

    # stats.json equals numpy over the data
    for key, values in (('action', action), ('observation.state', state)):
        v = values.astype(np.float64)
        np.testing.assert_allclose(stats[key]['mean'], v.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]['std'], v.std(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]['min'], v.min(0))
        np.testing.assert_allclose(stats[key]['max'], v.max(0))
        np.testing.assert_allclose(stats[key]['q01'], np.quantile(v, 0.01, axis=0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]['q99'], np.quantile(v, 0.99, axis=0), rtol=1e-6)
        assert stats[key]['count'] == [n]
    img = stats[KEY]
    assert np.shape(img['mean']) == (3, 1, 1)
    pixels = np.stack([sb.frame_pixels(f) for f in flat]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.ravel(img['mean']), pixels.mean(0), atol=0.01)  # stats sample frames


def test_tasks_parquet_is_indexed_by_task(tmp_path):
    """LeRobot reads meta/tasks.parquet with pandas: task string = index, column task_index."""
    bag = sb.write(marked_drive(), tmp_path / 'bag')
    assert main(['build', str(bag), '-o', str(tmp_path / 'ds'), '--task', 'drive the loop', '--no-progress']) == 0
    table = pq.read_table(tmp_path / 'ds' / 'meta' / 'tasks.parquet')
    assert table.to_pydict() == {'task_index': [0], '__index_level_0__': ['drive the loop']}
    assert json.loads(table.schema.metadata[b'pandas'])['index_columns'] == ['__index_level_0__']


def test_mode_changes_make_episodes_and_estop_splits(tmp_path, capsys):
    """No markers: manual 0-2 s, autonomous 2-3 s, manual 3-5 s with an e-stop 3.8-4.0 s."""
    rec = sb.drive(5.0)
    rec.mode = [(sb.at(-0.2), 'manual'), (sb.at(2.0), 'autonomous'), (sb.at(3.0), 'manual')]
    rec.estop = [(sb.at(-0.2), False), (sb.at(3.8), True), (sb.at(4.0), False)]
    bag = sb.write(rec, tmp_path / 'bag', image='compressed')
    assert main(['build', str(bag), '-o', str(tmp_path / 'x'), '--dry-run']) == 0
    table = capsys.readouterr().out
    assert not (tmp_path / 'x').exists()
    lines = [line.split() for line in table.splitlines()[1:4]]
    def count(a, b):
        return sum(sb.at(a) <= stamp < sb.at(b) for _, stamp, _ in rec.frames)
    assert [int(cols[4]) for cols in lines] == [count(-1, 2.0), count(3.0, 3.8), count(4.0, 9)]
    assert all(cols[-1] == 'mode' for cols in lines)
    assert 'e-stop engaged' in table and '3 episode(s)' in table

    assert main(['build', str(bag), '-o', str(tmp_path / 'y'), '--dry-run', '--include-autonomous']) == 0
    assert '4 episode(s)' in capsys.readouterr().out  # + the autonomous segment


def test_bare_mcap_namespace_and_several_bags(tmp_path):
    """One episode per bag (no markers, no mode); bare .mcap; namespaced topics; sqlite3 storage."""
    a = sb.write(sb.drive(1.0), tmp_path / 'a', namespace='car1', bare_mcap=True)
    b = sb.write(sb.drive(1.5, seed=1), tmp_path / 'b', storage='sqlite3', namespace='car1', image='both')
    out = tmp_path / 'ds'
    assert main(['build', str(a), str(b), '-o', str(out), '--no-progress', '--vcodec', 'h264']) == 0
    info, data, episodes, _, video = read_dataset(out)
    assert [e['length'] for e in episodes] == [30, 45] and len(video) == 75
    assert info['features'][KEY]['info']['video.codec'] == 'h264'
    assert data['index'] == list(range(75))


def test_camera_faster_than_fps_drops_frames(tmp_path, capsys):
    rec = sb.drive(2.0, jitter_ns=0)
    bag = sb.write(rec, tmp_path / 'bag')
    assert main(['build', str(bag), '-o', str(tmp_path / 'ds'), '--fps', '15', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert ' 30 dropped' in out and '0 repeated' in out  # 60 frames at 30 Hz -> 30 slots at 15 fps


def test_inspect_and_preview(tmp_path, capsys):
    bag = sb.write(marked_drive(), tmp_path / 'bag')
    out = tmp_path / 'ds'
    assert main(['build', str(bag), '-o', str(out), '--no-progress']) == 0
    capsys.readouterr()
    assert main(['inspect', str(out)]) == 0
    text = capsys.readouterr().out
    assert '3 episodes, 135 frames at 30 fps' in text and 'action[steering]' in text
    assert main(['preview', str(out), '-o', str(tmp_path / 'p.png')]) == 0
    assert main(['preview', str(out), '-o', str(tmp_path / 'p.mp4'), '--episode', '1']) == 0
    frames = list(decode_video(tmp_path / 'p.mp4'))
    assert len(frames) == 30
    import cv2
    grid = cv2.imread(str(tmp_path / 'p.png'))
    assert grid is not None and grid.shape[1] == 4 * 96


def test_without_rover_cmd_the_human_command_is_the_action(tmp_path, capsys):
    rec = sb.drive(2.0)
    bag = sb.write(rec, tmp_path / 'bag', with_rover_cmd=False)
    out = tmp_path / 'ds'
    assert main(['build', str(bag), '-o', str(out), '--no-progress', '--max-age', '2']) == 0
    assert 'using the human command /teleop/cmd' in capsys.readouterr().out
    _, data, _, _, _ = read_dataset(out)
    assert np.allclose(data['action'], 0.9)


def test_sim_recording_converts(tmp_path):
    pytest.importorskip('rover_sim', reason='rover_sim (the workspace) is not importable')
    from rover_dataset.sim_recording import record
    bag = record(tmp_path / 'sim', seconds=3.0, episode_s=1.0)
    out = tmp_path / 'ds'
    assert main(['build', str(bag), '-o', str(out), '--no-progress', '--resize', '320x180']) == 0
    info, data, episodes, stats, video = read_dataset(out)
    assert info['total_episodes'] == 3 and len(video) == info['total_frames'] >= 88
    assert info['features'][KEY]['shape'] == [180, 320, 3]
    # the state is what the Arduino applied one tick earlier: the previous frame's action
    a, s = np.float32(data['action']), np.float32(data['observation.state'])
    for e in episodes:
        rows = slice(e['dataset_from_index'] + 1, e['dataset_to_index'])
        np.testing.assert_array_equal(s[rows], a[e['dataset_from_index']:e['dataset_to_index'] - 1])

"""The alignment core on hand-made series (no bags)."""
import numpy as np

from rover_dataset.align import NS, Options, plan_bag, resample, valid_at
from rover_dataset.bagread import BagData, Series

P = NS // 30


def series(times, values):
    return Series(np.asarray(times, np.int64), np.asarray(values, np.float32))


def test_valid_at_is_the_last_message_not_the_nearest():
    s = series([0, 100, 200], [[0, 0], [1, 1], [2, 2]])
    assert valid_at(s, np.array([-1, 0, 99, 100, 199, 250])).tolist() == [-1, 0, 0, 1, 1, 2]


def test_resample_repeats_missing_frames_and_drops_extra_ones():
    stamps = np.array([0, P, 2 * P, 4 * P, 5 * P])            # frame at 3P never arrived
    idx, repeated, dropped = resample(stamps, 30)
    assert idx.tolist() == [0, 1, 2, 2, 3, 4] and (repeated, dropped) == (1, 0)
    fast = np.arange(11) * (P // 2 + 1)                         # 60 Hz camera, 30 fps dataset
    idx, repeated, dropped = resample(fast, 30)
    assert idx.tolist() == [0, 2, 4, 6, 8, 10] and (repeated, dropped) == (0, 5)


def bag(stamps, cmd_times, **kw):
    stamps = np.asarray(stamps, np.int64)
    cmd = series(cmd_times, [[i / 100, 0.5] for i in range(len(cmd_times))])
    state = series(cmd_times, [[0.0, 0.1]] * len(cmd_times))
    fields = dict(path='b', image_topic='/camera/image_raw', image_type='sensor_msgs/msg/Image',
                  image_stamps=stamps, image_log=stamps + 1000, state=state, cmd=cmd, cmd_topic='/rover/cmd',
                  mode=None, estop=None, episode=None)
    fields.update(kw)
    return BagData(**fields)


def test_stale_command_frames_are_left_out_and_split_the_episode():
    stamps = np.arange(60) * P
    cmds = [t for t in stamps if not (20 * P <= t < 40 * P)] + [19 * P + 1]  # link down 20..40
    skipped = __import__('collections').Counter()
    eps = plan_bag(bag(stamps, sorted(cmds)), Options(max_age_s=0.2), skipped)
    assert [e.length for e in eps] == [26, 20]   # frames 20-25 still have a fresh (<0.2 s) command
    assert skipped == {'command older than 0.2 s': 14}


def test_unclosed_episode_marker_ends_with_the_bag():
    stamps = np.arange(90) * P
    markers = Series(np.array([30 * P], np.int64), np.array([True]))
    eps = plan_bag(bag(stamps, stamps, episode=markers), Options(), __import__('collections').Counter())
    assert len(eps) == 1 and eps[0].length == 60 and eps[0].source == 'markers'

"""Writing a video must not leave the process at real-time priority.

SVT-AV1, run as root (CI, containers), moves the thread that starts it to SCHED_FIFO 99 and
its worker threads inherit that; the converter puts every thread back.
"""
import os

import numpy as np
import pytest

from rover_dataset.lerobot_format import VideoFiles


def scheduling_of_every_thread():
    states = {}
    for task in os.listdir('/proc/self/task'):
        try:
            states[int(task)] = (os.sched_getscheduler(int(task)), os.sched_getparam(int(task)).sched_priority)
        except OSError:
            pass
    return states


@pytest.mark.skipif(not hasattr(os, 'sched_getscheduler'), reason='no POSIX scheduling API here')
@pytest.mark.parametrize('vcodec', ['libsvtav1', 'h264'])
def test_video_writing_keeps_every_thread_at_normal_scheduling(tmp_path, vcodec):
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    videos = VideoFiles(tmp_path, fps=30, hw=(64, 96), vcodec=vcodec, crf=30, gop=2)
    videos.start_episode()
    for i in range(12):
        videos.write(np.full((64, 96, 3), 10 * i, np.uint8))
        assert set(scheduling_of_every_thread().values()) == {before}, (vcodec, i)
    videos.close()
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    assert videos.path.stat().st_size > 0

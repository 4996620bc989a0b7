import queue
import threading

import numpy as np

from rover_policy.inference_worker import InferenceWorker


class GatedBackend:
    """Records what it was given; each inference waits until the test releases it."""

    def __init__(self):
        self.seen = []
        self.release = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.fail_on = set()

    def infer(self, image, state):
        self.started.release()
        self.release.acquire()
        value = int(image[0, 0, 0, 0])
        self.seen.append((value, state.tolist()))
        if value in self.fail_on:
            raise RuntimeError(f'backend broke on {value}')
        return np.full((3, 2), value, np.float32)


def make_worker(backend, results, errors, delay=0.0):
    return InferenceWorker(
        backend, decode=lambda msg: msg, preprocess=lambda bgr: bgr[np.newaxis],
        make_state=lambda values: np.array([values if values is not None else [0.0, 0.0]], np.float32),
        on_chunk=results.put, on_error=errors.put, clock=lambda: 123.0, inject_delay_s=delay).start()


def frame(value):
    return np.full((2, 2, 3), value, np.uint8)


def test_newest_frame_and_state_win_and_skips_are_counted():
    backend, results, errors = GatedBackend(), queue.Queue(), queue.Queue()
    worker = make_worker(backend, results, errors)
    try:
        worker.submit_frame(frame(1), stamp=1.0, received=1.01)
        assert backend.started.acquire(timeout=5)       # frame 1 is in the model now
        for value in (2, 3, 4):                          # three more arrive meanwhile
            worker.submit_frame(frame(value), stamp=float(value), received=value + 0.01)
        worker.set_state([0.5, -0.5])
        backend.release.release()
        first = results.get(timeout=5)
        assert backend.started.acquire(timeout=5)
        backend.release.release()
        second = results.get(timeout=5)
        assert backend.seen == [(1, [[0.0, 0.0]]), (4, [[0.5, -0.5]])]  # 2 and 3 were replaced
        assert (first.stamp, first.frames_skipped, second.stamp, second.frames_skipped) == (1.0, 0, 4.0, 2)
        assert second.received == 4.01 and second.ready == 123.0
        assert np.array_equal(second.actions, np.full((3, 2), 4, np.float32))
        assert worker.chunks == 2
    finally:
        worker.stop()


def test_errors_are_reported_and_the_thread_keeps_going():
    backend, results, errors = GatedBackend(), queue.Queue(), queue.Queue()
    backend.fail_on = {7}
    worker = make_worker(backend, results, errors)
    try:
        worker.submit_frame(frame(7), 7.0, 7.0)
        backend.release.release()
        assert 'backend broke on 7' in str(errors.get(timeout=5))
        worker.submit_frame(frame(8), 8.0, 8.0)
        backend.release.release()
        assert results.get(timeout=5).stamp == 8.0
        assert (worker.errors, worker.chunks) == (1, 1)
    finally:
        worker.stop()


def test_injected_delay_counts_as_model_time():
    backend, results, errors = GatedBackend(), queue.Queue(), queue.Queue()
    worker = make_worker(backend, results, errors, delay=0.05)
    try:
        backend.release.release()
        worker.submit_frame(frame(1), 1.0, 1.0)
        assert results.get(timeout=5).model_s >= 0.05
    finally:
        worker.stop()
        assert not worker._thread.is_alive()


def _own_nice():
    import os
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_inference_runs_niced_and_the_rest_of_the_process_does_not():
    import os
    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen = queue.Queue()

    class NiceProbe:
        def infer(self, image, state):
            seen.put(_own_nice())
            return np.zeros((3, 2), np.float32)
    results, errors = queue.Queue(), queue.Queue()
    worker = InferenceWorker(
        NiceProbe(), decode=lambda msg: msg, preprocess=lambda bgr: bgr[np.newaxis],
        make_state=lambda values: np.zeros((1, 2), np.float32), on_chunk=results.put, on_error=errors.put,
        clock=lambda: 0.0, nice=5).start()
    try:
        worker.submit_frame(frame(1), 1.0, 1.0)
        assert seen.get(timeout=5) == min(19, base + 5)
        assert worker.nice_error is None
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # this thread: unchanged
    finally:
        worker.stop()


def test_call_niced_threads_started_inside_inherit_the_niceness():
    import os

    from rover_policy.inference_worker import call_niced
    base = os.getpriority(os.PRIO_PROCESS, 0)

    def start_a_pool():  # like ONNX Runtime creating its intra-op threads in the session constructor
        inside = queue.Queue()
        thread = threading.Thread(target=lambda: inside.put(_own_nice()))
        thread.start()
        thread.join()
        return _own_nice(), inside.get()
    assert call_niced(start_a_pool, 3) == (min(19, base + 3),) * 2
    assert call_niced(_own_nice, 0) == base
    assert os.getpriority(os.PRIO_PROCESS, 0) == base

    def broken():
        raise ValueError('no model')
    try:
        call_niced(broken, 3)
    except ValueError as exc:
        assert str(exc) == 'no model'
    else:
        raise AssertionError('the exception was not handed to the caller')

"""The inference thread: always the newest frame with the newest state, never the executor's time.

ROS callbacks only hand over references (`submit_frame`, `set_state`); decoding,
preprocessing and the model run here. Frames that arrive while the model runs
replace each other, so a slow backend works on the freshest view and skips the rest.

Inference keeps every core busy; with `nice` > 0 this thread (and, through
`call_niced`, ONNX Runtime's pool threads, which inherit the niceness of the
thread that creates the session) yields the CPU at once to the control thread,
the executor, DDS and the camera, whose few milliseconds are on the command path.
Linux keeps niceness per thread: the rest of the process is not affected.
"""
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from rover_common.latest_slot import LatestSlot


def lower_priority(increment: int) -> str | None:
    """Raise the calling thread's niceness by `increment`; None on success, else why not."""
    if increment <= 0:
        return None
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except (AttributeError, OSError) as exc:
        return f'cannot lower the inference priority: {exc}'
    return None


def call_niced(fn, increment: int):
    """fn() on a new thread niced by `increment`, so threads fn starts (ONNX Runtime's
    intra-op pool) inherit the niceness; the caller's own stays. Re-raises fn's exception."""
    outcome = {}

    def body():
        lower_priority(increment)
        try:
            outcome['value'] = fn()
        except BaseException as exc:  # handed to the caller
            outcome['error'] = exc
    thread = threading.Thread(target=body, name='niced-setup')
    thread.start()
    thread.join()
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']


@dataclass
class ChunkResult:
    actions: np.ndarray        # [chunk_size, action_dim]
    stamp: float               # capture stamp of the frame (s, ROS time)
    received: float            # when the frame message arrived (s, ROS time)
    started: float             # when this thread took the frame (s, ROS time)
    ready: float               # when the chunk was ready (s, ROS time)
    preprocess_s: float        # decode + resize + colour conversion
    model_s: float             # backend.infer (plus any injected delay)
    frames_skipped: int        # frames replaced by newer ones before inference took them


class InferenceWorker:
    def __init__(self, backend, decode, preprocess, make_state, on_chunk, on_error,
                 clock, inject_delay_s: float = 0.0, nice: int = 0):
        """`decode(msg) -> bgr`, `preprocess(bgr) -> image`, `make_state(values) -> [1, S]`,
        `on_chunk(ChunkResult)`, `on_error(exc)`, `clock() -> float` seconds (ROS time),
        `nice`: niceness added to the inference thread."""
        self._backend = backend
        self._decode = decode
        self._preprocess = preprocess
        self._make_state = make_state
        self._on_chunk = on_chunk
        self._on_error = on_error
        self._clock = clock
        self.inject_delay_s = float(inject_delay_s)
        self.nice = int(nice)
        self.nice_error = None
        self._frames = LatestSlot()   # (msg, stamp, received): only the newest is inferred
        self._state = None
        self._stop = False
        self.chunks = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name='inference', daemon=True)

    def start(self) -> 'InferenceWorker':
        self._thread.start()
        return self

    def submit_frame(self, msg, stamp: float, received: float) -> None:
        self._frames.put((msg, stamp, received))

    def set_state(self, values) -> None:
        self._state = values  # one reference swap: the newest state goes with the next frame

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._frames.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next_job(self):
        frame, replaced = self._frames.take()
        if self._stop or frame is None:
            return None
        return (*frame, self._state, replaced)

    def _run(self) -> None:
        self.nice_error = lower_priority(self.nice)
        while True:
            job = self._next_job()
            if job is None:
                return
            msg, stamp, received, state_values, skipped = job
            try:
                result = self.infer_once(msg, stamp, received, state_values, skipped)
                self.chunks += 1
                self._on_chunk(result)
            except Exception as exc:  # keep the thread alive; the node goes neutral and reports
                if self._stop:  # shutting down: the consumers are going away, nothing to report
                    return
                self.errors += 1
                self._on_error(exc)

    def infer_once(self, msg, stamp, received, state_values, skipped=0) -> ChunkResult:
        started = self._clock()
        start = time.perf_counter()
        image = self._preprocess(self._decode(msg))
        state = self._make_state(state_values)
        model_start = time.perf_counter()
        actions = self._backend.infer(image, state)
        if self.inject_delay_s > 0:  # test/bench knob: pretend the backend is this much slower
            time.sleep(self.inject_delay_s)
        end = time.perf_counter()
        return ChunkResult(actions=actions, stamp=stamp, received=received, started=started,
                           ready=self._clock(), preprocess_s=model_start - start, model_s=end - model_start,
                           frames_skipped=skipped)

"""Multi-process tests: frames -> policy node (own process) -> rover/cmd recorded here.

The expected actions are computed here with ONNX Runtime from the frames and
state we send, and every command is checked against them with the action index
fixed by the stamps (i = floor((tick stamp - frame stamp) * 30)).
"""
import math
import os
import time

import cv2
import numpy as np
import pytest
import rclpy

import hailo_fixtures as hf
from model_fixtures import reference_actions
from ros_harness import RATE, Harness, match_commands
from rover_common.process import NodeProcess, wait_for
from rover_common.ros_env import apply_localhost_env, localhost_env
from rover_policy.model_dir import load_model_dir
from rover_policy.preprocessing import ImagePreprocessor, prepare_state

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE_SRC = os.path.dirname(os.path.dirname(HERE))
SOURCES = [os.path.dirname(HERE), os.path.join(WORKSPACE_SRC, 'rover_common')]
CAMERA_SOURCE = os.path.join(WORKSPACE_SRC, 'rover_camera')  # sibling package, when run from the tree
STATE = (0.1, -0.2)
MAX_FRAME_AGE = 0.2


@pytest.fixture(scope='module')
def ros():
    domain = apply_localhost_env()
    rclpy.init()
    yield domain
    rclpy.shutdown()


@pytest.fixture
def harness(ros):
    h = Harness()
    yield h
    h.close()


def child_env(domain, extra_paths=(), **variables):
    env = localhost_env(domain_id=domain)
    env['PYTHONPATH'] = os.pathsep.join([*extra_paths, *SOURCES, env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env.update(variables)
    return env


def policy_process(model_dir, domain, env=None, module='rover_policy.policy_node', **params):
    values = dict(model_dir=model_dir, backend='cpu_int8', threads=1, max_frame_age=MAX_FRAME_AGE)
    values.update(params)
    return NodeProcess(module, 'policy', params=values, env=env or child_env(domain))


# the policy node with the test/bench parameters (inject_delay_ms, timing_log)
INSTRUMENTED = 'rover_policy.instrumented_node'


def random_frames(count=8, size=(96, 128), seed=0):
    """Frames with big blocks of colour (so every frame gives clearly different actions)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    return [cv2.resize(s, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) for s in small]


def expected_chunks(model_dir, frames, onnx_file='model_int8.onnx'):
    model = load_model_dir(model_dir)
    preprocess = ImagePreprocessor.for_model(model)
    state = prepare_state(STATE, model.state_dim)
    return [reference_actions(model_dir, preprocess(f), state, onnx_file) for f in frames]


def run_frames(harness, policy, frames, seconds):
    assert harness.wait_for_subscribers(), policy.output()
    assert wait_for(lambda: len(harness.cmds) > 5, 15), f'no commands from the policy:\n{policy.output()}'
    for _ in range(5):  # the state first, so the first chunk already uses it
        harness.publish_state(*STATE)
        time.sleep(0.02)
    time.sleep(0.2)
    harness.start_frames(frames, state=STATE)
    time.sleep(seconds)
    harness.stop_frames()


def intervals(stamps):
    return np.diff(np.array(stamps))


def check_rate(stamps, label):
    """~30 Hz. Loose bounds: this runs on shared CI machines; the benchmark measures timing."""
    gaps = intervals(stamps)
    rate = len(gaps) / (stamps[-1] - stamps[0])
    assert abs(rate - RATE) < 0.1 * RATE, f'{label}: {rate:.2f} Hz'
    assert gaps.max() < 5.0 / RATE, f'{label}: a gap of {gaps.max() * 1000:.1f} ms'


def driving_window(matches, start, end):
    return [m for m in matches if start <= m[0] <= end]


def check_chunk_sequence(window):
    """Chunks only get newer and within a chunk the index never goes back. (Each index is the
    one due at the tick's actual time, which match_commands checked; a late tick may repeat or
    jump an index, so steps of 0 or 2 are right when ticks jitter around due times.)"""
    for (t0, s0, i0, _), (t1, s1, i1, _) in zip(window, window[1:]):
        assert s1 >= s0, 'went back to an older chunk'
        if s1 == s0:
            assert i1 >= i0, (t0, i0, t1, i1)


def test_commands_follow_the_chunks_neutral_on_stale_frames_and_estop(tiny_model_dir, harness, ros):
    frames = random_frames()
    expected = expected_chunks(tiny_model_dir, frames)
    with policy_process(tiny_model_dir, ros) as policy:
        run_frames(harness, policy, frames, seconds=2.5)
        last_sent = harness.sent_frames[-1][0]
        time.sleep(0.6)
        cmds, sent = harness.snapshot()
        first_frame = sent[0][0]
        matches = match_commands(cmds, dict(sent), expected)

        # while frames flow (after the first inference), every command is the due action of a chunk
        window = driving_window(matches, first_frame + 0.3, last_sent)
        assert len(window) > 50
        unmatched = [m for m in window if m[1] is None]
        assert not unmatched, f'{len(unmatched)} commands match no chunk, first: {unmatched[:3]}'
        check_chunk_sequence(window)
        assert len({m[1] for m in window}) > 20  # the policy keeps up with new frames
        check_rate([m[0] for m in window], 'control rate while driving')

        # frames stop: neutral once the newest frame is older than max_frame_age, not before
        after = [m for m in matches if m[0] > last_sent]
        stale = [m for m in after if m[0] - last_sent > MAX_FRAME_AGE]
        fresh = [m for m in after if m[0] - last_sent < MAX_FRAME_AGE - 0.05]
        assert stale and all(m[3] for m in stale), 'non-neutral command after the frames went stale'
        assert stale[0][0] - last_sent <= MAX_FRAME_AGE + 1.0 / RATE + 0.01
        assert fresh and all(m[1] is not None for m in fresh)
        check_rate([m[0] for m in matches if m[0] > first_frame], 'control rate throughout')

        # policy/action_chunk carries the predicted chunks with a labelled layout
        assert harness.chunk_layouts[-1] == [('chunk', 20, 40), ('action', 2, 2)]
        published = harness.chunks[-10:]
        assert all(min(np.abs(c - e).max() for e in expected) < 2e-4 for c in published)

        assert wait_for(lambda: any(d[2]['neutral_reason'] == 'stale_frame' for d in harness.diagnostics), 3)
        level, message, values = [d for d in harness.diagnostics if d[2]['neutral_reason'] == 'stale_frame'][-1]
        assert level == b'\x01' and message == 'neutral: stale_frame'
        assert int(values['neutral_events']) >= 1 and values['backend'] == 'cpu_int8'
        assert float(values['inference_p50_ms']) > 0 and int(values['chunks']) > 20

        # e-stop engaged (the bridge's latched topic): neutral although frames are fresh,
        # and no chunk from before it is used; released: the policy predicts again
        harness.set_estop(True)
        harness.start_frames(frames, state=STATE)
        time.sleep(0.7)
        off_from = harness.now()
        time.sleep(0.5)
        harness.set_estop(False)
        on_from = harness.now()
        time.sleep(0.7)
        harness.stop_frames()
        cmds, _ = harness.snapshot()
        assert all(c[1] == 0.0 and c[2] == 0.0 for c in cmds if off_from <= c[0] <= off_from + 0.4)
        assert any(c[1] != 0.0 for c in cmds if c[0] > on_from + 0.2)
        assert any(d[2]['neutral_reason'] == 'estop' for d in harness.diagnostics)
        assert policy.alive()
    assert policy.proc.returncode == 0, policy.output()


def test_stop_signals_end_with_a_neutral_command_and_no_errors(tiny_model_dir, harness, ros):
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) while driving: threads stop first, then
    one neutral goes out while the context is still valid; no RCLError noise."""
    import signal
    frames = random_frames()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with harness._lock:
            harness.cmds.clear()
        policy = policy_process(tiny_model_dir, ros).start()
        try:
            harness.start_frames(frames, state=STATE)
            assert wait_for(lambda: any(c[1] != 0.0 for c in harness.snapshot()[0]), 30), policy.output()
            time.sleep(0.3)
            policy.proc.send_signal(sig)
            assert policy.proc.wait(timeout=10) == 0, policy.output()
            time.sleep(0.3)
        finally:
            harness.stop_frames()
            policy.stop()
        cmds, _ = harness.snapshot()
        output = policy.output()
        assert (cmds[-1][1], cmds[-1][2]) == (0.0, 0.0), (sig, cmds[-3:])
        assert any(c[1] != 0.0 for c in cmds[:-1])      # it was driving until the signal
        for noise in ('Traceback', 'RCLError', 'context is invalid', 'inference failed'):
            assert noise not in output, (sig, output)


def test_slow_backend_keeps_30hz_and_skips_the_past_actions(tiny_model_dir, harness, ros):
    delay = 0.1  # > 3 control periods
    frames = random_frames(seed=1)
    expected = expected_chunks(tiny_model_dir, frames)
    with policy_process(tiny_model_dir, ros, module=INSTRUMENTED, inject_delay_ms=int(delay * 1000)) as policy:
        run_frames(harness, policy, frames, seconds=3.0)
        cmds, sent = harness.snapshot()
    matches = match_commands(cmds, dict(sent), expected)
    window = driving_window(matches, sent[0][0] + 0.5, sent[-1][0])
    assert window and not [m for m in window if m[1] is None]
    check_rate([m[0] for m in window], 'control rate with a slow backend')
    check_chunk_sequence(window)
    # the first action used from each new chunk is the one due at that tick
    firsts = [m[2] for prev, m in zip(window, window[1:]) if m[1] != prev[1]]
    assert len(firsts) > 15
    skipped_by_delay = math.floor(delay * RATE)
    assert min(firsts) >= skipped_by_delay, firsts
    assert max(firsts) <= skipped_by_delay + 5, firsts  # delay + model + transport + a (late) tick
    assert np.median(firsts) <= skipped_by_delay + 2, firsts


def test_camera_node_video_to_policy(tiny_model_dir, harness, ros, tmp_path):
    import importlib.util
    if importlib.util.find_spec('rover_camera') is None and not os.path.isdir(CAMERA_SOURCE):
        pytest.skip('rover_camera is not available')
    frames = random_frames(count=30, size=(72, 96), seed=2)
    video = str(tmp_path / 'road.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 30.0, (96, 72))
    for f in frames:
        writer.write(f)
    writer.release()
    harness.listen_to_camera()
    for _ in range(5):
        harness.publish_state(*STATE)
    camera = NodeProcess('rover_camera.camera_node', 'camera', env=child_env(ros, extra_paths=[CAMERA_SOURCE]),
                         params=dict(source=f'file:{video}', width=96, height=72, fps=30.0,
                                     publish_compressed=False))
    with policy_process(tiny_model_dir, ros) as policy, camera:
        assert wait_for(lambda: len(harness.camera_frames) > 5, 20), camera.output()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not any(c[1] != 0.0 for c in harness.cmds):
            harness.publish_state(*STATE)  # until the policy drives
            time.sleep(1 / RATE)
        assert any(c[1] != 0.0 for c in harness.cmds), policy.output()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            harness.publish_state(*STATE)
            time.sleep(1 / RATE)
        cmds, _ = harness.snapshot()
        received = list(harness.camera_frames)
        assert policy.alive() and camera.alive(), policy.output() + camera.output()
    # both ran until stopped and then shut down cleanly on SIGINT
    assert (policy.proc.returncode, camera.proc.returncode) == (0, 0), policy.output() + camera.output()
    model = load_model_dir(tiny_model_dir)
    preprocess = ImagePreprocessor.for_model(model)
    state = prepare_state(STATE, model.state_dim)
    expected = {s: reference_actions(tiny_model_dir, preprocess(f), state, 'model_int8.onnx') for s, f in received}
    matches = match_commands(cmds, {s: s for s in expected}, expected)
    first_match = next(m[0] for m in matches if m[1] is not None)  # once the policy has the state
    window = driving_window(matches, first_match, received[-1][0])
    matched = [m for m in window if m[1] is not None]
    assert len(window) > 50 and len(matched) >= 0.9 * len(window), (len(matched), len(window))
    check_chunk_sequence(matched)
    check_rate([m[0] for m in window], 'control rate from the camera node')


def test_hailo_hybrid_node_drives_like_cpu_fp32(model_copy, harness, ros):
    model = load_model_dir(model_copy)
    hf.make_backbone_hef(model, os.path.join(model_copy, 'model.hef'))
    hf.add_hef_to_manifest(model_copy, 'model.hef')
    frames = random_frames(seed=3)
    expected = expected_chunks(model_copy, frames, 'model_fp32.onnx')
    env = child_env(ros, extra_paths=[hf.FAKE_HAILO_PATH])
    with policy_process(model_copy, ros, env=env, backend='hailo') as policy:
        run_frames(harness, policy, frames, seconds=1.5)
        cmds, sent = harness.snapshot()
        assert 'hailo_mode=hybrid' in policy.output()
    window = driving_window(match_commands(cmds, dict(sent), expected), sent[0][0] + 0.3, sent[-1][0])
    assert len(window) > 25 and all(m[1] is not None for m in window)


def _break_checksum(model_dir):
    with open(os.path.join(model_dir, 'model_int8.onnx'), 'ab') as f:
        f.write(b'\0')


@pytest.mark.parametrize('case, message', [
    ('missing_dir', 'model directory not found'),
    ('checksum', 'checksum mismatch for .*model_int8.onnx: manifest says sha256 [0-9a-f]{64}, the file has [0-9a-f]{64}'),
    ('hailo_no_device', 'no Hailo device available'),
    ('hailo_not_installed', 'needs the hailo_platform module.*version of the hailo_pci driver'),
    ('bad_backend', "backend='tpu' is not one of cpu_int8, cpu_fp32, hailo"),
    ('too_many_steps', 'n_action_steps'),
    ('frame_age_range', r'max_frame_age=50 is out of range \[0.01, 10\]'),
])
def test_start_errors_exit_2_with_one_clear_line(model_copy, ros, case, message):
    import re
    params = {}
    env = None
    model_dir = model_copy
    if case == 'missing_dir':
        model_dir = os.path.join(model_copy, 'nope')
    elif case == 'checksum':
        _break_checksum(model_copy)
    elif case.startswith('hailo'):
        hf.make_backbone_hef(load_model_dir(model_copy), os.path.join(model_copy, 'model.hef'))
        hf.add_hef_to_manifest(model_copy, 'model.hef')
        params['backend'] = 'hailo'
        if case == 'hailo_no_device':
            env = child_env(ros, extra_paths=[hf.FAKE_HAILO_PATH], FAKE_HAILO_NO_DEVICE='1')
    elif case == 'bad_backend':
        params['backend'] = 'tpu'
    elif case == 'too_many_steps':
        params['n_action_steps'] = 21  # the chunk has 20
    elif case == 'frame_age_range':
        params['max_frame_age'] = 50  # an int in YAML is accepted as a number, then range-checked
    process = policy_process(model_dir, ros, env=env, **params).start()
    try:
        code = process.wait_exit(30)
    finally:
        process.stop()
    output = process.output()
    assert code == 2, output
    assert re.search(message, output), output
    assert 'Traceback' not in output


def test_runtime_parameters_are_validated(tiny_model_dir, harness, ros):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(harness.node, 'policy')
    # YAML ints for float parameters are accepted at start (control_rate_hz: 30)
    with policy_process(tiny_model_dir, ros, control_rate_hz=30) as policy:
        assert client.wait_for_services(15.0), policy.output()

        def set_one(name, value):
            future = client.set_parameters([Parameter(name, value=value)])
            assert wait_for(future.done, 10)
            return future.result().results[0]
        assert not set_one('max_frame_age', 50.0).successful
        assert not set_one('max_frame_age', 'soon').successful
        assert set_one('max_frame_age', 1).successful       # an int is a number
        assert not set_one('model_dir', '/elsewhere').successful  # read-only at run time
        # neutral is (0, 0), not a setting: `ros2 param set /policy neutral_throttle 0.3` once drove the car
        assert not set_one('neutral_throttle', 0.3).successful
        assert not set_one('neutral_steering', 0.3).successful
        # the test/bench knobs are not on the production node (rover_policy.instrumented_node has them)
        assert not set_one('inject_delay_ms', 100).successful
        assert set_one('max_frame_age', 0.5).successful
        assert wait_for(lambda: any(d[2]['estop'] == 'False' for d in harness.diagnostics), 5)
        assert policy.alive()

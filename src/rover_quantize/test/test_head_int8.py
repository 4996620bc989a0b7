"""--hailo-head-int8: head_int8.onnx for the Hailo hybrid's CPU part, quantized and validated like the model."""
import json
import shutil

import numpy as np
import onnx
import pytest

from rover_common.model_contract import HEAD_INT8, HEAD_INT8_FILE, sha256_of
from rover_quantize import pipeline
from rover_quantize.cli import build_parser
from rover_quantize.modes import BAR_MAX, BAR_MSE
from rover_quantize.quantize import make_session


def _quantize(model_dir, built, **kw):
    # force: the whole model may miss the bar on so few frames; the head's own bar is what is tested
    return pipeline.quantize_model_dir(model_dir, bags=[built.bag], calibration_frames=16, validation_frames=8,
                                       report=False, progress=False, ck=built.loaded, force=True, **kw)


@pytest.fixture(scope='module')
def with_head(built, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp('head') / 'md'
    shutil.copytree(built.model_dir, model_dir)
    return model_dir, _quantize(model_dir, built, head_int8=True)


def test_head_int8_is_written_validated_and_hashed(with_head, built):
    model_dir, manifest = with_head
    assert manifest == json.loads((model_dir / 'manifest.json').read_text())
    head = manifest['quantization']['head_int8']
    assert head['written'] is True and head['passed'] is True, head
    assert manifest['models'][HEAD_INT8] == HEAD_INT8_FILE
    assert manifest['files'][HEAD_INT8_FILE]['sha256'] == sha256_of(model_dir / HEAD_INT8_FILE)
    assert head['frames'] == 8 and head['mse'] < BAR_MSE and head['max_abs_error'] < BAR_MAX
    assert 0.5 <= head['int8_mac_fraction'] <= 1.0
    assert head['latency_ms_p50']['ort_fp32'] > 0 and head['latency_ms_p50']['ort_int8'] > 0
    ops = {n.op_type for n in onnx.load(str(model_dir / HEAD_INT8_FILE)).graph.node}
    assert 'QuantizeLinear' in ops
    # same inputs and outputs as head.onnx, so the hailo backend can swap one for the other
    fp32, int8 = make_session(model_dir / 'head.onnx'), make_session(model_dir / HEAD_INT8_FILE)
    spec = (lambda s: [(i.name, i.shape) for i in s.get_inputs()] + [(o.name, o.shape) for o in s.get_outputs()])
    assert spec(fp32) == spec(int8)


def test_head_feeds_are_backbone_features(with_head):
    """head.onnx on head_feeds == the whole FP32 model on the frames: the features plumbing is right,
    and the INT8 head stays close on frames it was not calibrated on."""
    from rover_quantize.calibration import synthetic_frames, synthetic_states
    model_dir, manifest = with_head
    h, w = manifest['inputs'][0]['shape'][1:3]
    feeds = pipeline.feeds_for(manifest, synthetic_frames(3, h, w, seed=123), synthetic_states(3, 2, seed=123))
    heads = pipeline.head_feeds(model_dir, feeds)
    assert set(heads[0]) == {'features', 'state'} and heads[0]['features'].shape == tuple(manifest['features']['shape'])
    np.testing.assert_array_equal(heads[0]['state'], feeds[0]['state'])
    whole = make_session(model_dir / 'model_fp32.onnx')
    fp32, int8 = make_session(model_dir / 'head.onnx'), make_session(model_dir / HEAD_INT8_FILE)
    scale = np.asarray(manifest['action_normalization']['scale'])
    for feed, head_feed in zip(feeds, heads):
        want = whole.run(['actions'], feed)[0]
        got = fp32.run(['actions'], head_feed)[0]
        np.testing.assert_allclose(got / scale, want / scale, atol=1e-3)
        assert np.abs(int8.run(['actions'], head_feed)[0] - got).max() / scale.min() < 2 * BAR_MAX


def test_requantizing_without_the_flag_drops_the_head(with_head, built, tmp_path):
    model_dir = tmp_path / 'md'
    shutil.copytree(with_head[0], model_dir)
    manifest = _quantize(model_dir, built, search=False)
    assert HEAD_INT8 not in manifest['models'] and HEAD_INT8_FILE not in manifest['files']
    assert not (model_dir / HEAD_INT8_FILE).exists() and 'head_int8' not in manifest['quantization']


def test_a_head_missing_the_bar_is_a_note_not_an_error(built, tmp_path, monkeypatch):
    real = pipeline.validate

    def validate(fp32_path, int8_path, feeds, action_scale, **kw):
        run = real(fp32_path, int8_path, feeds, action_scale, **kw)
        if fp32_path.name == 'head.onnx':  # the head only: the whole model passes as it is
            run.metrics.update(passed=False, mse=5 * BAR_MSE)
        return run

    monkeypatch.setattr(pipeline, 'validate', validate)
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    manifest = _quantize(model_dir, built, search=False, head_int8=True)
    head = manifest['quantization']['head_int8']
    assert head['written'] is False and 'missed the accuracy bar' in head['problems'][0]
    assert HEAD_INT8 not in manifest['models'] and not (model_dir / HEAD_INT8_FILE).exists()
    assert any(n.startswith('head_int8.onnx (--hailo-head-int8) was not written: missed') for n in manifest['notes'])
    assert 'cpu_int8' in manifest['models']  # the whole model is unaffected


def test_cli_flag():
    parser = build_parser()
    for command in (['build', 'ckpt', '-o', 'out'], ['quantize', 'md']):
        assert parser.parse_args(command).hailo_head_int8 is False
        assert parser.parse_args(command + ['--hailo-head-int8']).hailo_head_int8 is True


def test_bench_line():
    from rover_quantize.bench import format_hailo_head_line
    line = format_hailo_head_line({'fp32_ms': 20.0, 'int8_ms': 8.0, 'speedup': 2.5, 'int8_mac_fraction': 0.93,
                                   'mse': 2e-4, 'max_error': 0.02, 'passed': True, 'threads': 2, 'rounds': 30,
                                   'fp32_groups': ['action_head'], 'build_s': 21.0})
    assert line.startswith('bench hailo_head: fp32_ms=20.00 int8_ms=8.00 speedup=2.50 int8_mac_percent=93.0 '
                           'mse=2.00e-04 max_error=0.020 passed=True ')

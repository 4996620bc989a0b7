"""bench roofline's bookkeeping on tiny models: multiply-add counting and ORT profile parsing
(not timings, which depend on the machine)."""
import json

import numpy as np
import pytest

from rover_quantize import roofline
from rover_quantize.bench import count_macs

# 16 channels: ORT's NCHWc convs pad channels to their block (8 or 16) and the profile shows
# the padded work, so a multiple of 16 keeps the count exact
SHAPES = dict(m=16, k=32, n=24, channels=16, height=6, width=10)
MM_MACS = 16 * 32 * 24
CONV_MACS = 6 * 10 * 16 * 16 * 9


@pytest.fixture(scope='module')
def kernels():
    return roofline.kernel_models(**SHAPES)


def test_kernel_models_declare_their_multiply_adds(kernels, tmp_path):
    # the bench's own counter (shape inference on the graph) agrees with the analytic count
    for name, (model, _, macs, precision) in kernels.items():
        assert macs == (CONV_MACS if 'conv' in name else MM_MACS), name
        assert precision == ('fp32' if name.startswith('fp32') else 'int8')
    for name in ('fp32_matmul', 'fp32_conv'):
        path = tmp_path / f'{name}.onnx'
        path.write_bytes(kernels[name][0])
        assert count_macs(path) == kernels[name][2]


def test_node_macs():
    assert roofline.node_macs('Conv', [[1, 4, 8, 8]], [[1, 6, 8, 8]], [6, 2, 3, 3]) == 6 * 64 * 2 * 9
    assert roofline.node_macs('QLinearConv', [], [[1, 8, 8, 6]], [6, 4, 1, 1]) == 6 * 64 * 4
    assert roofline.node_macs('Conv', [[1, 4, 8, 8]], [[1, 6, 8, 8]], None) == 0  # weight unknown
    assert roofline.node_macs('QLinearMatMul', [[3, 5, 7]], [[3, 5, 2]]) == 3 * 5 * 2 * 7
    assert roofline.node_macs('Relu', [[3, 5]], [[3, 5]]) == 0


@pytest.mark.parametrize('name', ['fp32_matmul', 'int8_qdq_matmul', 'int8_matmulinteger', 'fp32_conv',
                                  'int8_qdq_conv'])
def test_profile_of_a_real_session_counts_every_multiply_add_once(kernels, tmp_path, name):
    model, feeds, macs, precision = kernels[name]
    profile = roofline.profile_model(model, 1, feeds, runs=3, work=str(tmp_path))
    assert profile['runs'] == 3
    summary = roofline.summarize_profile(profile)
    other = 'fp32' if precision == 'int8' else 'int8'
    assert summary[f'{precision}_macs'] == pytest.approx(macs)
    assert summary[f'{other}_macs'] == 0
    assert summary['kernel_ms'] > 0
    # the QDQ graphs are fused: no Quantize/Dequantize left to run
    assert summary['qdq_ms'] == 0
    if name == 'int8_qdq_conv':
        assert 'QLinearConv' in profile['ops']


def _event(name, op, ts, dur, inputs=(), outputs=()):
    return {'cat': 'Node', 'name': f'{name}_kernel_time', 'ts': ts, 'dur': dur,
            'args': {'op_name': op, 'input_type_shape': [{'float': list(s)} for s in inputs],
                     'output_type_shape': [{'float': list(s)} for s in outputs]}}


def test_parse_profile_drops_the_first_run_and_averages(tmp_path):
    events = []
    for run, start in enumerate((0, 10_000, 20_000)):
        slow = 5 if run == 0 else 1  # the first run pre-packs: much slower, must not count
        events.append({'cat': 'Session', 'name': 'model_run', 'ts': start, 'dur': 9_000})
        events.append(_event('mm', 'MatMul', start + 10, 2_000 * slow, [(4, 8)], [(4, 3)]))
        events.append(_event('q', 'QuantizeLinear', start + 3_000, 500 * slow, [(4, 3)], [(4, 3)]))
        events.append(_event('c', 'QLinearConv', start + 4_000, 3_000 * slow, [(1, 4, 4, 2)], [(1, 4, 4, 6)]))
        events.append({'cat': 'Node', 'name': 'mm_fence_before', 'ts': start + 5, 'dur': 77,
                       'args': {'op_name': 'MatMul'}})
    path = tmp_path / 'profile.json'
    path.write_text(json.dumps(events))
    profile = roofline.parse_profile(path, {'c': [6, 2, 3, 3]}, skip_runs=1)
    assert profile['runs'] == 2 and profile['run_ms'] == pytest.approx(9.0)
    ops = profile['ops']
    assert ops['MatMul'] == pytest.approx({'ms': 2.0, 'macs': 4 * 3 * 8, 'nodes': 1})
    assert ops['QLinearConv'] == pytest.approx({'ms': 3.0, 'macs': 16 * 6 * 18, 'nodes': 1})
    summary = roofline.summarize_profile(profile)
    assert summary['qdq_ms'] == pytest.approx(0.5)
    assert summary['int8_ms'] == pytest.approx(3.0) and summary['fp32_ms'] == pytest.approx(2.0)
    assert summary['other_ms'] == pytest.approx(0.0)


def test_peak_is_the_fastest_kernel_of_a_precision():
    kernels = {'a': {'gmacs_p90': 3.0, 'gmacs': 1.0, 'precision': 'fp32'},
               'b': {'gmacs_p90': 9.0, 'gmacs': 2.0, 'precision': 'int8'},
               'c': {'gmacs_p90': 7.0, 'gmacs': 5.0, 'precision': 'int8'},
               'd': {'gmacs_p90': 4.0, 'gmacs': 0.5, 'precision': 'fp32'}}
    assert roofline.peak_of(kernels, 'int8') == ('b', 9.0)
    assert roofline.peak_of(kernels, 'fp32') == ('d', 4.0)
    assert roofline.peak_of(kernels, 'int8', key='gmacs') == ('c', 5.0)


def test_model_feeds_follow_the_declared_inputs(kernels, tmp_path):
    path = tmp_path / 'm.onnx'
    path.write_bytes(kernels['int8_qdq_conv'][0])
    feeds = roofline.model_feeds(path)
    assert list(feeds) == ['x'] and feeds['x'].dtype == np.uint8 and feeds['x'].shape == (1, 16, 6, 10)

"""The saturation guard: which weights get 7 bits, and that the integer kernels then compute what
the QDQ graph says (x86 AVX2's VPMADDUBSW saturates 8-bit weight pairs on high uint8 inputs)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rover_quantize.calibration import calibrate_ranges
from rover_quantize.quantize import QuantSettings, _static, saturation_guard_weights

K, N = 64, 16


def _model(path):
    """x (signed) -> LayerNorm -> Gemm `signed` -> Relu -> Gemm `unsigned` -> y.
    Weights all positive and large, so uint8 inputs near 255 push int16 pair sums past 32767."""
    rng = np.random.default_rng(0)
    w1 = rng.uniform(0.5, 1.0, (K, N)).astype(np.float32)
    w2 = rng.uniform(0.5, 1.0, (N, N)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, 'w_signed'), numpy_helper.from_array(np.zeros(N, np.float32), 'b_signed'),
             numpy_helper.from_array(w2, 'w_unsigned'), numpy_helper.from_array(np.zeros(N, np.float32), 'b_unsigned'),
             numpy_helper.from_array(np.ones(K, np.float32), 'ln_g'), numpy_helper.from_array(np.zeros(K, np.float32), 'ln_b')]
    nodes = [helper.make_node('LayerNormalization', ['x', 'ln_g', 'ln_b'], ['ln'], name='ln', axis=-1),
             helper.make_node('Gemm', ['ln', 'w_signed', 'b_signed'], ['h'], name='signed'),
             helper.make_node('Relu', ['h'], ['r'], name='relu'),
             helper.make_node('Gemm', ['r', 'w_unsigned', 'b_unsigned'], ['y'], name='unsigned')]
    graph = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [8, K])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [8, N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feeds(n, seed):
    rng = np.random.default_rng(seed)
    return [{'x': rng.normal(0, 1, (8, K)).astype(np.float32)} for _ in range(n)]


def _saturating_input():
    # half the features far above the mean: after LayerNorm they sit at the top of the calibrated
    # range (uint8 codes near 255) where the positive weights meet them
    x = np.zeros((8, K), np.float32)
    x[:, : K // 2] = 1.0
    return {'x': x}


def _session(path, optimized):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('sat')
    model = _model(tmp / 'fp32.onnx')
    cache = tmp / 'calibration.json'
    calibrate_ranges(model, _feeds(16, 1), cache, 'MinMax', progress=False, op_types=['Gemm', 'Relu'])
    return tmp, model, cache


def test_guard_picks_signed_and_high_inputs_only(calibrated):
    _, model, cache = calibrated
    assert saturation_guard_weights(model, cache) == ['w_signed']
    # a tensor named as always-high (raw pixels) is guarded whatever its range
    assert saturation_guard_weights(model, cache, {'r'}) == ['w_signed', 'w_unsigned']


def _integer_weights(path, name):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = next(n for n in model.graph.node if n.op_type == 'DequantizeLinear' and n.output[0].startswith(name))
    return inits[dq.input[0]].astype(np.int32)


def _quantize(calibrated, guard):
    tmp, model, cache = calibrated
    out = tmp / f'int8_guard{int(guard)}.onnx'
    _static(model, out, QuantSettings(saturation_guard=guard, calibration_method='MinMax', op_types=['Gemm', 'Relu']), cache,
            ['signed', 'relu', 'unsigned'])
    return out


def test_guarded_weights_have_7_bits(calibrated):
    guarded, plain = _quantize(calibrated, True), _quantize(calibrated, False)
    assert np.abs(_integer_weights(guarded, 'w_signed')).max() <= 64
    assert np.abs(_integer_weights(guarded, 'w_unsigned')).max() == 127  # post-ReLU input: 8 bits kept
    assert np.abs(_integer_weights(plain, 'w_signed')).max() == 127


def test_integer_kernels_match_the_qdq_graph_with_the_guard(calibrated):
    """With the guard, ORT's integer kernels compute the QDQ graph's arithmetic (up to rounding
    of the output requantization) on an input made to saturate 8-bit weight pairs."""
    feed = _saturating_input()
    path = _quantize(calibrated, True)
    exact = _session(path, optimized=False).run(['y'], feed)[0]   # QDQ in float: no saturation
    kernel = _session(path, optimized=True).run(['y'], feed)[0]
    assert np.abs(kernel - exact).max() <= 0.02 * np.abs(exact).max()


def _saturating_cpu():
    flags = set(open('/proc/cpuinfo').read().split()) if __import__('os').path.exists('/proc/cpuinfo') else set()
    return 'avx2' in flags and not flags & {'avx512_vnni', 'avx_vnni', 'avx_vnni_int8'}


@pytest.mark.skipif(not _saturating_cpu(), reason='only x86 CPUs with AVX2 and no VNNI saturate u8s8 pair sums')
def test_without_the_guard_this_cpu_saturates(calibrated):
    # the reason the guard exists: the same check fails on this CPU with 8-bit weights
    feed = _saturating_input()
    path = _quantize(calibrated, False)
    exact = _session(path, optimized=False).run(['y'], feed)[0]
    kernel = _session(path, optimized=True).run(['y'], feed)[0]
    assert np.abs(kernel - exact).max() > 0.05 * np.abs(exact).max()

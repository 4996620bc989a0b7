"""bench roofline: this machine's INT8 and FP32 GEMM/conv throughput in ONNX Runtime, and how
close the default ACT model's INT8 and FP32 ONNX models get to it.

    python -m rover_quantize.roofline [--model-dir DIR] [--threads 1,2] [--rounds 15]

1. Peak: single-op ONNX models on large shapes (a 512x1024 @ 1024x1024 GEMM and a 3x3
   128->128 conv on a 46x80 map, like the backbone's layer2/3), timed interleaved round by
   round with 1 and 2 intra-op threads: FP32 MatMul and Conv, INT8 MatMulInteger (u8 x s8),
   QLinearMatMul, QDQ MatMul and QDQ Conv (per-channel s8 weights, u8 activations, as our
   INT8 models are written; ORT fuses them into QLinearMatMul / QLinearConv). The peak of a
   precision is its fastest kernel at its 90th percentile throughput (the machine is shared:
   the best rounds say what the cores do; p10 and p50 are printed beside it).
2. The model: multiply-adds (rover_quantize.bench.count_macs) / latency (10th percentile,
   like for like; p50 and max beside it) / peak, for model_int8.onnx (vs the INT8 peak) and
   model_fp32.onnx (vs the FP32 peak), same threads.
3. Where the rest goes: ORT's profiler (SessionOptions.enable_profiling) on the INT8 model
   with the most threads: ms per op type, MACs in INT8 and FP32 ops (from the shapes the
   profiler records), and the ms spent in QuantizeLinear/DequantizeLinear.

Prints one line: `bench roofline: key=value ...` (gmacs = 1e9 multiply-adds per second).
Without --model-dir the default model (random LeRobot-layout ACT, seed 0, as in
`bench quantize`) is built once into --cache-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

OPSET = 17
# ops whose multiply-adds run on 8-bit integers
INT8_COMPUTE_OPS = {'QLinearConv', 'QLinearMatMul', 'MatMulInteger', 'ConvInteger', 'MatMulIntegerToFloat',
                    'DynamicQuantizeMatMul', 'QGemm', 'NhwcQLinearConv'}
FP32_COMPUTE_OPS = {'Conv', 'FusedConv', 'NchwcConv', 'MatMul', 'FusedMatMul', 'Gemm', 'FusedGemm'}
QDQ_OPS = {'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear'}
# where the weight is among the inputs of a conv-like op (its shape is [M, C/group, kh, kw])
_CONV_WEIGHT_INDEX = {'Conv': 1, 'FusedConv': 1, 'NchwcConv': 1, 'ConvInteger': 1,
                      'QLinearConv': 3, 'NhwcQLinearConv': 3}


# ---------------------------------------------------------------- peak kernels
def _model(nodes, inputs, outputs, initializers):
    import onnx
    from onnx import helper
    graph = helper.make_graph(nodes, 'kernel', inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def kernel_models(m: int = 512, k: int = 1024, n: int = 1024, channels: int = 128,
                  height: int = 46, width: int = 80) -> dict:
    """name -> (serialized ONNX model, feeds, multiply-adds, precision)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    T = TensorProto

    def vi(name, dtype, shape):
        return helper.make_tensor_value_info(name, dtype, shape)

    def init(name, array):
        return numpy_helper.from_array(np.asarray(array), name)

    a_f = rng.standard_normal((m, k), dtype=np.float32)
    a_u8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w_f = rng.standard_normal((k, n), dtype=np.float32) * 0.05
    w_s8 = rng.integers(-127, 128, (k, n), dtype=np.int8)
    x_f = rng.standard_normal((1, channels, height, width), dtype=np.float32)
    x_u8 = rng.integers(0, 256, (1, channels, height, width), dtype=np.uint8)
    cw_f = rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * 0.05
    cw_s8 = rng.integers(-127, 128, (channels, channels, 3, 3), dtype=np.int8)
    mm_macs = float(m * k * n)
    conv_macs = float(height * width * channels * channels * 9)
    scale = np.float32(0.02)
    u8_zp = np.uint8(128)
    s8_zp = np.int8(0)
    quant_consts = [init('a_scale', scale), init('a_zp', u8_zp), init('y_scale', np.float32(0.5)),
                    init('y_zp', u8_zp)]
    conv_out = [1, channels, height, width]

    models = {}
    models['fp32_matmul'] = (_model(
        [helper.make_node('MatMul', ['a', 'w'], ['y'])],
        [vi('a', T.FLOAT, [m, k])], [vi('y', T.FLOAT, [m, n])], [init('w', w_f)]),
        {'a': a_f}, mm_macs, 'fp32')
    models['int8_matmulinteger'] = (_model(
        [helper.make_node('MatMulInteger', ['a', 'w', 'a_zp', 'w_zp'], ['y'])],
        [vi('a', T.UINT8, [m, k])], [vi('y', T.INT32, [m, n])],
        [init('w', w_s8), init('a_zp', u8_zp), init('w_zp', s8_zp)]),
        {'a': a_u8}, mm_macs, 'int8')
    models['int8_qlinearmatmul'] = (_model(
        [helper.make_node('QLinearMatMul', ['a', 'a_scale', 'a_zp', 'w', 'w_scale', 'w_zp', 'y_scale', 'y_zp'],
                          ['y'])],
        [vi('a', T.UINT8, [m, k])], [vi('y', T.UINT8, [m, n])],
        quant_consts + [init('w', w_s8), init('w_scale', scale), init('w_zp', s8_zp)]),
        {'a': a_u8}, mm_macs, 'int8')
    # QDQ as our INT8 models are written: per-channel weights, ORT fuses DQ -> op -> Q
    models['int8_qdq_matmul'] = (_model(
        [helper.make_node('DequantizeLinear', ['a', 'a_scale', 'a_zp'], ['a_dq']),
         helper.make_node('DequantizeLinear', ['w', 'w_scale', 'w_zps'], ['w_dq'], axis=1),
         helper.make_node('MatMul', ['a_dq', 'w_dq'], ['y_f']),
         helper.make_node('QuantizeLinear', ['y_f', 'y_scale', 'y_zp'], ['y'])],
        [vi('a', T.UINT8, [m, k])], [vi('y', T.UINT8, [m, n])],
        quant_consts + [init('w', w_s8), init('w_scale', np.full(n, scale, np.float32)),
                        init('w_zps', np.zeros(n, np.int8))]),
        {'a': a_u8}, mm_macs, 'int8')
    models['fp32_conv'] = (_model(
        [helper.make_node('Conv', ['x', 'w'], ['y'], pads=[1, 1, 1, 1])],
        [vi('x', T.FLOAT, conv_out)], [vi('y', T.FLOAT, conv_out)], [init('w', cw_f)]),
        {'x': x_f}, conv_macs, 'fp32')
    models['int8_qdq_conv'] = (_model(
        [helper.make_node('DequantizeLinear', ['x', 'a_scale', 'a_zp'], ['x_dq']),
         helper.make_node('DequantizeLinear', ['w', 'w_scale', 'w_zps'], ['w_dq'], axis=0),
         helper.make_node('Conv', ['x_dq', 'w_dq'], ['y_f'], pads=[1, 1, 1, 1]),
         helper.make_node('QuantizeLinear', ['y_f', 'y_scale', 'y_zp'], ['y'])],
        [vi('x', T.UINT8, conv_out)], [vi('y', T.UINT8, conv_out)],
        quant_consts + [init('w', cw_s8), init('w_scale', np.full(channels, scale, np.float32)),
                        init('w_zps', np.zeros(channels, np.int8))]),
        {'x': x_u8}, conv_macs, 'int8')
    return models


def make_session(model, threads: int, profile_prefix: str | None = None, optimized_path: str | None = None):
    """An ORT CPU session with the policy node's options (rover_common.ort_options: no spinning
    workers, which would slow the kernel timed next), optionally with ORT's profiler on and the
    optimized graph saved."""
    import onnxruntime as ort

    from rover_common.ort_options import node_session_options
    options = node_session_options(threads)
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    source = model if isinstance(model, (bytes, bytearray)) else str(model)
    return ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])


def time_interleaved(runners: dict, rounds: int, warmup: int = 2, rerun: bool = False) -> dict:
    """name -> list of ms; the runners alternate round by round so they share the load. With
    `rerun`, each timed run follows an untimed one of the same runner, so a model whose weights
    fit in cache is timed with them there, as the node runs it (back to back)."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runners}
    for r in range(rounds):
        for name in (list(runners) if r % 2 == 0 else list(reversed(runners))):
            if rerun:
                runners[name]()
            t0 = time.perf_counter()
            runners[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _runner(session, feeds):
    return lambda: session.run(None, feeds)


def measure_peaks(threads_list, rounds: int, **shapes) -> dict:
    """{threads: {kernel: gmacs (median)}} plus each kernel's spread (p10..p90 GMAC/s)."""
    models = kernel_models(**shapes)
    result = {}
    for threads in threads_list:
        runners = {name: _runner(make_session(model, threads), feeds)
                   for name, (model, feeds, _, _) in models.items()}
        times = time_interleaved(runners, rounds)
        result[threads] = {name: {'gmacs': models[name][2] / np.median(ts) / 1e6,
                                  'gmacs_p10': models[name][2] / np.percentile(ts, 90) / 1e6,
                                  'gmacs_p90': models[name][2] / np.percentile(ts, 10) / 1e6,
                                  'precision': models[name][3]}
                           for name, ts in times.items()}
    return result


def peak_of(kernels: dict, precision: str, key: str = 'gmacs_p90') -> tuple[str, float]:
    """(kernel, GMAC/s) of the fastest kernel of a precision. By default its 90th percentile
    throughput: on a shared machine the median mixes in other processes' load, the best
    rounds say what the cores can do."""
    name = max((k for k, v in kernels.items() if v['precision'] == precision), key=lambda k: kernels[k][key])
    return name, kernels[name][key]


# ---------------------------------------------------------------- profile
def node_macs(op: str, input_shapes: list, output_shapes: list, weight_shape: list | None = None) -> float:
    """Multiply-adds of one executed node from the shapes ORT's profiler records (0 if not a
    conv/GEMM). Conv-like: output elements x (C/group x kh x kw) of the weight; GEMM-like:
    output elements x the inner dimension of the first input. ORT drops pre-packed constant
    weights from the recorded inputs, so a conv's weight shape comes from the optimized model.
    NCHWc convs pad channels to their block (8/16): the count is of the padded work (exact for
    the ResNet's 64..512 channels)."""
    if not output_shapes or not output_shapes[0]:
        return 0.0
    out = float(np.prod(output_shapes[0]))
    if op in _CONV_WEIGHT_INDEX:
        return out * float(np.prod(weight_shape[1:])) if weight_shape else 0.0
    if op in INT8_COMPUTE_OPS | FP32_COMPUTE_OPS:
        return out * float(input_shapes[0][-1]) if input_shapes and input_shapes[0] else 0.0
    return 0.0


def conv_weight_shapes(optimized_model_path) -> dict:
    """node name -> weight dims of each conv-like node of an ORT-optimized model."""
    import onnx
    graph = onnx.load(str(optimized_model_path)).graph
    dims = {init.name: list(init.dims) for init in graph.initializer}
    return {node.name: dims[node.input[_CONV_WEIGHT_INDEX[node.op_type]]] for node in graph.node
            if node.op_type in _CONV_WEIGHT_INDEX and len(node.input) > _CONV_WEIGHT_INDEX[node.op_type]
            and node.input[_CONV_WEIGHT_INDEX[node.op_type]] in dims}


def _shapes(type_shapes) -> list:
    """ORT's [{"float": [1, 3]}, ...] -> [[1, 3], ...]."""
    return [list(next(iter(entry.values()))) if entry else [] for entry in type_shapes or []]


def parse_profile(path, weight_shapes: dict | None = None, skip_runs: int = 1) -> dict:
    """Per op type of an ORT profile (JSON trace): ms, multiply-adds and nodes per run (averaged
    over the runs after the first `skip_runs`). `weight_shapes`: conv_weight_shapes()."""
    with open(path) as f:
        events = json.load(f)
    runs = sorted((e['ts'], e['ts'] + e['dur']) for e in events
                  if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    runs = runs[skip_runs:]
    if not runs:
        raise ValueError(f'{path}: no model_run after the first {skip_runs} run(s)')
    ops = defaultdict(lambda: {'ms': 0.0, 'macs': 0.0, 'nodes': 0})
    for e in events:
        if e.get('cat') != 'Node' or not e.get('name', '').endswith('_kernel_time'):
            continue
        if not any(start <= e['ts'] <= end for start, end in runs):
            continue
        args = e.get('args', {})
        op = args.get('op_name', '?')
        entry = ops[op]
        entry['ms'] += e['dur'] / 1e3 / len(runs)
        node = e['name'][:-len('_kernel_time')]
        entry['macs'] += node_macs(op, _shapes(args.get('input_type_shape')), _shapes(args.get('output_type_shape')),
                                   (weight_shapes or {}).get(node)) / len(runs)
        entry['nodes'] += 1 / len(runs)
    run_ms = float(np.mean([end - start for start, end in runs])) / 1e3
    return {'runs': len(runs), 'run_ms': run_ms, 'ops': dict(ops)}


def summarize_profile(profile: dict) -> dict:
    """Totals by precision: INT8 compute ops, FP32 compute ops, Quantize/Dequantize, the rest."""
    ops = profile['ops']
    summary = {'run_ms': profile['run_ms'], 'kernel_ms': sum(v['ms'] for v in ops.values())}
    for key, members in (('int8', INT8_COMPUTE_OPS), ('fp32', FP32_COMPUTE_OPS), ('qdq', QDQ_OPS)):
        chosen = [v for op, v in ops.items() if op in members]
        summary[f'{key}_ms'] = sum(v['ms'] for v in chosen)
        summary[f'{key}_macs'] = sum(v['macs'] for v in chosen)
    summary['other_ms'] = summary['kernel_ms'] - summary['int8_ms'] - summary['fp32_ms'] - summary['qdq_ms']
    return summary


def profile_model(model_path, threads: int, feeds: dict, runs: int, work: str) -> dict:
    """The INT8 model's per-op profile (parse_profile) over `runs` runs after a dropped first one."""
    optimized = os.path.join(work, 'optimized.onnx')
    session = make_session(model_path, threads, profile_prefix=os.path.join(work, 'ort_profile'),
                           optimized_path=optimized)
    for _ in range(runs + 1):  # the first run is dropped: allocations and pre-packing
        session.run(None, feeds)
    path = session.end_profiling()
    profile = parse_profile(path, conv_weight_shapes(optimized), skip_runs=1)
    return profile


# ---------------------------------------------------------------- the default model
def default_model_dir(cache_dir: Path) -> Path:
    """The default ACT model directory (as `bench quantize` builds it), built once."""
    from .checkpoint import write_random_checkpoint
    from .manifest import read_manifest
    from .pipeline import build_model_dir
    out = cache_dir / 'model'
    if (out / 'model_int8.onnx').exists() and (read_manifest(out).get('quantization') or {}):
        return out
    print(f'building the default model directory in {out} (once) ...', flush=True)
    checkpoint = write_random_checkpoint(cache_dir / 'checkpoint', seed=0)
    build_model_dir(checkpoint, out, calibration_frames=200, validation_frames=50, report=False)
    return out


def model_feeds(model_path) -> dict:
    """Synthetic inputs for the model's declared inputs (uint8 pixels, float state)."""
    import onnxruntime as ort
    rng = np.random.default_rng(0)
    feeds = {}
    for tensor in ort.InferenceSession(str(model_path), providers=['CPUExecutionProvider']).get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in tensor.shape]
        if tensor.type == 'tensor(uint8)':
            feeds[tensor.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def run(model_dir: Path, threads_list, rounds: int, model_rounds: int, profile_runs: int) -> dict:
    from .bench import count_macs
    from .manifest import read_manifest
    manifest = read_manifest(model_dir)
    paths = {'int8': model_dir / 'model_int8.onnx', 'fp32': model_dir / 'model_fp32.onnx'}
    macs = count_macs(paths['fp32'])
    feeds = model_feeds(paths['fp32'])
    peaks = measure_peaks(threads_list, rounds)
    result = {'macs': macs, 'int8_mac_fraction': (manifest.get('quantization') or {}).get('int8_mac_fraction'),
              'peaks': peaks, 'threads': list(threads_list)}
    for threads in threads_list:
        runners = {p: _runner(make_session(path, threads), feeds) for p, path in paths.items()}
        times = time_interleaved(runners, model_rounds, warmup=1, rerun=True)
        for precision, ts in times.items():
            # like for like: the model's best rounds (10th percentile latency) against the kernels'
            kernel, peak = peak_of(peaks[threads], precision)
            ms = float(np.percentile(ts, 10))
            result[f'{precision}_model_ms_{threads}t'] = ms
            result[f'{precision}_model_ms_spread_{threads}t'] = (float(np.median(ts)), float(np.max(ts)))
            result[f'{precision}_model_gmacs_{threads}t'] = macs / ms / 1e6
            result[f'{precision}_of_peak_{threads}t'] = macs / ms / 1e6 / peak
            result[f'peak_{precision}_{threads}t'] = (kernel, peak)
    with tempfile.TemporaryDirectory(prefix='rover_roofline_') as work:
        profile = profile_model(paths['int8'], max(threads_list), feeds, profile_runs, work)
    result['profile'] = profile
    result['profile_summary'] = summarize_profile(profile)
    return result


def format_line(r: dict, top: int = 8) -> str:
    parts = [f"macs={r['macs'] / 1e9:.2f}G"]
    if r['int8_mac_fraction'] is not None:
        parts.append(f"int8_mac_fraction={r['int8_mac_fraction']:.2f}")
    for threads in r['threads']:
        for kernel, v in r['peaks'][threads].items():
            parts.append(f"{kernel}_{threads}t_gmacs={v['gmacs_p90']:.1f}(p10={v['gmacs_p10']:.1f},"
                         f"p50={v['gmacs']:.1f})")
        for precision in ('int8', 'fp32'):
            kernel, peak = r[f'peak_{precision}_{threads}t']
            low, high = r[f'{precision}_model_ms_spread_{threads}t']
            parts += [f"peak_{precision}_{threads}t_gmacs={peak:.1f}",
                      f"{precision}_model_{threads}t_ms={r[f'{precision}_model_ms_{threads}t']:.1f}"
                      f"(p50={low:.1f},max={high:.1f})",
                      f"{precision}_model_{threads}t_gmacs={r[f'{precision}_model_gmacs_{threads}t']:.1f}",
                      f"{precision}_of_{precision}_peak_{threads}t={r[f'{precision}_of_peak_{threads}t']:.2f}"]
        int8_peak, fp32_peak = r[f'peak_int8_{threads}t'][1], r[f'peak_fp32_{threads}t'][1]
        parts.append(f"peak_int8_over_fp32_{threads}t={int8_peak / fp32_peak:.2f}")
    s = r['profile_summary']
    prof_threads = max(r['threads'])
    parts += [f"profile_threads={prof_threads}", f"profile_run_ms={s['run_ms']:.1f}",
              f"profile_kernel_ms={s['kernel_ms']:.1f}",
              f"profile_int8_ms={s['int8_ms']:.1f}", f"profile_int8_gmac={s['int8_macs'] / 1e9:.2f}",
              f"profile_int8_gmacs={s['int8_macs'] / max(s['int8_ms'], 1e-9) / 1e6:.1f}",
              f"profile_fp32_ms={s['fp32_ms']:.1f}", f"profile_fp32_gmac={s['fp32_macs'] / 1e9:.2f}",
              f"profile_fp32_gmacs={s['fp32_macs'] / max(s['fp32_ms'], 1e-9) / 1e6:.1f}",
              f"profile_qdq_ms={s['qdq_ms']:.1f}", f"profile_other_ms={s['other_ms']:.1f}"]
    ops = sorted(r['profile']['ops'].items(), key=lambda kv: -kv[1]['ms'])
    for op, v in ops[:top]:
        parts.append(f"op_{op}_ms={v['ms']:.1f}" + (f"(n={v['nodes']:.0f},gmac={v['macs'] / 1e9:.2f})"
                                                     if v['macs'] else f"(n={v['nodes']:.0f})"))
    return 'bench roofline: ' + ' '.join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rover_quantize.roofline', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-dir', default='', help='a model directory (model_int8.onnx + model_fp32.onnx)')
    parser.add_argument('--cache-dir', default=os.path.join(tempfile.gettempdir(), 'rover_roofline'),
                        help='where the default model directory is built and kept')
    parser.add_argument('--threads', default='1,2', help='intra-op thread counts (comma separated)')
    parser.add_argument('--rounds', type=int, default=15, help='timing rounds per kernel')
    parser.add_argument('--model-rounds', type=int, default=10, help='timing rounds per model')
    parser.add_argument('--profile-runs', type=int, default=5, help='profiled runs of the INT8 model')
    args = parser.parse_args(argv)
    threads_list = [int(t) for t in args.threads.split(',') if t]
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir(Path(args.cache_dir))
    result = run(model_dir, threads_list, args.rounds, args.model_rounds, args.profile_runs)
    print(format_line(result), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

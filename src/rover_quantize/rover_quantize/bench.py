"""bench quantize: quantize and time three ACT checkpoints, one line each.

- `synthetic`: the default ACT (dim 512, 4+1 layers, chunk 100, 360x640) from
  write_random_checkpoint, whose frozen-BN statistics are set to look like a trained ResNet's;
  calibrated and validated on synthetic road frames.
- `lerobot_init`: the same architecture initialised the way LeRobot initialises ACT without
  pretrained weights (xavier for the transformer, torchvision's kaiming init for the ResNet,
  frozen BN at mean 0 / var 1); synthetic frames.
- `demo_trained`: the trained demo policy (rover.demo_policy's checkpoint, as
  `python -m rover.demo --prepare-model` writes it to build/demo_checkpoint), recalibrated and
  validated on a recording of rendered track frames (a compressed-image rosbag).

Each is built with the real pipeline (static mode, the default; the INT8 model is written even
when it misses the bar so it can be timed: `passed` says whether it met it), then PyTorch FP32
eager (LeRobot's arithmetic: unfused frozen BN, explicit normalization), ONNX Runtime FP32 and
the ORT INT8 model are timed interleaved round by round so they share the machine's load.

  bench quantize: checkpoint=NAME int8_mac_percent=.. mse=.. max_error=.. passed=.. int8_ms=..
                  ort_fp32_ms=.. torch_fp32_ms=.. speedup_vs_ort_fp32=.. speedup_vs_torch=.. ...

With --hailo-head, the `synthetic` build also quantizes head.onnx (--hailo-head-int8; about 2 more
minutes on 2 busy cores, so not by default) and the Hailo hybrid's CPU part is timed: head.onnx (FP32)
vs head_int8.onnx on backbone.onnx's features, interleaved the same way (mse/max_error/passed:
head_int8 vs head.onnx on the build's held-out frames).

  bench hailo_head: fp32_ms=.. int8_ms=.. speedup=.. int8_mac_percent=.. mse=.. max_error=.. passed=..

Targets: >= 90 % of multiply-adds in INT8, the accuracy bar (MSE < 0.001, max error < 0.05 in
normalized action units on held-out frames), speedup_vs_torch >= 4 and speedup_vs_ort_fp32 >= 2.5.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .modes import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD

CHECKPOINTS = ('synthetic', 'lerobot_init', 'demo_trained')
DEMO_RECORDING_FRAMES = 320    # rendered track frames in the recording (calibration + selection + validation)
DEMO_RECORDING_SEED = 11       # not the seed the demo calibrates on (7): a fresh recording
HAILO_HEAD_CHECKPOINTS = ('synthetic',)  # the default-size ACT: its INT8 head is built and timed too


def count_macs(model_path: Path) -> float:
    """Multiply-accumulates of Conv/Gemm/MatMul nodes, from ORT's shape inference."""
    import onnx

    from .quantize import preprocess
    with tempfile.TemporaryDirectory() as tmp:
        pre = preprocess(model_path, Path(tmp) / 'pre.onnx')
        model = onnx.load(str(pre))
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0.0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if not out:
            continue
        if node.op_type == 'Conv':
            w = shapes.get(node.input[1])
            if w:
                total += float(np.prod(out)) * float(np.prod(w[1:]))
        elif node.op_type in ('Gemm', 'MatMul', 'FusedMatMul'):
            a = shapes.get(node.input[0])
            if a:
                total += float(np.prod(out)) * float(a[-1])
    return total


def _pct(values, q):
    return float(np.percentile(np.asarray(values), q))


def prepare_checkpoint(name: str, work: Path) -> dict:
    """Write checkpoint `name` under work; returns checkpoint path and build arguments.
    Raises ImportError for demo_trained when the rover package (the demo policy) is absent."""
    from .checkpoint import write_random_checkpoint
    ckpt = work / name / 'checkpoint'
    if name == 'synthetic':
        return {'checkpoint': write_random_checkpoint(ckpt, seed=0)}
    if name == 'lerobot_init':
        return {'checkpoint': write_random_checkpoint(ckpt, seed=0, init='lerobot')}
    if name == 'demo_trained':
        from rover.demo_policy import track_frames, write_checkpoint
        from .bags import write_test_bag
        bag = work / name / 'recording'
        shutil.rmtree(bag, ignore_errors=True)
        write_test_bag(bag, frames=track_frames(DEMO_RECORDING_FRAMES, seed=DEMO_RECORDING_SEED),
                       image_type='compressed', image_topic='/camera/image_raw/compressed')
        return {'checkpoint': write_checkpoint(ckpt), 'bags': [bag],
                'image_topic': '/camera/image_raw/compressed'}
    raise ValueError(f'unknown checkpoint {name!r}; known: {", ".join(CHECKPOINTS)}')


def bench_checkpoint(name: str, work: Path, *, rounds: int, calibration_frames: int,
                     validation_frames: int, threads: int, progress: bool = False,
                     reuse: bool = False, hailo_head: bool = False, calibration_method: str | None = None) -> dict:
    """Build (or, with reuse, read) the model directory of one checkpoint and time it."""
    import torch

    from .calibration import synthetic_frames, synthetic_states
    from .checkpoint import load_checkpoint
    from .export import policy_graph
    from .manifest import read_manifest
    from .pipeline import build_model_dir, feeds_for

    model_dir = work / name / 'model'
    started = time.monotonic()
    if reuse and (model_dir / 'manifest.json').exists():
        manifest = read_manifest(model_dir)
        ckpt = Path(manifest['checkpoint']['path'])
    else:
        args = prepare_checkpoint(name, work)
        ckpt = args.pop('checkpoint')
        # a fresh directory, and force: a model that misses the bar is still timed (passed=False says so)
        shutil.rmtree(model_dir, ignore_errors=True)
        manifest = build_model_dir(ckpt, model_dir, calibration_frames=calibration_frames,
                                   validation_frames=validation_frames, report=False, progress=progress,
                                   force=True, head_int8=hailo_head,
                                   calibration_method=calibration_method or DEFAULT_CALIBRATION_METHOD, **args)
    build_s = time.monotonic() - started
    fp32_path = model_dir / 'model_fp32.onnx'
    int8_path = model_dir / 'model_int8.onnx'
    ck = load_checkpoint(ckpt)
    graph = policy_graph(ck, 'full', fused=False)  # LeRobot's arithmetic, eager
    h, w = ck.cfg.image_hw
    n_frames = 8
    feeds = feeds_for(manifest, synthetic_frames(n_frames, h, w, seed=4242),
                      synthetic_states(n_frames, ck.cfg.state_dim, seed=4242))
    names = graph.input_names()

    def torch_run(feed):
        with torch.no_grad():
            return graph(*[torch.from_numpy(feed[n]) for n in names]).numpy()

    runners = {'torch_fp32': torch_run}
    for key, path in (('ort_fp32', fp32_path), ('int8', int8_path)):
        runners[key] = _ort_runner(path, threads)
    times = _interleaved(runners, feeds, rounds)

    v = manifest.get('validation') or {}
    q = manifest.get('quantization') or {}
    result = {'checkpoint': name, 'input': f'{h}x{w}', 'params': manifest['architecture']['parameters'],
              'macs': count_macs(fp32_path), 'threads': threads, 'rounds': rounds, 'build_s': build_s,
              'calibration': q.get('calibration_source', '?'), 'mode': q.get('mode', '?'),
              'ranges': q.get('calibration_method') or '?',
              'int8_mac_fraction': q.get('int8_mac_fraction', 0.0), 'fp32_groups': q.get('fp32_groups', []),
              'mse': v.get('mse', float('nan')), 'max_error': v.get('max_abs_error', float('nan')),
              'passed': bool(v.get('passed'))}  # the accuracy bar on held-out frames
    for key, ts in times.items():
        result[f'{key}_ms'] = _pct(ts, 50)
        result[f'{key}_p95_ms'] = _pct(ts, 95)
    result['speedup_vs_ort_fp32'] = result['ort_fp32_ms'] / result['int8_ms']
    result['speedup_vs_torch'] = result['torch_fp32_ms'] / result['int8_ms']
    result['target_met'] = (result['passed'] and result['int8_mac_fraction'] >= 0.9
                            and result['speedup_vs_torch'] >= 4.0 and result['speedup_vs_ort_fp32'] >= 2.5)
    if hailo_head:
        result['hailo_head'] = bench_hailo_head(model_dir, manifest, feeds, rounds, threads)
    return result


def _ort_runner(path, threads):
    from .roofline import make_session  # the policy node's session options
    session = make_session(path, threads)
    return lambda feed: session.run(['actions'], feed)[0]


# Untimed pause after each run: PyTorch's OpenMP workers spin for a while after a forward and
# would take a core from the runner timed next (ORT's sessions here do not spin, as in the node).
SETTLE_S = 0.05


def _interleaved(runners: dict, feeds: list, rounds: int) -> dict:
    """Times (ms) of each runner, round by round, alternating the order so they share the load.

    Each timed run follows an untimed one of the same runner on the same frame: the node runs its
    one model back to back, so its weights stay in cache (the INT8 default model's 16 MB fit this
    VM's 32 MB L3; the FP32 and PyTorch models run between them would evict them otherwise).
    """
    for fn in runners.values():  # warm-up
        for feed in feeds[:2]:
            fn(feed)
    times = {key: [] for key in runners}
    for r in range(rounds):
        feed = feeds[r % len(feeds)]
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for key in order:
            runners[key](feed)  # untimed: back in cache, and any other runner's spin has ended
            t0 = time.perf_counter()
            runners[key](feed)
            times[key].append((time.perf_counter() - t0) * 1e3)
            time.sleep(SETTLE_S)
    return times


def bench_hailo_head(model_dir: Path, manifest: dict, feeds: list, rounds: int, threads: int) -> dict:
    """The Hailo hybrid's CPU part: head.onnx vs head_int8.onnx (when the build wrote it) on
    backbone.onnx's features of the bench frames; accuracy from the build's held-out validation."""
    from rover_common.model_contract import HEAD_FILE, HEAD_INT8_FILE
    from .pipeline import head_feeds
    entry = (manifest.get('quantization') or {}).get('head_int8') or {}
    runners = {'fp32': _ort_runner(model_dir / HEAD_FILE, threads)}
    if entry.get('written'):
        runners['int8'] = _ort_runner(model_dir / HEAD_INT8_FILE, threads)
    times = _interleaved(runners, head_feeds(model_dir, feeds), max(rounds, 30))  # the head is fast
    fp32_ms = _pct(times['fp32'], 50)
    int8_ms = _pct(times['int8'], 50) if 'int8' in times else float('nan')
    return {'fp32_ms': fp32_ms, 'int8_ms': int8_ms, 'speedup': fp32_ms / int8_ms,
            'int8_mac_fraction': entry.get('int8_mac_fraction', 0.0), 'mse': entry.get('mse', float('nan')),
            'max_error': entry.get('max_abs_error', float('nan')), 'passed': bool(entry.get('written')),
            'threads': threads, 'rounds': len(times['fp32']),
            'fp32_groups': entry.get('fp32_groups', []), 'build_s': entry.get('seconds', float('nan'))}


def format_hailo_head_line(h: dict) -> str:
    return (f"bench hailo_head: fp32_ms={h['fp32_ms']:.2f} int8_ms={h['int8_ms']:.2f} speedup={h['speedup']:.2f} "
            f"int8_mac_percent={h['int8_mac_fraction'] * 100:.1f} mse={h['mse']:.2e} max_error={h['max_error']:.3f} "
            f"passed={h['passed']} threads={h['threads']} rounds={h['rounds']} "
            f"fp32_groups={len(h['fp32_groups'])}" + (f"[{','.join(h['fp32_groups'])}]" if h['fp32_groups'] else '')
            + f" build_s={h['build_s']:.0f}")


def qdq_debug(model_dir: Path, frames: int = 3, worst: int = 5) -> dict:
    """Where the INT8 error of a model directory comes from, per tensor (onnxruntime's
    qdq_loss_debug): SQNR in dB of each quantized activation (`local`: its own QuantizeLinear/
    DequantizeLinear pair; `vs_fp32`: the QDQ model's tensor vs the FP32 model's, i.e. the error
    accumulated up to there) and of each weight, on synthetic frames. The FP32 reference is the graph that was quantized (space-to-depth stem,
    preprocessed), re-exported from the checkpoint, so tensor names match."""
    from onnxruntime.quantization import qdq_loss_debug as dbg

    from .calibration import FeedsReader, synthetic_frames, synthetic_states
    from .checkpoint import load_checkpoint
    from .export import export_part
    from .manifest import read_manifest
    from .pipeline import feeds_for
    from .quantize import _quiet, preprocess

    manifest = read_manifest(model_dir)
    ck = load_checkpoint(manifest['checkpoint']['path'])
    h, w = ck.cfg.image_hw
    feeds = feeds_for(manifest, synthetic_frames(frames, h, w, seed=99), synthetic_states(frames, ck.cfg.state_dim, seed=99))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_part(ck, 'full', tmp / 's2d.onnx', s2d=True)
        with _quiet():
            fp32 = preprocess(tmp / 's2d.onnx', tmp / 'fp32_pre.onnx')
        int8 = model_dir / 'model_int8.onnx'
        logging.disable(logging.ERROR)  # it logs every bias it cannot pair
        try:
            matched = dbg.create_weight_matching(str(fp32), str(int8))
        finally:
            logging.disable(logging.NOTSET)
        # weights only: biases are int32 at input x weight scale and moved by bias correction
        weights = dbg.compute_weight_error({t: m for t, m in matched.items() if m['float'].ndim > 1})
        dbg.modify_model_output_intermediate_tensors(fp32, tmp / 'fp32_aug.onnx')
        dbg.modify_model_output_intermediate_tensors(int8, tmp / 'int8_aug.onnx')
        float_acts = dbg.collect_activations(str(tmp / 'fp32_aug.onnx'), FeedsReader(feeds))
        qdq_acts = dbg.collect_activations(str(tmp / 'int8_aug.onnx'), FeedsReader(feeds))
    matching = dbg.create_activation_matching(qdq_acts, float_acts)
    errors = {}
    for tensor, m in matching.items():
        if 'float' not in m:
            continue
        pre = m['pre_qdq']
        if min(float(x.min()) for x in m['post_qdq']) >= 0:
            # the quantizer dropped a ReLU into this tensor's unsigned range (zero point 0): its
            # pre-QDQ input still holds the negatives the clamp removes, which are not noise
            pre = [np.maximum(x, 0) for x in pre]
        errors[tensor] = {'local': dbg.compute_signal_to_quantization_noice_ratio(pre, m['post_qdq']),
                          'vs_fp32': dbg.compute_signal_to_quantization_noice_ratio(m['float'], m['post_qdq'])}
    local = sorted((e['local'], t) for t, e in errors.items())
    accumulated = sorted((e['vs_fp32'], t) for t, e in errors.items())
    return {'frames': frames, 'tensors': len(errors),
            'worst_local': [(t, float(v)) for v, t in local[:worst]],
            'worst_vs_fp32': [(t, float(v)) for v, t in accumulated[:worst]],
            'worst_weights': [(t, float(v)) for t, v in sorted(weights.items(), key=lambda kv: kv[1])[:worst]],
            'all': {t: {k: float(v) for k, v in e.items()} for t, e in errors.items()},
            'weights': {t: float(v) for t, v in weights.items()}}


def format_debug_line(d: dict) -> str:
    def items(pairs):
        return ','.join(f'{t}:{v:.1f}' for t, v in pairs)
    return (f"bench quantize_sqnr: checkpoint={d['checkpoint']} frames={d['frames']} tensors={d['tensors']} "
            f"worst_local_sqnr_db={items(d['worst_local'])} worst_vs_fp32_sqnr_db={items(d['worst_vs_fp32'])} "
            f"worst_weight_sqnr_db={items(d['worst_weights'])}")


def run(checkpoints=CHECKPOINTS, rounds: int = 15, calibration_frames: int = 64, validation_frames: int = 50,
        threads: int = 0, keep: str | None = None, progress: bool = False, reuse: bool = False,
        emit=None, hailo_head: bool = False, calibration_method: str | None = None):
    """Bench each checkpoint; returns the result dicts (emit(result) is called as each finishes)."""
    import torch
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix='rover_bench_'))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for name in checkpoints:
            try:
                result = bench_checkpoint(name, work, rounds=rounds, calibration_frames=calibration_frames,
                                          validation_frames=validation_frames, threads=threads,
                                          progress=progress, reuse=reuse,
                                          hailo_head=hailo_head and name in HAILO_HEAD_CHECKPOINTS,
                                          calibration_method=calibration_method)
            except ImportError as exc:  # demo_trained needs the rover package
                result = {'checkpoint': name, 'skipped': exc.name or 'module'}
            results.append(result)
            if emit:
                emit(result)
        return results
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def format_line(r: dict) -> str:
    if 'skipped' in r:
        return f"bench quantize: checkpoint={r['checkpoint']} skipped=missing_{r['skipped']}"
    parts = [f"checkpoint={r['checkpoint']}",
             f"int8_mac_percent={r['int8_mac_fraction'] * 100:.1f}",
             f"mse={r['mse']:.2e} max_error={r['max_error']:.3f} passed={r['passed']}",
             f"int8_ms={r['int8_ms']:.1f} ort_fp32_ms={r['ort_fp32_ms']:.1f} torch_fp32_ms={r['torch_fp32_ms']:.1f}",
             f"speedup_vs_ort_fp32={r['speedup_vs_ort_fp32']:.2f} speedup_vs_torch={r['speedup_vs_torch']:.2f}",
             f"threads={r['threads']} rounds={r['rounds']}",
             f"int8_p95_ms={r['int8_p95_ms']:.1f} ort_fp32_p95_ms={r['ort_fp32_p95_ms']:.1f} "
             f"torch_fp32_p95_ms={r['torch_fp32_p95_ms']:.1f}",
             f"input={r['input']} params={r['params'] / 1e6:.1f}M macs={r['macs'] / 1e9:.1f}G",
             f"mode={r['mode']} calibration={r['calibration']} ranges={r.get('ranges', '?')} "
             f"fp32_groups={len(r['fp32_groups'])}"
             + (f"[{','.join(r['fp32_groups'])}]" if r['fp32_groups'] else ''),
             f"target={'met' if r['target_met'] else 'missed'} build_s={r['build_s']:.0f}"]
    return 'bench quantize: ' + ' '.join(parts)


def _print_result(r: dict):
    print(format_line(r), flush=True)
    if 'hailo_head' in r:
        print(format_hailo_head_line(r['hailo_head']), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rover_quantize.bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoints', default=','.join(CHECKPOINTS),
                        help=f'comma-separated subset of {",".join(CHECKPOINTS)} (default: all)')
    # defaults sized so the three builds + timings stay around 10 minutes on 2 busy cores
    # (`rover-quantize build` calibrates on 200 frames)
    parser.add_argument('--rounds', type=int, default=15, help='interleaved timing rounds per checkpoint (default 15)')
    parser.add_argument('--calibration-frames', type=int, default=64)
    parser.add_argument('--validation-frames', type=int, default=50)
    parser.add_argument('--calibration-method', default=None, choices=list(CALIBRATION_METHODS),
                        help='calibration method of the builds (default: rover-quantize build\'s)')
    parser.add_argument('--threads', type=int, default=0, help='threads for torch and ORT (default: all cores)')
    parser.add_argument('--keep', default=None, help='keep the checkpoints and model directories here')
    parser.add_argument('--progress', action='store_true')
    parser.add_argument('--reuse', action='store_true',
                        help='with --keep: time the model directories already there instead of rebuilding')
    parser.add_argument('--hailo-head', action='store_true',
                        help='also build and time the INT8 head of the Hailo hybrid for synthetic '
                             '(a second line: bench hailo_head: ...)')
    parser.add_argument('--qdq-debug', default=None, metavar='CHECKPOINT',
                        help='after timing, report the tensors with the worst SQNR of this checkpoint\'s '
                             'INT8 model (onnxruntime qdq_loss_debug; a few GB of memory at 360x640)')
    parser.add_argument('--qdq-debug-json', default=None, help='write the per-tensor SQNR of --qdq-debug here')
    args = parser.parse_args(argv)
    names = [n for n in args.checkpoints.split(',') if n]
    unknown = set(names) - set(CHECKPOINTS)
    if unknown:
        parser.error(f'unknown checkpoint(s) {", ".join(sorted(unknown))}; known: {", ".join(CHECKPOINTS)}')
    if args.qdq_debug and args.qdq_debug not in names:
        parser.error('--qdq-debug must name one of the benched --checkpoints')
    keep = args.keep or (tempfile.mkdtemp(prefix='rover_bench_') if args.qdq_debug else None)
    try:
        run(names, args.rounds, args.calibration_frames, args.validation_frames, args.threads, keep,
            args.progress, args.reuse, emit=_print_result, hailo_head=args.hailo_head,
            calibration_method=args.calibration_method)
        if args.qdq_debug:
            report = {'checkpoint': args.qdq_debug, **qdq_debug(Path(keep) / args.qdq_debug / 'model')}
            print(format_debug_line(report), flush=True)
            if args.qdq_debug_json:
                import json
                Path(args.qdq_debug_json).write_text(json.dumps(report, indent=1))
    finally:
        if keep and not args.keep:
            shutil.rmtree(keep, ignore_errors=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

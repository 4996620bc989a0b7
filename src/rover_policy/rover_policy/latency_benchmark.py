"""Inference latency without ROS: `ros2 run rover_policy latency_benchmark ...`
(or `python -m rover_policy.latency_benchmark ...`).

Runs the chosen backend on camera-sized random frames (preprocessed like the
node does) and prints one line:
`bench inference: backend=... mean_ms=... p50_ms=... p95_ms=... p99_ms=... fps=...`
where the latencies are backend.infer() alone and fps = 1000 / mean_ms.
"""
import argparse
import sys
import time

import numpy as np

from rover_policy.backends import BACKENDS, BackendError, create_backend
from rover_policy.model_dir import ModelDirError, load_model_dir
from rover_policy.preprocessing import ImagePreprocessor

EXIT_CONFIG_ERROR = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='latency_benchmark',
                                     description='Measure policy inference latency without ROS.')
    parser.add_argument('--model-dir', required=True, help='model directory (manifest.json)')
    parser.add_argument('--backend', default='cpu_int8', choices=BACKENDS)
    parser.add_argument('--iterations', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--threads', type=int, default=4, help='ONNX Runtime intra-op threads')
    parser.add_argument('--hef-path', default='', help='HEF for --backend hailo (default: manifest)')
    parser.add_argument('--frame-size', default='640x360', help='camera frame WxH before preprocessing')
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1:
        parser.error('--iterations and --threads must be >= 1, --warmup >= 0')
    try:
        args.frame_width, args.frame_height = (int(v) for v in args.frame_size.lower().split('x'))
    except ValueError:
        parser.error(f'--frame-size {args.frame_size!r} is not WxH')
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        model = load_model_dir(args.model_dir)
        backend = create_backend(model, args.backend, args.threads, args.hef_path)
    except (ModelDirError, BackendError) as exc:
        print(f'cannot start: {exc}', file=sys.stderr)
        return EXIT_CONFIG_ERROR
    preprocess = ImagePreprocessor.for_model(model)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.frame_height, args.frame_width, 3), dtype=np.uint8) for _ in range(4)]
    state = np.zeros(model.state.shape, np.float32)
    infer_ms, preprocess_ms = [], []
    with backend:
        for i in range(args.warmup + args.iterations):
            start = time.perf_counter()
            image = preprocess(frames[i % len(frames)])
            middle = time.perf_counter()
            backend.infer(image, state)
            end = time.perf_counter()
            if i >= args.warmup:
                preprocess_ms.append((middle - start) * 1000.0)
                infer_ms.append((end - middle) * 1000.0)
        description = backend.describe()
    infer_ms = np.array(infer_ms)
    mean = float(infer_ms.mean())
    p50, p95, p99 = (float(np.percentile(infer_ms, q)) for q in (50, 95, 99))
    extra = ' '.join(f'{k}={v}' for k, v in description.items() if k not in ('backend', 'threads'))
    print(f'bench inference: backend={args.backend} image={model.image_width}x{model.image_height} '
          f'chunk={model.chunk_size} iterations={args.iterations} threads={args.threads} '
          f'mean_ms={mean:.3f} p50_ms={p50:.3f} p95_ms={p95:.3f} p99_ms={p99:.3f} fps={1000.0 / mean:.1f} '
          f'preprocess_p50_ms={float(np.median(preprocess_ms)):.3f} {extra}'.rstrip(), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

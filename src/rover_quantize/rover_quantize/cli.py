"""`rover-quantize`: LeRobot ACT checkpoint -> model directory for the rover policy node.

Subcommands
  build      export + calibrate + quantize + validate + report (the usual one)
  export     FP32 ONNX only (model_fp32.onnx, backbone.onnx, head.onnx) + manifest
  quantize   calibrate + quantize + validate an exported model directory again (other bags/mode)
  validate   check file hashes and INT8 vs FP32 on held-out frames
  hailo      prepare the Dataflow Compiler inputs for a Hailo-8L backbone HEF
  add-hef    register a HEF compiled elsewhere in the model directory's manifest
  random-checkpoint  write a LeRobot-layout ACT checkpoint with random weights (demo, tests)

Errors are reported as one line on stderr; exit codes: 0 ok, 1 accuracy bar missed,
2 bad input (checkpoint, bag, arguments), 3 unexpected failure (--debug shows the traceback).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback

from .errors import QuantizeError, ValidationFailed
from .modes import BAR_MAX, BAR_MSE, CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD, DEFAULT_MODE, MODES

EXIT_OK, EXIT_BAR, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _add_frames_args(p, calibration=True):
    p.add_argument('--bag', action='append', default=[], metavar='BAG',
                   help='rosbag2 directory (MCAP or SQLite3); repeat for several bags. '
                        'Without --bag, synthetic road frames are used (and the manifest says so).')
    p.add_argument('--image-topic', default=None,
                   help='camera topic: sensor_msgs/Image or CompressedImage (default: camera/image_raw; '
                        '"<topic>/compressed" is used when only that was recorded)')
    p.add_argument('--state-topic', default='rover/state',
                   help='geometry_msgs/TwistStamped state topic paired by nearest stamp (default: rover/state)')
    if calibration:
        p.add_argument('--calibration-frames', type=int, default=200,
                       help='frames for calibration, spread over the bags (default: 200)')
        p.add_argument('--validation-frames', type=int, default=50,
                       help='held-out frames for validation, disjoint from calibration (default: 50)')


def _add_quant_args(p):
    p.add_argument('--mode', default=DEFAULT_MODE, choices=list(MODES),
                   help='; '.join(f'{name}: {what}' for name, what in MODES.items()))
    p.add_argument('--calibration-method', default=DEFAULT_CALIBRATION_METHOD, choices=list(CALIBRATION_METHODS),
                   help='activation range calibration: '
                        + '; '.join(f'{name}: {what}' for name, what in CALIBRATION_METHODS.items()))
    p.add_argument('--per-tensor', action='store_true', help='per-tensor instead of per-channel weights')
    p.add_argument('--no-saturation-guard', action='store_true',
                   help='8-bit weights everywhere; by default weights fed by raw pixels or signed tensors get '
                        '7 bits so x86 CPUs without VNNI (AVX2) cannot saturate their int16 pair sums')
    p.add_argument('--no-search', action='store_true',
                   help='quantize every group; do not keep sensitive groups in FP32 by measurement')
    p.add_argument('--keep-fp32', action='append', default=[], metavar='GROUP',
                   help='keep this group in FP32 (e.g. backbone.stem, backbone.layer1.0, decoder.layers.0, '
                        'action_head); repeatable')
    p.add_argument('--force', action='store_true',
                   help='write model_int8.onnx even if it misses the accuracy bar (marked in the manifest)')
    p.add_argument('--hailo-head-int8', action='store_true',
                   help='also quantize head.onnx (the Hailo hybrid\'s CPU part) with the same search into '
                        'head_int8.onnx, on backbone.onnx\'s features of the same frames; written only if it '
                        'meets the accuracy bar on the held-out frames (else a note in the manifest)')
    p.add_argument('--no-report', action='store_true', help='skip report/index.html')
    p.add_argument('--seed', type=int, default=0, help='seed for synthetic frames (default: 0)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rover-quantize',
        description='Turn a LeRobot ACT checkpoint into a model directory for the rover policy node: '
                    'ONNX FP32 + INT8 calibrated on rosbag frames, validated on held-out frames.',
        epilog='Example: rover-quantize build ./pretrained_model -o ./act_model --bag ./drive1 --bag ./drive2')
    parser.add_argument('--debug', action='store_true', help='show tracebacks on errors')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    p = sub.add_parser('build', help='export + calibrate + quantize + validate + report',
                       description='The whole pipeline. Bad input (checkpoint, bags, -o) fails in seconds '
                                   '(exit 2), before the export. The model is built beside -o and '
                                   'replaces it only when finished: an INT8 model that misses '
                                   f'MSE < {BAR_MSE:g} or max error < {BAR_MAX:g} (normalized action units) '
                                   'on held-out frames fails (exit 1) and leaves a working model in -o as '
                                   'it was, unless --force; so does an error or Ctrl-C.')
    p.add_argument('checkpoint', help='LeRobot pretrained directory (config.json + model.safetensors)')
    p.add_argument('-o', '--output', required=True, help='model directory to write')
    p.add_argument('--control-rate', type=float, default=30.0, help='control rate in Hz for the manifest')
    _add_frames_args(p)
    _add_quant_args(p)

    p = sub.add_parser('export', help='FP32 ONNX export only (checked against PyTorch)')
    p.add_argument('checkpoint', help='LeRobot pretrained directory')
    p.add_argument('-o', '--output', required=True, help='model directory to write')
    p.add_argument('--image-topic', default='camera/image_raw', help='camera topic for the manifest')
    p.add_argument('--control-rate', type=float, default=30.0, help='control rate in Hz for the manifest')

    p = sub.add_parser('quantize', help='calibrate + quantize + validate an exported model directory')
    p.add_argument('model_dir', help='model directory written by "export" or "build"')
    _add_frames_args(p)
    _add_quant_args(p)

    p = sub.add_parser('validate', help='check hashes and INT8 vs FP32 on frames')
    p.add_argument('model_dir')
    _add_frames_args(p, calibration=False)
    p.add_argument('--frames', type=int, default=50, help='frames to compare (default: 50)')

    p = sub.add_parser('hailo', help='prepare Hailo Dataflow Compiler inputs (does not compile)',
                       description='Writes MODEL_DIR/hailo/: the backbone ONNX for the Hailo parser '
                                   '(normalized float input; normalization moved into the .alls), '
                                   'calib_set.npy (NHWC float32 RGB 0-255), the .alls model script, '
                                   'compile_hef.sh and README.md with the exact DFC commands for hailo8l.')
    p.add_argument('model_dir')
    _add_frames_args(p, calibration=False)
    p.add_argument('--frames', type=int, default=1024, help='calibration frames (default: 1024)')
    p.add_argument('--synthetic', action='store_true',
                   help='allow synthetic frames when no --bag is given (poor calibration; for trying the flow)')
    p.add_argument('--hw-arch', default='hailo8l', choices=['hailo8l', 'hailo8'], help='target (default hailo8l)')
    p.add_argument('-o', '--output', default=None, help='output directory (default: MODEL_DIR/hailo)')

    p = sub.add_parser('add-hef', help='register a compiled HEF in the manifest (copies it, records sha256)')
    p.add_argument('model_dir')
    p.add_argument('hef', help='the .hef compiled by the Dataflow Compiler')
    p.add_argument('--hef-output', default='features', choices=['features', 'actions'],
                   help='what the HEF returns: the backbone feature map (hybrid) or the actions')

    p = sub.add_parser('random-checkpoint', help='write a LeRobot-layout ACT checkpoint with random weights')
    p.add_argument('output')
    p.add_argument('--layout', default='new', choices=['new', 'old'],
                   help='normalization stats in processor files (new) or in model.safetensors (old)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tiny', action='store_true',
                   help='a small config that builds in seconds (dim 64, 1+1 layers, chunk 10, 192x256)')
    return parser


def _print_validation(v: dict):
    status = 'PASSED' if v['passed'] else 'FAILED'
    print(f"validation {status}: mse={v['mse']:.3g} max_abs_error={v['max_abs_error']:.3g} "
          f"on {v['frames']} held-out frames (bar mse<{v['bar']['mse']:g} max<{v['bar']['max_abs_error']:g})")


def _summary(manifest: dict, out: str):
    q, v = manifest.get('quantization'), manifest.get('validation')
    if v:
        _print_validation(v)
    if q:
        print(f"quantization: {q['mode']}, {q['int8_mac_fraction'] * 100:.0f}% of multiply-adds in INT8, "
              f"kept FP32: {', '.join(q['fp32_groups']) or 'none'}; calibration: {q['calibration_frames']} "
              f"frames ({q['calibration_source']})")
        head = q.get('head_int8')
        if head and 'mse' in head:
            lat = head['latency_ms_p50']
            print(f"hailo head INT8: {'written' if head['written'] else 'not written'}, "
                  f"{head['int8_mac_fraction'] * 100:.0f}% of multiply-adds in INT8, mse={head['mse']:.3g} "
                  f"max_abs_error={head['max_abs_error']:.3g}, ORT {lat['ort_fp32']:.1f} ms FP32 -> "
                  f"{lat['ort_int8']:.1f} ms INT8")
    for note in manifest.get('notes', []):
        print(f'note: {note}')
    print(f"model directory: {out} ({', '.join(sorted(manifest['models'].values()))})")


def run(args) -> int:
    progress = not args.quiet
    if args.command == 'build':
        from .pipeline import build_model_dir
        manifest = build_model_dir(
            args.checkpoint, args.output, bags=args.bag or None,
            image_topic=args.image_topic or 'camera/image_raw', state_topic=args.state_topic,
            mode=args.mode, calibration_method=args.calibration_method,
            calibration_frames=args.calibration_frames, validation_frames=args.validation_frames,
            search=not args.no_search, keep_fp32=args.keep_fp32, per_channel=not args.per_tensor,
            force=args.force, seed=args.seed, report=not args.no_report,
            control_rate_hz=args.control_rate, progress=progress,
            saturation_guard=not args.no_saturation_guard, head_int8=args.hailo_head_int8)
        _summary(manifest, args.output)
    elif args.command == 'export':
        from .pipeline import export_model_dir
        manifest = export_model_dir(args.checkpoint, args.output, image_topic=args.image_topic,
                                    control_rate_hz=args.control_rate, progress=progress)
        worst = max(e['max_rel_diff_vs_torch'] for e in manifest['export'].values())
        print(f'exported {", ".join(manifest["export"])} (ONNX Runtime vs PyTorch: {worst:.1e} relative)')
        _summary(manifest, args.output)
    elif args.command == 'quantize':
        from .pipeline import quantize_model_dir
        manifest = quantize_model_dir(
            args.model_dir, bags=args.bag or None, image_topic=args.image_topic,
            state_topic=args.state_topic, mode=args.mode, calibration_method=args.calibration_method,
            calibration_frames=args.calibration_frames, validation_frames=args.validation_frames,
            search=not args.no_search, keep_fp32=args.keep_fp32, per_channel=not args.per_tensor,
            force=args.force, seed=args.seed, report=not args.no_report, progress=progress,
            saturation_guard=not args.no_saturation_guard, head_int8=args.hailo_head_int8)
        _summary(manifest, args.model_dir)
    elif args.command == 'validate':
        from .pipeline import revalidate
        v = revalidate(args.model_dir, bags=args.bag or None, image_topic=args.image_topic,
                       state_topic=args.state_topic, frames=args.frames, progress=progress)
        print('file hashes OK')
        _print_validation(v)
        if not v['passed']:
            return EXIT_BAR
    elif args.command == 'hailo':
        from .hailo import prepare_hailo
        info = prepare_hailo(args.model_dir, out_dir=args.output, bags=args.bag or None,
                             image_topic=args.image_topic, state_topic=args.state_topic,
                             frames=args.frames, allow_synthetic=args.synthetic, hw_arch=args.hw_arch,
                             progress=progress)
        print(f"wrote {info['dir']}: {', '.join(info['files'])}")
        print(f"next (on an x86-64 machine with the Hailo Dataflow Compiler): bash {info['dir']}/compile_hef.sh")
    elif args.command == 'add-hef':
        from .hailo import add_hef
        manifest = add_hef(args.model_dir, args.hef, args.hef_output)
        print(f"registered {manifest['models']['hef']} (output: {manifest['models']['hef_output']}) "
              f"sha256 {manifest['files'][manifest['models']['hef']]['sha256'][:16]}...")
    elif args.command == 'random-checkpoint':
        from .checkpoint import write_random_checkpoint
        from .checkpoint import SMALL_CONFIG
        path = write_random_checkpoint(args.output, seed=args.seed, layout=args.layout,
                                       **(SMALL_CONFIG if args.tiny else {}))
        print(f'wrote {path} ({args.layout} layout, random weights, seed {args.seed})')
    return EXIT_OK


def _interrupt(signum, frame):
    # SIGTERM (docker stop, systemd) unwinds like Ctrl-C, so a build removes its staging directory.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return run(args)
    except ValidationFailed as exc:
        print(f'rover-quantize: {exc}', file=sys.stderr)
        return EXIT_BAR
    except QuantizeError as exc:
        print(f'rover-quantize: error: {exc}', file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print('rover-quantize: interrupted', file=sys.stderr)
        return 130
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        print(f'rover-quantize: error: {exc}', file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into one line
        if args.debug:
            traceback.print_exc()
        print(f'rover-quantize: internal error: {type(exc).__name__}: {exc} (run with --debug for details)',
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == '__main__':
    sys.exit(main())

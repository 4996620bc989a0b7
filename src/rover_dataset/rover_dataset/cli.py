"""`rover-dataset`: recorded rosbag2 drives -> LeRobotDataset v3.0 (for lerobot-train, policy.type=act).

Subcommands
  build BAG... -o DIR   convert (--dry-run prints the episode table and writes nothing)
  inspect DIR           episodes and stats of a dataset
  preview DIR -o F      F.mp4 (frames with the action drawn) or F.png (a grid of frames)

Errors are one line on stderr; exit codes: 0 ok, 2 bad input (bag, arguments, dataset),
3 unexpected failure (--debug shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from .errors import DatasetError

EXIT_OK, EXIT_INPUT, EXIT_INTERNAL = 0, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other bad input
        print(f'{self.prog}: error: {message}', file=sys.stderr)
        sys.exit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='rover-dataset', description=__doc__.split('\n')[0])
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)

    b = sub.add_parser('build', help='convert bags to a LeRobotDataset v3.0')
    b.add_argument('bags', nargs='+', metavar='BAG', help='rosbag2 directories or bare .mcap/.db3 files')
    b.add_argument('-o', '--output', required=True, metavar='DIR', help='dataset directory to write')
    b.add_argument('--task', default='follow the track', help='task string of every episode')
    b.add_argument('--fps', type=int, default=30, help='dataset frame rate (default 30)')
    b.add_argument('--namespace', default=None, help='topic namespace of the car (e.g. car1)')
    b.add_argument('--include-autonomous', action='store_true',
                   help='keep assisted/autonomous segments too (default: manual driving only)')
    b.add_argument('--max-age', type=float, default=0.5, metavar='S',
                   help='a frame whose newest state or command is older than this is left out (default 0.5)')
    b.add_argument('--max-gap', type=float, default=0.5, metavar='S',
                   help='a hole in the frames longer than this splits the episode (default 0.5)')
    b.add_argument('--min-frames', type=int, default=2, help='shorter episodes are left out (default 2)')
    b.add_argument('--resize', default=None, metavar='WxH', help='resize frames (default: camera size)')
    b.add_argument('--vcodec', default='libsvtav1', choices=('libsvtav1', 'h264', 'libx264', 'hevc'),
                   help="video codec (default libsvtav1, LeRobot's default)")
    b.add_argument('--crf', type=int, default=30, help='video quality, lower is better (default 30, LeRobot)')
    b.add_argument('--gop', type=int, default=2, help='keyframe interval (default 2, LeRobot: fast seeking)')
    b.add_argument('--robot-type', default='rover')
    b.add_argument('--dry-run', action='store_true', help='print the episode table, write nothing')
    b.add_argument('--force', action='store_true', help='replace an existing output directory')
    b.add_argument('--no-progress', action='store_true')

    i = sub.add_parser('inspect', help='print the episodes and stats of a dataset')
    i.add_argument('dataset', metavar='DIR')

    p = sub.add_parser('preview', help='frames with the action drawn over them')
    p.add_argument('dataset', metavar='DIR')
    p.add_argument('-o', '--output', required=True, metavar='FILE', help='preview.mp4 or preview.png')
    p.add_argument('--episode', type=int, default=None)
    p.add_argument('--max-frames', type=int, default=900, help='frames in an mp4 preview (default 900)')
    return parser


def run(args) -> int:
    if args.command == 'build':
        from .align import Options
        from .build import build, episode_table, load_plan, parse_size
        if args.fps < 1:
            raise DatasetError('--fps must be >= 1')
        opts = Options(fps=args.fps, include_autonomous=args.include_autonomous, max_age_s=args.max_age,
                       max_gap_s=args.max_gap, min_frames=max(1, args.min_frames))
        resize = parse_size(args.resize)
        if args.dry_run:
            p, _ = load_plan(args.bags, opts, args.namespace)
            print(episode_table(p, args.fps))
            return EXIT_OK
        vcodec = 'libx264' if args.vcodec == 'h264' else args.vcodec
        r = build(args.bags, args.output, opts=opts, task=args.task, namespace=args.namespace, resize=resize,
                  vcodec=vcodec, crf=args.crf, gop=args.gop, force=args.force, progress=not args.no_progress,
                  robot_type=args.robot_type)
        print(episode_table(r.plan, args.fps))
        print(f'wrote {args.output}: {r.frames} frames in {r.seconds:.1f} s ({r.frames / max(r.seconds, 1e-9):.0f} '
              f'frames/s); dataset {r.dataset_bytes / 2**20:.1f} MiB from {r.bag_bytes / 2**20:.1f} MiB of bags '
              f'({r.dataset_bytes / max(r.bag_bytes, 1):.1%})')
        return EXIT_OK
    if args.command == 'inspect':
        from .inspect_preview import inspect_text
        print(inspect_text(args.dataset))
        return EXIT_OK
    from .inspect_preview import preview
    n = preview(args.dataset, args.output, episode=args.episode, max_frames=args.max_frames)
    print(f'wrote {args.output} ({n} frames)')
    return EXIT_OK


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except DatasetError as exc:
        print(f'rover-dataset: error: {exc}', file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print('rover-dataset: interrupted', file=sys.stderr)
        return 130
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        print(f'rover-dataset: error: {exc}', file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into one line
        if args.debug:
            traceback.print_exc()
        print(f'rover-dataset: internal error: {type(exc).__name__}: {exc} (run with --debug for details)',
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == '__main__':
    sys.exit(main())

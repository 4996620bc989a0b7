"""`rover-dataset build`: bags -> plan (episodes, alignment) -> LeRobotDataset v3.0, atomically."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import lerobot_format as lf
from .align import NS, Options, Plan, plan
from .bagread import iter_frames, read_bag
from .errors import DatasetError


@dataclass
class Result:
    plan: Plan
    frames: int
    seconds: float
    bag_bytes: int
    dataset_bytes: int


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'640x360' (W x H) -> (H, W)."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise DatasetError(f'--resize wants WIDTHxHEIGHT (e.g. 640x360), got {text!r}') from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise DatasetError(f'--resize {text}: width and height must be even and >= 16 (yuv420p video)')
    return h, w


def episode_table(p: Plan, fps: int) -> str:
    lines = [f'{"ep":>3} {"bag":<28} {"from":>8} {"seconds":>8} {"frames":>7} {"repeated":>8} {"dropped":>7}  source']
    for i, e in enumerate(p.episodes):
        lines.append(f'{i:>3} {Path(e.bag).name[:28]:<28} {(e.stamps[0] - e.bag_start) / NS:>8.2f} '
                     f'{e.length / fps:>8.2f} {e.length:>7} {e.repeated:>8} {e.dropped:>7}  {e.source}')
    total = p.frames
    lines.append(f'{len(p.episodes)} episode(s), {total} frames ({total / fps:.1f} s at {fps} fps), '
                 f'{sum(e.repeated for e in p.episodes)} repeated (camera frame missing at a slot), '
                 f'{sum(e.dropped for e in p.episodes)} dropped (camera faster than the dataset fps)')
    for reason, count in p.skipped.most_common():
        lines.append(f'  left out: {count} camera frame(s): {reason}')
    for note in p.notes:
        lines.append(f'  note: {note}')
    return '\n'.join(lines)


def load_plan(bags, opts: Options, namespace=None) -> tuple[Plan, list]:
    if not bags:
        raise DatasetError('no bags given')
    datas = [read_bag(Path(b), namespace) for b in bags]
    return plan(datas, opts), datas


def _fit(rgb: np.ndarray, hw) -> np.ndarray:
    if rgb.shape[:2] == tuple(hw):
        return rgb
    return cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)  # as the policy node does


def build(bags, out_dir, *, opts: Options, task: str, namespace=None, resize=None, vcodec='libsvtav1',
          crf=30, gop=2, force=False, progress=True, robot_type='rover') -> Result:
    from tqdm import tqdm
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise DatasetError(f'{out_dir} already exists (use --force to replace it)')
    start = time.monotonic()
    p, datas = load_plan(bags, opts, namespace)
    bag_bytes = sum(d.size_bytes for d in datas)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.partial-', dir=out_dir.parent))
    try:
        written = _write(tmp, p, datas, opts, task, resize, vcodec, crf, gop, progress, robot_type, tqdm)
        # atomic: readers see either no dataset or a complete one
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.old-', dir=out_dir.parent))
            out_dir.rename(old / 'dataset')
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out_dir.rglob('*') if f.is_file())
    return Result(p, written, time.monotonic() - start, bag_bytes, size)


def _write(root, p: Plan, datas, opts, task, resize, vcodec, crf, gop, progress, robot_type, tqdm) -> int:
    by_path = {d.path: d for d in datas}
    probe = iter_frames(by_path[p.episodes[0].bag], [p.episodes[0].positions[0]])
    hw = resize or next(probe)[1].shape[:2]
    probe.close()
    if hw[0] % 2 or hw[1] % 2:
        raise DatasetError(f'camera frames are {hw[1]}x{hw[0]}; yuv420p video needs even sizes: '
                           'pass --resize WxH')
    videos = lf.VideoFiles(root, opts.fps, hw, vcodec, crf, gop)
    bar = tqdm(total=p.frames, desc='converting', unit='frame', leave=False,
               disable=None if progress else True)  # None: only on a terminal
    rows, all_columns, file_columns, all_samples = [], [], [], []
    data_cf, file_bytes, index = (0, 0), 0, 0
    # one reader pass per bag: its episodes are in capture order
    readers = {}
    try:
        for ep_index, ep in enumerate(p.episodes):
            columns = lf.vector_columns(ep.state, ep.action, ep_index, index, 0, opts.fps)
            nbytes = sum(c.nbytes for c in columns.values())
            if file_columns and file_bytes + nbytes > lf.DATA_FILES_SIZE_IN_MB * 2**20:
                lf.write_data_file(root / lf.DATA_PATH.format(chunk_index=data_cf[0], file_index=data_cf[1]),
                                   file_columns)
                data_cf, file_columns, file_bytes = lf.next_file(*data_cf), [], 0
            if ep.bag not in readers:
                wanted = np.concatenate([e.positions for e in p.episodes if e.bag == ep.bag])
                readers[ep.bag] = iter_frames(by_path[ep.bag], wanted)
            frames = readers[ep.bag]
            chunk, file, from_ts = videos.start_episode()
            sample_at = set(lf.sample_indices(ep.length).tolist())
            samples = []
            position, rgb = -1, None
            for k, want in enumerate(ep.positions):
                while position < want:   # repeated slots reuse the frame already decoded
                    position, raw = next(frames)
                    rgb = _fit(raw, hw)
                if rgb.shape[:2] != tuple(hw):
                    raise DatasetError(f'{ep.bag}: frame size changed to {rgb.shape[1]}x{rgb.shape[0]}')
                videos.write(rgb)
                if k in sample_at:
                    samples.append(lf.downsample(rgb))
                bar.update(1)
            samples = np.stack(samples)
            all_samples.append(samples)
            rows.append(lf.episode_row(ep_index, task, ep.length, data_cf, index, (chunk, file), from_ts,
                                       opts.fps, lf.stats_for(columns, samples)))
            all_columns.append(columns)
            file_columns.append(columns)
            file_bytes += nbytes
            index += ep.length
    finally:
        bar.close()
        for r in readers.values():
            r.close()
        videos.close()
    lf.write_data_file(root / lf.DATA_PATH.format(chunk_index=data_cf[0], file_index=data_cf[1]), file_columns)
    lf.write_episodes(root, rows)
    lf.write_tasks(root, [task])
    merged = {k: np.concatenate([c[k] for c in all_columns]) for k in all_columns[0]}
    lf.write_stats(root, lf.stats_for(merged, np.concatenate(all_samples)))
    vinfo = lf.video_info(root / lf.VIDEO_PATH.format(video_key=lf.CAMERA_KEY, chunk_index=0, file_index=0))
    lf.write_info(root, fps=opts.fps, hw=hw, vinfo=vinfo, episodes=len(p.episodes), frames=index, tasks=1,
                  robot_type=robot_type)
    return index

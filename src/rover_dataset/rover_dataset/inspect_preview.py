"""`rover-dataset inspect` and `preview`: read a dataset back the way LeRobot does (meta files first)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from . import lerobot_format as lf
from .errors import DatasetError


def load(root) -> dict:
    """info, episodes (list of dicts), stats and the frame table, through meta/ like LeRobotDatasetMetadata."""
    import pyarrow.parquet as pq
    root = Path(root)
    info_path = root / 'meta' / 'info.json'
    if not info_path.is_file():
        raise DatasetError(f'{root} is not a LeRobot dataset (no meta/info.json)')
    info = json.loads(info_path.read_text())
    if info.get('codebase_version') != lf.CODEBASE_VERSION:
        raise DatasetError(f'{root}: codebase_version {info.get("codebase_version")!r}, expected v3.0')
    episodes = []
    for path in sorted((root / 'meta' / 'episodes').glob('*/*.parquet')):
        episodes.extend(pq.read_table(path).to_pylist())
    stats = json.loads((root / 'meta' / 'stats.json').read_text())
    data = {}
    for path in sorted((root / 'data').glob('*/*.parquet')):
        for k, v in pq.read_table(path).to_pydict().items():
            data.setdefault(k, []).extend(v)
    data = {k: np.asarray(v) for k, v in data.items()}
    return {'root': root, 'info': info, 'episodes': episodes, 'stats': stats, 'data': data}


def video_key(info) -> str:
    keys = [k for k, f in info['features'].items() if f['dtype'] == 'video']
    if not keys:
        raise DatasetError('the dataset has no video feature')
    return keys[0]


def inspect_text(root) -> str:
    ds = load(root)
    info, fps = ds['info'], ds['info']['fps']
    key = video_key(info)
    vinfo = info['features'][key].get('info', {})
    lines = [f'{ds["root"]}: LeRobotDataset {info["codebase_version"]}, {info["total_episodes"]} episodes, '
             f'{info["total_frames"]} frames at {fps} fps ({info["total_frames"] / fps:.1f} s), '
             f'{info["total_tasks"]} task(s)',
             f'{key}: {vinfo.get("video.width")}x{vinfo.get("video.height")} {vinfo.get("video.codec")} '
             f'{vinfo.get("video.pix_fmt")}',
             f'{"ep":>3} {"frames":>7} {"seconds":>8} {"index":>15}  video  task']
    for e in ds['episodes']:
        lines.append(f'{e["episode_index"]:>3} {e["length"]:>7} {e["length"] / fps:>8.2f} '
                     f'{e["dataset_from_index"]:>7}-{e["dataset_to_index"]:<7}  '
                     f'{e[f"videos/{key}/from_timestamp"]:.2f}-{e[f"videos/{key}/to_timestamp"]:.2f} s  '
                     f'{", ".join(e["tasks"])}')
    for name in (lf.STATE_KEY, lf.ACTION_KEY):
        st = ds['stats'][name]
        names = info['features'][name]['names']
        for i, n in enumerate(names):
            lines.append(f'{name}[{n}]: mean {st["mean"][i]:+.3f} std {st["std"][i]:.3f} '
                         f'min {st["min"][i]:+.3f} max {st["max"][i]:+.3f} q01 {st["q01"][i]:+.3f} '
                         f'q99 {st["q99"][i]:+.3f}')
    st = ds['stats'][key]
    lines.append(f'{key}: mean {np.round(np.ravel(st["mean"]), 3).tolist()} std {np.round(np.ravel(st["std"]), 3).tolist()}')
    return '\n'.join(lines)


def decode_video(path: Path):
    """Yield (pts seconds, RGB frame) of an mp4."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield float(frame.pts * stream.time_base), frame.to_ndarray(format='rgb24')


def frames_of(ds, wanted_rows=None):
    """Yield (row, RGB) for dataset rows, located like LeRobot: episode's file + from_timestamp + timestamp."""
    info, fps, key = ds['info'], ds['info']['fps'], video_key(ds['info'])
    wanted = set(range(info['total_frames'])) if wanted_rows is None else set(wanted_rows)
    for e in ds['episodes']:
        rows = [r for r in range(e['dataset_from_index'], e['dataset_to_index']) if r in wanted]
        if not rows:
            continue
        path = ds['root'] / info['video_path'].format(video_key=key, chunk_index=e[f'videos/{key}/chunk_index'],
                                                      file_index=e[f'videos/{key}/file_index'])
        start = e[f'videos/{key}/from_timestamp']
        by_pts = {round((start + float(ds['data']['timestamp'][r])) * fps): r for r in rows}
        for pts, rgb in decode_video(path):
            r = by_pts.pop(round(pts * fps), None)
            if r is not None:
                yield r, rgb
            if not by_pts:
                break


def draw(rgb: np.ndarray, state, action, label: str) -> np.ndarray:
    """The action (green) and state (white) as steering arrow + throttle bar over the frame."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    scale = max(1, w // 320)
    cx, base = w // 2, h - 10 * scale
    for (steer, throttle), color in ((state, (255, 255, 255)), (action, (0, 220, 0))):
        tip = (int(cx - steer * w * 0.4), int(base - 40 * scale))  # positive steering = left
        cv2.arrowedLine(img, (cx, base), tip, color, 2 * scale, tipLength=0.25)
    bar = int(np.clip(action[1], -1, 1) * h * 0.4)
    cv2.rectangle(img, (w - 14 * scale, h // 2), (w - 6 * scale, h // 2 - bar), (0, 220, 0), -1)
    text = f'{label} steer {action[0]:+.2f} thr {action[1]:+.2f}'
    cv2.putText(img, text, (4, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (0, 0, 0), 3 * scale)
    cv2.putText(img, text, (4, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (0, 255, 255), scale)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def preview(root, out, *, episode=None, max_frames=900, tiles=12) -> int:
    """Write out.mp4 (the frames with their action) or out.png (a grid of frames spread over the data)."""
    ds = load(root)
    out = Path(out)
    data, fps = ds['data'], ds['info']['fps']
    rows = np.arange(len(data['index']))
    if episode is not None:
        rows = rows[data['episode_index'] == episode]
        if not rows.size:
            raise DatasetError(f'episode {episode} is not in {root}')
    suffix = out.suffix.lower()
    if suffix == '.png':
        pick = np.unique(np.linspace(0, len(rows) - 1, min(tiles, len(rows))).round().astype(int))
        chosen = rows[pick]
    elif suffix == '.mp4':
        chosen = rows[:max_frames]
    else:
        raise DatasetError(f'preview writes .mp4 or .png, not {out.name}')

    def annotated():
        for r, rgb in frames_of(ds, chosen.tolist()):
            yield draw(rgb, data['observation.state'][r], data['action'][r],
                       f'ep {data["episode_index"][r]} f {data["frame_index"][r]}')

    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    if suffix == '.png':
        images = list(annotated())
        cols = min(4, len(images))
        blank = np.zeros_like(images[0])
        images += [blank] * (-len(images) % cols)
        grid = np.vstack([np.hstack(images[i:i + cols]) for i in range(0, len(images), cols)])
        cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        return len(chosen)
    import av
    with av.open(str(out), 'w') as container:
        stream = None
        for img in annotated():
            if stream is None:
                stream = container.add_stream('libx264', rate=fps, options={'crf': '23'})
                stream.height, stream.width = img.shape[:2]
                stream.pix_fmt = 'yuv420p'
            frame = av.VideoFrame.from_ndarray(img, format='rgb24')
            frame.pts = count
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count

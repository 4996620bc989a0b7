"""Write a LeRobotDataset v3.0 with pyarrow and PyAV, the layout LeRobot itself writes.

Checked against LeRobot's source (lerobot 0.4.x, src/lerobot/datasets/: utils.py
create_empty_dataset_info / DEFAULT_FEATURES / paths, lerobot_dataset.py save_episode /
_save_episode_data / _save_episode_video, compute_stats.py, video_utils.py get_video_info):

    meta/info.json                      codebase_version "v3.0", fps, features, chunk/file layout
    meta/stats.json                     per feature: min max mean std count q01 q10 q50 q90 q99
    meta/tasks.parquet                  task_index, indexed by the task string (a pandas index)
    meta/episodes/chunk-000/file-000.parquet   one row per episode (indices into the shared files)
    data/chunk-000/file-000.parquet     one row per frame, all episodes
    videos/<key>/chunk-000/file-000.mp4 all episodes back to back; from/to_timestamp locate one

`timestamp` restarts at 0 in every episode (frame_index / fps); LeRobot adds the episode's
`videos/<key>/from_timestamp` to find the frame in the shared mp4, so pts must be exactly
k / fps in each file. Stats follow compute_stats.py (images: per channel in [0, 1] over
frames sampled per episode, shape [3, 1, 1]) except that quantiles are exact (np.quantile)
where LeRobot approximates them with histograms.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

CODEBASE_VERSION = 'v3.0'
CHUNKS_SIZE = 1000                  # files per chunk directory
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
TASKS_PATH = 'meta/tasks.parquet'
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# Keys a rover_quantize / policy-node checkpoint expects (act_config: observation.images.<cam>,
# observation.state, action; names in this order map to angular.z / linear.x).
CAMERA_KEY = 'observation.images.cam_front'
STATE_KEY, ACTION_KEY = 'observation.state', 'action'
NAMES = ['steering', 'throttle']
DEFAULT_FEATURES = {
    'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
    'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
}


def next_file(chunk: int, file: int) -> tuple[int, int]:
    """utils.update_chunk_file_indices."""
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


# ---------------------------------------------------------------- stats (compute_stats.py)
def sample_indices(n: int) -> np.ndarray:
    """Frames LeRobot samples per episode for image stats (estimate_num_samples)."""
    num = max(min(100, n), min(int(n ** 0.75), 10_000))
    return np.round(np.linspace(0, n - 1, num)).astype(int)


def downsample(img: np.ndarray) -> np.ndarray:
    """auto_downsample_height_width, on H x W x C."""
    h, w = img.shape[:2]
    if max(w, h) < 300:
        return img
    f = int(w / 150) if w > h else int(h / 150)
    return img[::f, ::f]


def feature_stats(x: np.ndarray) -> dict:
    """min/max/mean/std/count/quantiles over axis 0 of [n, d] (np.std is the population std, as in LeRobot)."""
    x = np.asarray(x, np.float64)
    out = {'min': x.min(0), 'max': x.max(0), 'mean': x.mean(0), 'std': x.std(0), 'count': np.array([len(x)])}
    for q in QUANTILES:
        out[f'q{int(q * 100):02d}'] = np.quantile(x, q, axis=0) if len(x) > 1 else x.mean(0)
    return out


def image_stats(samples: np.ndarray) -> dict:
    """Per-channel stats in [0, 1] of sampled frames [n, h, w, 3] uint8 -> arrays of shape [3, 1, 1]."""
    pixels = samples.reshape(-1, samples.shape[-1]).astype(np.float64) / 255.0
    stats = feature_stats(pixels)
    stats['count'] = np.array([len(samples)])  # frames, not pixels (LeRobot)
    return {k: v if k == 'count' else v.reshape(-1, 1, 1) for k, v in stats.items()}


def vector_columns(state, action, ep_index, first_index, task_index, fps) -> dict:
    n = len(state)
    frame = np.arange(n, dtype=np.int64)
    return {
        STATE_KEY: np.asarray(state, np.float32),
        ACTION_KEY: np.asarray(action, np.float32),
        'timestamp': (frame / fps).astype(np.float32),
        'frame_index': frame,
        'episode_index': np.full(n, ep_index, np.int64),
        'index': first_index + frame,
        'task_index': np.full(n, task_index, np.int64),
    }


def stats_for(columns: dict, image_samples: np.ndarray) -> dict:
    out = {k: feature_stats(v.reshape(len(v), -1)) for k, v in columns.items()}
    out[CAMERA_KEY] = image_stats(image_samples)
    return out


def _jsonable(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


# ---------------------------------------------------------------- video (video_utils.py)
@contextlib.contextmanager
def kept_scheduling():
    """Undo what an encoder does to the process's scheduling while it starts.

    SVT-AV1 (LeRobot's default codec), run as root, moves the calling thread to
    SCHED_FIFO 99, and every thread it then starts inherits that: a conversion
    would run its encoder at real-time priority and could starve the machine.
    Every thread that changed while the encoder started is put back.
    """
    if not hasattr(os, 'sched_getscheduler'):
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        for task in os.listdir('/proc/self/task'):
            tid = int(task)
            try:
                if (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority) != (
                        policy, param.sched_priority):
                    os.sched_setscheduler(tid, policy, param)
            except OSError:
                pass  # the thread ended, or we may not change it



class VideoFiles:
    """One growing mp4 per file index; a new file starts at an episode boundary past the size limit."""

    def __init__(self, root: Path, fps: int, hw: tuple[int, int], vcodec: str, crf: int, gop: int,
                 max_mb: float = VIDEO_FILES_SIZE_IN_MB):
        self.root, self.fps, self.hw = root, fps, hw
        self.vcodec, self.crf, self.gop, self.max_mb = vcodec, crf, gop, max_mb
        self.chunk, self.file = 0, 0
        self.container = self.stream = None
        self.frames_in_file = 0

    @property
    def path(self) -> Path:
        return self.root / VIDEO_PATH.format(video_key=CAMERA_KEY, chunk_index=self.chunk, file_index=self.file)

    def _open(self):
        import av
        os.environ.setdefault('SVT_LOG', '1')  # SVT-AV1 prints its banner to stderr otherwise
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), 'w')
        options = {'g': str(self.gop), 'crf': str(self.crf)}
        self.stream = self.container.add_stream(self.vcodec, rate=self.fps, options=options)
        self.stream.height, self.stream.width = self.hw
        self.stream.pix_fmt = 'yuv420p'
        self.frames_in_file = 0

    def start_episode(self) -> tuple[int, int, float]:
        """(chunk, file, from_timestamp) of the episode about to be written."""
        written = self.path.stat().st_size if self.path.exists() else 0  # the muxer writes lazily
        if self.container is not None and written / 2**20 >= self.max_mb:
            self.close()
            self.chunk, self.file = next_file(self.chunk, self.file)
        if self.container is None:
            self._open()
        return self.chunk, self.file, self.frames_in_file / self.fps

    def write(self, rgb: np.ndarray):
        import av
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts = self.frames_in_file
        if self.frames_in_file == 0:  # the encoder starts (and SVT-AV1 its threads) on the first frame
            with kept_scheduling():
                packets = self.stream.encode(frame)
        else:
            packets = self.stream.encode(frame)
        for packet in packets:
            self.container.mux(packet)
        self.frames_in_file += 1

    def close(self):
        if self.container is not None:
            with kept_scheduling():  # a flush of a file with no frame starts the encoder too
                packets = self.stream.encode()
            for packet in packets:
                self.container.mux(packet)
            self.container.close()
            self.container = self.stream = None


def video_info(path: Path) -> dict:
    """video_utils.get_video_info: what LeRobot stores under features[<key>]['info']."""
    import av
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        info = {
            'video.height': s.height, 'video.width': s.width, 'video.codec': s.codec.canonical_name,
            'video.pix_fmt': s.pix_fmt, 'video.is_depth_map': False, 'video.fps': int(s.base_rate),
            'video.channels': 3,
        }
        info['has_audio'] = len(container.streams.audio) > 0
    return info


# ---------------------------------------------------------------- parquet
def _arrow_column(values: np.ndarray):
    import pyarrow as pa
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(values.reshape(-1))  # datasets Sequence(length=d) == fixed-size list
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def write_data_file(path: Path, columns_list: list[dict]):
    import pyarrow as pa
    import pyarrow.parquet as pq
    keys = list(columns_list[0])
    merged = {k: np.concatenate([c[k] for c in columns_list]) for k in keys}
    table = pa.table({k: _arrow_column(merged[k]) for k in keys})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression='snappy')


def write_tasks(root: Path, tasks: list[str]):
    """What pandas' DataFrame({'task_index': ...}, index=tasks).to_parquet writes, without pandas."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    pandas_meta = {
        'index_columns': ['__index_level_0__'],
        'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                            'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
        'columns': [
            {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
             'numpy_type': 'int64', 'metadata': None},
            {'name': None, 'field_name': '__index_level_0__', 'pandas_type': 'unicode',
             'numpy_type': 'object', 'metadata': None},
        ],
        'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.2.3',
    }
    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      '__index_level_0__': pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({b'pandas': json.dumps(pandas_meta).encode()})
    path = root / TASKS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_episodes(root: Path, rows: list[dict]):
    """meta/episodes: pa.Table.from_pydict of python lists, as LeRobotDatasetMetadata does."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.Table.from_pydict({k: [r[k] for r in rows] for k in rows[0]})
    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression='snappy')


def episode_row(ep_index, task, length, data_cf, from_index, video_cf, from_ts, fps, stats) -> dict:
    row = {
        'episode_index': ep_index, 'tasks': [task], 'length': length,
        'data/chunk_index': data_cf[0], 'data/file_index': data_cf[1],
        'dataset_from_index': from_index, 'dataset_to_index': from_index + length,
        f'videos/{CAMERA_KEY}/chunk_index': video_cf[0], f'videos/{CAMERA_KEY}/file_index': video_cf[1],
        f'videos/{CAMERA_KEY}/from_timestamp': from_ts,
        f'videos/{CAMERA_KEY}/to_timestamp': from_ts + length / fps,
    }
    for key, st in _jsonable(stats).items():
        for name, value in st.items():
            row[f'stats/{key}/{name}'] = value
    row['meta/episodes/chunk_index'] = 0
    row['meta/episodes/file_index'] = 0
    return row


def features(hw: tuple[int, int], vinfo: dict) -> dict:
    return {
        CAMERA_KEY: {'dtype': 'video', 'shape': [hw[0], hw[1], 3], 'names': ['height', 'width', 'channels'],
                     'info': vinfo},
        STATE_KEY: {'dtype': 'float32', 'shape': [2], 'names': list(NAMES)},
        ACTION_KEY: {'dtype': 'float32', 'shape': [2], 'names': list(NAMES)},
        **DEFAULT_FEATURES,
    }


def write_info(root: Path, *, fps, hw, vinfo, episodes, frames, tasks, robot_type='rover'):
    info = {
        'codebase_version': CODEBASE_VERSION,
        'robot_type': robot_type,
        'total_episodes': episodes,
        'total_frames': frames,
        'total_tasks': tasks,
        'chunks_size': CHUNKS_SIZE,
        'data_files_size_in_mb': DATA_FILES_SIZE_IN_MB,
        'video_files_size_in_mb': VIDEO_FILES_SIZE_IN_MB,
        'fps': int(fps),
        'splits': {'train': f'0:{episodes}'},
        'data_path': DATA_PATH,
        'video_path': VIDEO_PATH,
        'features': features(hw, vinfo),
    }
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    (root / 'meta' / 'info.json').write_text(json.dumps(info, indent=4))


def write_stats(root: Path, stats: dict):
    (root / 'meta' / 'stats.json').write_text(json.dumps(_jsonable(stats), indent=4))

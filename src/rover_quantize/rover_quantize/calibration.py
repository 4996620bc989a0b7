"""Calibration inputs: frames from bags or synthetic road scenes, fed to ONNX Runtime."""
from __future__ import annotations

import contextlib
import io

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from onnxruntime.quantization.calibrate import HistogramCollector


def synthetic_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """n road-like RGB frames (uint8 NHWC): sky, ground, lane lines that curve and shift.

    Not a real camera, but it has the structure (edges, gradients, texture) a ResNet
    reacts to, which pure noise does not, and sensor noise (sigma 3 grey levels) like a
    real camera: perfectly flat regions never occur in camera frames and would make
    quantization errors unrealistically correlated. Used when no bag is given and for
    the bench.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), np.uint8)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    for i in range(n):
        horizon = int(h * rng.uniform(0.3, 0.5))
        sky_top = rng.uniform(150, 230, 3)
        sky = sky_top[None, None, :] * (1.0 - 0.3 * yy[:horizon, :, None])
        ground_color = rng.uniform(60, 120, 3)
        img = np.empty((h, w, 3), np.float32)
        img[:horizon] = np.broadcast_to(sky, (horizon, w, 3))
        img[horizon:] = ground_color
        img[horizon:] += rng.normal(0, 12, (h - horizon, w, 1)).astype(np.float32)  # asphalt texture
        shift = rng.uniform(-0.25, 0.25) * w
        curve = rng.uniform(-0.6, 0.6) * w
        thickness = max(1, w // 80)
        for side in (-1, 1):
            pts = []
            for t in np.linspace(0, 1, 24):
                y = horizon + t * (h - 1 - horizon)
                x = w / 2 + shift * t + side * (0.05 + 0.45 * t) * w + curve * (1 - t) ** 2
                pts.append((int(x), int(y)))
            cv2.polylines(img, [np.array(pts, np.int32)], False, (235, 235, 220), thickness)
        for _ in range(rng.integers(1, 4)):  # a few obstacles / cones
            cx, cy = int(rng.uniform(0, w)), int(rng.uniform(horizon, h))
            r = max(2, int(rng.uniform(0.01, 0.05) * w))
            cv2.circle(img, (cx, cy), r, tuple(float(c) for c in rng.uniform(0, 255, 3)), -1)
        brightness = rng.uniform(0.7, 1.2)
        img = img * brightness + rng.normal(0.0, 3.0, (h, w, 3)).astype(np.float32)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def synthetic_states(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """[steering, throttle]-like states in [-1, 1] (float32 [n, dim])."""
    rng = np.random.default_rng(seed + 100)
    return rng.uniform(-1.0, 1.0, (n, dim)).astype(np.float32)


class FeedsReader(CalibrationDataReader):
    """ORT CalibrationDataReader over a prepared list of feed dicts (optionally a sub-range)."""

    def __init__(self, feeds: list[dict], bar=None):
        self.feeds = feeds
        self.bar = bar
        self.set_range(0, len(feeds))

    def set_range(self, start_index: int, end_index: int):
        self._pos, self._end = start_index, min(end_index, len(self.feeds))

    def get_next(self):
        if self._pos >= self._end:
            return None
        feed = self.feeds[self._pos]
        self._pos += 1
        if self.bar is not None:
            self.bar.update(1)
        return feed

    def rewind(self):
        self.set_range(0, len(self.feeds))

    def __len__(self):
        return len(self.feeds)


def uniform_bin_counts(values: np.ndarray, edges: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """np.histogram(values, bins=edges) for uniform edges, in O(1) per value: the bin is computed
    from the width, then moved by one where float rounding put it on the wrong side of one of
    the given edges, so the counts are the same as a search over the edges (values outside
    [edges[0], edges[-1]] and NaN are not counted; the last bin includes its right edge, as
    np.histogram's does). Edges that are not uniform go to np.histogram itself."""
    n = len(edges) - 1
    widths = np.diff(edges.astype(np.float64))
    if n < 1 or widths.min() <= 0 or widths.max() - widths.min() > 0.01 * widths.mean():
        return np.histogram(values, bins=edges)[0]
    first, last = edges[0], edges[-1]
    # in the values' own precision (float32: half the memory traffic); the fix-up below
    # absorbs its rounding, which is far below one bin
    norm = np.asarray(n / (float(last) - float(first)), dtype=values.dtype)
    counts = np.zeros(n, np.int64)
    for start in range(0, values.size, block):  # blocks that stay in cache
        x = values[start:start + block]
        if not (x.min() >= first and x.max() <= last):  # NaN fails this too
            x = x[(x >= first) & (x <= last)]
        idx = ((x - first) * norm).astype(np.intp)
        np.minimum(idx, n - 1, out=idx)
        idx -= x < edges[idx]
        idx += (x >= edges[idx + 1]) & (idx != n - 1)
        counts += np.bincount(idx, minlength=n)
    return counts


class UniformHistogramCollector(HistogramCollector):
    """ORT's HistogramCollector, with the histograms of |x| (Percentile) merged in O(1) per value.

    To merge a chunk into a tensor's histogram, ORT hands np.histogram the histogram's array
    of bin edges; NumPy then sorts the chunk to search the edges. Measured on demo_trained,
    64 frames: 9.2 s of the calibration's 14.7 s went to that sort, 2.5 s to the model runs.
    ORT's edges are uniform (it extends them by its own bin width), so uniform_bin_counts
    gives the same counts without the sort; edges, min/max and the ranges stay ORT's.
    Entropy and Distribution use ORT's code as it is.
    """

    def collect_absolute_value(self, name_to_arr):
        for tensor, data_arr in name_to_arr.items():
            data = np.asarray(data_arr).ravel()
            if tensor not in self.histogram_dict or data.size == 0:
                super().collect_absolute_value({tensor: data})  # ORT's first histogram is uniform already
                continue
            min_value, max_value = np.nanmin(data), np.nanmax(data)
            data = np.absolute(data)
            old_hist, edges, old_min, old_max = self.histogram_dict[tensor]
            amax = np.nanmax(data)
            if amax > edges[-1]:  # more bins of the same width, as ORT adds them
                width = edges[1] - edges[0]
                edges = np.hstack((edges, np.arange(edges[-1] + width, amax + width, width)))
            hist = uniform_bin_counts(data, edges)
            hist[:len(old_hist)] += old_hist
            self.histogram_dict[tensor] = (hist, edges.astype(data.dtype), min(old_min, min_value),
                                           max(old_max, max_value))


# Our methods that are ORT methods with other options or a post-processing step: the calibration
# cache (and quantize_static's calibrate_method, which must match it) carries the ORT method.
ORT_METHOD = {'MinMaxAverage': 'MinMax', 'MSE': 'Percentile'}


def ort_method(method: str) -> str:
    return ORT_METHOD.get(method, method)


def mse_range(hist: np.ndarray, edges: np.ndarray, lowest: float, highest: float,
              levels: int = 256) -> tuple[float, float]:
    """The range [lo, hi] of one tensor that minimizes the expected squared quantization error,
    from a histogram of its absolute values (edges from 0): values beyond the threshold T are
    clipped to it (error (|x| - T)^2), values inside get the rounding noise of a uniform
    quantizer over [lo, hi] (step^2 / 12). lo is 0 for a non-negative tensor (its first bin holds
    the exact zeros ReLU makes, which round to themselves) and max(lowest, -T) otherwise.
    Every bin edge is tried, vectorized with tail sums: O(bins)."""
    n = hist.astype(np.float64)
    c = (edges[:-1].astype(np.float64) + edges[1:]) / 2
    t = edges[1:].astype(np.float64)  # candidate thresholds: the upper edge of each bin
    # tail sums over the bins above each candidate (bin i is clipped by thresholds t[k], k < i)
    s0, s1, s2 = (np.concatenate([np.cumsum((n * c ** p)[::-1])[::-1][1:], [0.0]]) for p in (0, 1, 2))
    clip = s2 - 2 * t * s1 + t * t * s0
    non_negative = lowest >= 0
    lo = np.zeros_like(t) if non_negative else np.maximum(lowest, -t)
    hi = np.minimum(highest, t)
    inside = np.cumsum(n) - (n[0] if non_negative else 0.0)
    step = (hi - lo) / (levels - 1)
    k = int(np.argmin(clip + inside * step * step / 12))
    return float(lo[k]), float(hi[k])


def _mse_ranges(histograms: dict, levels: int = 256):
    """TensorsData of MSE-optimal ranges from a PercentileCalibrater's |x| histograms."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    data = {}
    for tensor, (hist, edges, lowest, highest) in histograms.items():
        lo, hi = mse_range(hist, edges, float(lowest), float(highest), levels)
        data[tensor] = TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32),
                                  hist=hist, bins=edges.astype(np.float32))
    return TensorsData(CalibrationMethod.Percentile, data)


def calibrate_ranges(model_path, feeds: list[dict], cache_path, method: str = 'MinMax',
                     chunk: int = 8, progress: bool = True, extra_options: dict | None = None,
                     op_types=None, mse_cache_path=None):
    """Activation ranges of the tensors the quantizer needs, saved as an ORT calibration cache.

    MinMax: the augmented model reduces each tensor to its min/max per frame inside the graph,
    so all frames go through in one pass; 'MinMaxAverage' averages the per-frame extremes
    (ORT's CalibMovingAverage) instead of taking the extreme of all frames, which is less
    driven by a single outlier frame. Histogram methods (Percentile, Entropy, MSE) keep whole
    tensors, so frames go through in chunks whose histograms are merged (ORT's own
    CalibMaxIntermediateOutputs option drops data instead). MSE takes the Percentile
    calibrator's histograms of |x| and picks each tensor's range with mse_range; with
    mse_cache_path, a Percentile calibration also saves the MSE ranges of the same histograms
    there. The cache is handed to quantize_static(calibration_cache_path=...) so several
    quantization variants can be tried without calibrating again.
    """
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data
    from tqdm import tqdm
    ort_name = ort_method(method)
    # create_calibrator's own option names (quantize_static calls these CalibMovingAverage...)
    options = {'moving_average': method == 'MinMaxAverage', 'averaging_constant': 0.5}
    options.update(extra_options or {})
    bar = tqdm(total=len(feeds), desc=f'calibrating ({method})', unit='frame', leave=False,
               disable=not progress)
    # beside the cache (the build's own work directory), not in /tmp, so a killed build leaves nothing
    with tempfile.TemporaryDirectory(prefix='rover_calib.', dir=Path(cache_path).parent) as tmp:
        calibrator = create_calibrator(Path(model_path), list(op_types) if op_types else None,
                                       augmented_model_path=str(Path(tmp) / 'augmented.onnx'),
                                       calibrate_method=getattr(CalibrationMethod, ort_name),
                                       extra_options=options)
        if ort_name == 'Percentile':
            calibrator.collector = UniformHistogramCollector(
                method=calibrator.method, symmetric=calibrator.symmetric, num_bins=calibrator.num_bins,
                num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
                scenario=calibrator.scenario)
        reader = FeedsReader(feeds, bar)
        step = len(feeds) if ort_name == 'MinMax' else chunk
        with contextlib.redirect_stdout(io.StringIO()):  # histogram calibrators print per chunk
            for start in range(0, len(feeds), step):
                reader.set_range(start, start + step)
                calibrator.collect_data(reader)
            ranges = (_mse_ranges(calibrator.collector.histogram_dict) if method == 'MSE'
                      else calibrator.compute_data())
            if mse_cache_path is not None and ort_name == 'Percentile':
                save_tensors_data(_mse_ranges(calibrator.collector.histogram_dict), Path(mse_cache_path))
        del calibrator
    bar.close()
    save_tensors_data(ranges, Path(cache_path))
    return ranges

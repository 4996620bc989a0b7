"""The Percentile calibration's histogram merge: ours bins each value in O(1) and must give
exactly what ORT's own HistogramCollector gives."""
import numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector

from rover_quantize.calibration import UniformHistogramCollector, uniform_bin_counts


def _collectors():
    args = dict(method='percentile', symmetric=True, num_bins=2048, num_quantized_bins=128,
                percentile=99.999, scenario='same')
    return HistogramCollector(**args), UniformHistogramCollector(**args)


def _chunks(seed=0):
    """Chunks like a calibration's: post-ReLU and signed tensors whose range grows from chunk to
    chunk (the merge then adds bins), a tensor that is all zeros in its first chunk, and NaN."""
    rng = np.random.default_rng(seed)
    for i in range(6):
        grow = 1.0 + 0.4 * i
        relu = np.maximum(rng.laplace(0.0, grow, (8, 64, 45, 80)), 0).astype(np.float32)
        signed = rng.standard_normal((8, 242, 512)).astype(np.float32) * grow
        late = np.zeros((8, 1000), np.float32) if i == 0 else rng.uniform(0, grow, (8, 1000)).astype(np.float32)
        if i == 3:
            signed[0, 0, 0] = np.nan
        yield {'relu': list(relu), 'signed': list(signed), 'late': list(late)}


def test_uniform_merge_gives_ort_s_histograms_and_ranges():
    ort, ours = _collectors()
    for chunk in _chunks():
        ort.collect(chunk)
        ours.collect(chunk)
    assert ort.histogram_dict.keys() == ours.histogram_dict.keys()
    for tensor, (hist, edges, lo, hi) in ort.histogram_dict.items():
        our_hist, our_edges, our_lo, our_hi = ours.histogram_dict[tensor]
        assert our_edges.dtype == edges.dtype and np.array_equal(our_edges, edges), tensor  # ORT's bins
        assert (our_lo, our_hi) == (lo, hi), tensor
        assert np.array_equal(our_hist, hist), (tensor, np.abs(our_hist - hist).sum())  # the same counts
    assert len(ours.histogram_dict['relu'][1]) > 2049  # the range grew: bins were added
    ranges_ort, ranges_ours = ort.compute_collection_result(), ours.compute_collection_result()
    for tensor, result in ranges_ort.items():  # (lowest, highest, ...): the calibration's ranges
        assert [float(v) for v in ranges_ours[tensor]] == [float(v) for v in result], tensor


def test_uniform_bin_counts_equals_np_histogram_over_the_edges():
    rng = np.random.default_rng(1)
    width = np.float32(0.01)
    edges = np.hstack((np.linspace(0, 2, 201).astype(np.float32),
                       np.arange(np.float32(2) + width, np.float32(3.5), width)))  # as ORT extends them
    values = np.abs(rng.standard_normal(500_000)).astype(np.float32)
    values[:1000] = rng.choice(edges, 1000)  # exactly on an edge, both ends included
    values[1000] = np.nan
    expected, _ = np.histogram(values[~np.isnan(values)], bins=edges)
    assert np.array_equal(uniform_bin_counts(values, edges, block=65_536), expected)


def test_uneven_edges_are_counted_by_np_histogram():
    rng = np.random.default_rng(2)
    edges = np.concatenate([np.linspace(0, 1, 101), np.linspace(1.05, 3, 40)]).astype(np.float32)  # two widths
    values = np.abs(rng.standard_normal(100_000)).astype(np.float32)
    assert np.array_equal(uniform_bin_counts(values, edges), np.histogram(values, bins=edges)[0])

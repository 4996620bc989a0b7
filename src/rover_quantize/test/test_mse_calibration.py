"""The MSE calibration method: per-tensor ranges with the least expected quantization error."""
import numpy as np
import pytest

from rover_quantize.calibration import mse_range, ort_method


def _abs_hist(x, bins=2048):
    hist, edges = np.histogram(np.abs(x), bins=bins)
    return hist, edges.astype(np.float32)


def _quant_mse(x, lo, hi, levels=256):
    """Squared error of an asymmetric uniform quantizer over [lo, hi] (zero exact), like ORT's."""
    scale = (hi - lo) / (levels - 1)
    zp = np.round(-lo / scale)
    q = np.clip(np.round(x / scale) + zp, 0, levels - 1)
    return float(np.mean(((q - zp) * scale - x) ** 2))


@pytest.mark.parametrize('signed', [False, True])
def test_mse_range_beats_min_max_and_is_near_the_brute_force_optimum(signed):
    rng = np.random.default_rng(0)
    x = rng.laplace(0.0, 1.0, 200_000).astype(np.float32)  # heavy tails, where clipping pays
    if not signed:
        x = np.maximum(x, 0)                                # post-ReLU: half exact zeros
    hist, edges = _abs_hist(x)
    lo, hi = mse_range(hist, edges, float(x.min()), float(x.max()))
    assert hi < float(x.max())                              # it clips the tail
    assert (lo == 0.0) if not signed else (lo < 0)
    chosen = _quant_mse(x, lo, hi)
    assert chosen < 0.9 * _quant_mse(x, min(float(x.min()), 0.0), float(x.max()))
    # brute force over thresholds on the data itself: within 10 % of the best
    best = min(_quant_mse(x, 0.0 if not signed else max(float(x.min()), -t), min(float(x.max()), t))
               for t in np.linspace(0.5, float(np.abs(x).max()), 200))
    assert chosen < 1.1 * best


def test_mse_range_keeps_a_bounded_tensor_whole():
    # uniform values have no tail worth clipping: the range stays (nearly) min..max
    x = np.random.default_rng(1).uniform(0, 6, 100_000).astype(np.float32)
    hist, edges = _abs_hist(x)
    lo, hi = mse_range(hist, edges, float(x.min()), float(x.max()))
    assert lo == 0.0 and hi > 0.97 * float(x.max())


def test_mse_is_stored_as_percentile_for_onnxruntime():
    # quantize_static checks that its calibrate_method matches the cache's
    assert ort_method('MSE') == 'Percentile' and ort_method('MinMaxAverage') == 'MinMax'
    assert ort_method('Entropy') == 'Entropy'

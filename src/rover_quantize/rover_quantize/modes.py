"""Quantization modes and calibration methods: the one list the CLI, the pipeline and the
quantizer use (and the values `quantization.mode` / `calibration_method` take in a manifest)."""

MODES = {
    'static': 'QDQ INT8, activations calibrated on frames, weights per channel (default)',
    'dynamic': 'weights INT8, activations quantized at run time (MatMul/Gemm only)',
    'mixed': 'transformer INT8 (static), vision backbone FP32',
    'mixed-backbone': 'vision backbone INT8 (static), transformer FP32',
}
DEFAULT_MODE = 'static'
# An "INT8 model" must run most of its arithmetic in INT8; keeping nearly everything FP32 to
# pass the accuracy bar would be an FP32 model under an INT8 name.
MIN_INT8_MAC_FRACTION = {'static': 0.5, 'mixed-backbone': 0.3, 'mixed': 0.01, 'dynamic': 0.0}

CALIBRATION_METHODS = {
    'Percentile': 'histogram, 99.999th percentile (default)',
    'auto': 'Percentile or MSE from one histogram pass, whichever gives the all-INT8 model the lower '
            'error on the selection frames (the manifest names the one used)',
    'MinMax': 'extremes over all frames (fastest to calibrate)',
    'MinMaxAverage': 'per-frame extremes averaged (less driven by one outlier frame)',
    'Entropy': 'histogram, KL-divergence optimal range',
    'MSE': 'histogram, per-tensor range with the least expected squared error (clipping + rounding)',
}
# Measured (bench quantize, 2 threads, VNNI, 64 calibration frames): MSE ranges took demo_trained
# from 59 % to 89 % of multiply-adds in INT8, but synthetic from 89 % to 83 %, and demo_trained
# with 200 frames only to 61 %; 'auto' (the lower all-INT8 selection error) picked Percentile on
# demo_trained. Not robust enough to be the default yet.
AUTO_METHOD = 'auto'
AUTO_METHODS = ('Percentile', 'MSE')
DEFAULT_CALIBRATION_METHOD = 'Percentile'

# The accuracy bar on held-out frames, in normalized action units (validation.bar in a manifest).
BAR_MSE = 1e-3
BAR_MAX = 5e-2

"""The bench's checkpoints: LeRobot-style initialisation statistics, and the bench line format."""
import math

import numpy as np
import pytest
from safetensors.numpy import load_file

from rover_quantize.bench import format_line
from rover_quantize.checkpoint import SMALL_CONFIG, load_checkpoint, write_random_checkpoint


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench_ckpt')
    lerobot = write_random_checkpoint(root / 'lerobot', seed=3, init='lerobot', **SMALL_CONFIG)
    synthetic = write_random_checkpoint(root / 'synthetic', seed=3, **SMALL_CONFIG)
    return load_file(str(lerobot / 'model.safetensors')), load_file(str(synthetic / 'model.safetensors')), lerobot


def _backbone_bn(tensors, stat):
    # FrozenBatchNorm2d buffers: backbone.bn1, layerN.M.bnK, layerN.M.downsample.1
    return {k: v for k, v in tensors.items() if k.startswith('model.backbone.') and k.endswith('.' + stat)
            and ('bn' in k or 'downsample.1' in k)}


def test_lerobot_init_frozen_bn_is_a_fresh_torchvision_one(checkpoints):
    lerobot, synthetic, _ = checkpoints
    expected = {'weight': 1.0, 'bias': 0.0, 'running_mean': 0.0, 'running_var': 1.0}
    for stat, value in expected.items():
        bns = _backbone_bn(lerobot, stat)
        assert len(bns) == 20, sorted(bns)  # ResNet-18: stem + 16 block BNs + 3 downsample BNs
        for key, tensor in bns.items():
            np.testing.assert_array_equal(tensor, value, err_msg=key)
    # the synthetic writer sets trained-looking statistics instead: the option must change them
    assert not np.allclose(_backbone_bn(synthetic, 'running_var')['model.backbone.layer4.1.bn2.running_var'], 1.0)


def test_lerobot_init_convs_are_kaiming_normal_fan_out(checkpoints):
    lerobot, _, _ = checkpoints
    convs = {k: v for k, v in lerobot.items() if k.startswith('model.backbone.') and v.ndim == 4}
    assert len(convs) == 20
    for key, w in convs.items():
        fan_out = w.shape[0] * w.shape[2] * w.shape[3]
        std = math.sqrt(2.0 / fan_out)
        assert abs(float(w.std()) / std - 1) < 0.1, key  # >= 8192 samples per tensor
        assert abs(float(w.mean())) < 0.1 * std, key
    # normal, not uniform: a uniform with this std would never exceed sqrt(3) * std
    big = convs['model.backbone.layer4.1.conv2.weight']
    assert float(np.abs(big).max()) > 3.5 * math.sqrt(2.0 / (big.shape[0] * 9))


def test_lerobot_init_transformer_is_xavier_uniform(checkpoints):
    lerobot, _, _ = checkpoints
    matrices = {k: v for k, v in lerobot.items()
                if k.startswith(('model.encoder.', 'model.decoder.')) and v.ndim > 1}
    assert any('in_proj_weight' in k for k in matrices) and any('linear1' in k for k in matrices)
    for key, w in matrices.items():
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert float(np.abs(w).max()) <= bound * (1 + 1e-6), key
        assert float(np.abs(w).max()) > 0.95 * bound, key
        assert abs(float(w.std()) / (bound / math.sqrt(3)) - 1) < 0.1, key
    # one-dimensional parameters are left alone (LayerNorm weight 1, bias 0)
    np.testing.assert_array_equal(lerobot['model.encoder.layers.0.norm1.weight'], 1.0)
    np.testing.assert_array_equal(lerobot['model.encoder.layers.0.norm1.bias'], 0.0)


def test_lerobot_init_checkpoint_loads_strictly(checkpoints):
    _, _, path = checkpoints
    ck = load_checkpoint(path)
    assert ck.cfg.dim_model == SMALL_CONFIG['dim_model']


def test_unknown_init_is_refused(tmp_path):
    with pytest.raises(ValueError, match='init'):
        write_random_checkpoint(tmp_path / 'x', init='imagenet', **SMALL_CONFIG)


def test_bench_line_has_the_issue_keys():
    result = {'checkpoint': 'lerobot_init', 'int8_mac_fraction': 0.512, 'mse': 2e-4, 'max_error': 0.04,
              'passed': True, 'int8_ms': 100.0, 'ort_fp32_ms': 150.0, 'torch_fp32_ms': 250.0,
              'int8_p95_ms': 110.0, 'ort_fp32_p95_ms': 160.0, 'torch_fp32_p95_ms': 260.0,
              'speedup_vs_ort_fp32': 1.5, 'speedup_vs_torch': 2.5, 'threads': 2, 'rounds': 20,
              'input': '360x640', 'params': 34e6, 'macs': 13.5e9, 'mode': 'static', 'calibration': 'synthetic',
              'ranges': 'MSE', 'fp32_groups': ['backbone.stem'], 'target_met': False, 'build_s': 100.0}
    line = format_line(result)
    assert line.startswith('bench quantize: checkpoint=lerobot_init ')
    fields = dict(part.split('=', 1) for part in line[len('bench quantize: '):].split())
    assert fields['int8_mac_percent'] == '51.2'
    assert fields['passed'] == 'True' and fields['threads'] == '2' and fields['ranges'] == 'MSE'
    assert fields['speedup_vs_ort_fp32'] == '1.50' and fields['speedup_vs_torch'] == '2.50'
    for key in ('mse', 'max_error', 'int8_ms', 'ort_fp32_ms', 'torch_fp32_ms'):
        assert key in fields
    assert format_line({'checkpoint': 'demo_trained', 'skipped': 'rover'}) == \
        'bench quantize: checkpoint=demo_trained skipped=missing_rover'


@pytest.mark.slow
def test_qdq_debug_ranks_tensors_by_sqnr(built):
    from rover_quantize.bench import format_debug_line, qdq_debug
    report = qdq_debug(built.model_dir, frames=2, worst=3)
    assert report['tensors'] > 10
    for key in ('worst_local', 'worst_vs_fp32', 'worst_weights'):
        values = [v for _, v in report[key]]
        assert len(values) == 3 and values == sorted(values) and all(np.isfinite(values)), key
    assert report['weights'] and not [n for n in report['weights'] if 'bias' in n], report['weights']
    # a ReLU the quantizer folded into an unsigned range is not quantization noise: 8-bit
    # activations stay well above 10 dB (counting the clamped negatives gives about 2-3 dB)
    relus = {t: e['local'] for t, e in report['all'].items() if 'Relu' in t}
    assert relus and min(relus.values()) > 10, relus
    assert format_debug_line({'checkpoint': 'x', **report}).startswith('bench quantize_sqnr: checkpoint=x ')

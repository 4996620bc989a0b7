"""LeRobot checkpoint layout: key names, both normalization layouts, strict matching, bad files."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import TINY
from rover_quantize.act_config import make_config
from rover_quantize.checkpoint import (MODEL_FILE, POST_STATE, PRE_STATE, lerobot_state_dict_keys,
                                       load_checkpoint, write_random_checkpoint)
from rover_quantize.errors import CheckpointError
from rover_quantize.export import policy_graph


def _copy(src, tmp_path, name='ck'):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_keys_follow_lerobot_names(tiny_ckpt):
    keys = set(load_file(str(tiny_ckpt / MODEL_FILE)))
    # torchvision ResNet behind IntermediateLayerGetter: conv1/bn1/layer1..4, no fc/avgpool,
    # FrozenBatchNorm2d buffers without num_batches_tracked
    for key in ('model.backbone.conv1.weight', 'model.backbone.bn1.running_var',
                'model.backbone.layer1.0.conv2.weight', 'model.backbone.layer1.1.bn2.bias',
                'model.backbone.layer2.0.downsample.0.weight', 'model.backbone.layer2.0.downsample.1.running_mean',
                'model.backbone.layer4.1.bn2.weight',
                'model.encoder.layers.0.self_attn.in_proj_weight', 'model.encoder.layers.0.self_attn.in_proj_bias',
                'model.encoder.layers.0.self_attn.out_proj.weight', 'model.encoder.layers.0.linear1.weight',
                'model.encoder.layers.0.norm2.bias', 'model.decoder.layers.0.multihead_attn.in_proj_weight',
                'model.decoder.layers.0.norm3.weight', 'model.decoder.norm.weight',
                'model.encoder_img_feat_input_proj.weight', 'model.encoder_robot_state_input_proj.weight',
                'model.encoder_latent_input_proj.weight', 'model.encoder_1d_feature_pos_embed.weight',
                'model.decoder_pos_embed.weight', 'model.action_head.bias',
                'model.vae_encoder.layers.0.self_attn.in_proj_weight', 'model.vae_encoder_cls_embed.weight',
                'model.vae_encoder_robot_state_input_proj.weight', 'model.vae_encoder_action_input_proj.weight',
                'model.vae_encoder_latent_output_proj.weight', 'model.vae_encoder_pos_enc'):
        assert key in keys, key
    assert not any('fc.' in k or 'num_batches_tracked' in k or 'avgpool' in k for k in keys)
    assert 'model.encoder.norm.weight' not in keys  # only with pre_norm
    cfg = make_config(**{k: v for k, v in TINY.items()})
    assert keys == set(lerobot_state_dict_keys(cfg))
    # new layout: stats live in the processor files, not in model.safetensors
    assert not any(k.startswith(('normalize_inputs', 'unnormalize_outputs')) for k in keys)
    pre = load_file(str(tiny_ckpt / PRE_STATE))
    assert pre['observation.images.front.mean'].shape == (3, 1, 1)
    assert {'observation.state.mean', 'observation.state.std', 'action.mean', 'action.std'} <= set(pre)
    assert set(load_file(str(tiny_ckpt / POST_STATE))) >= {'action.mean', 'action.std'}
    config = json.loads((tiny_ckpt / 'config.json').read_text())
    assert config['type'] == 'act' and config['input_features']['observation.state'] == {'type': 'STATE', 'shape': [2]}
    assert config['normalization_mapping'] == {'VISUAL': 'MEAN_STD', 'STATE': 'MEAN_STD', 'ACTION': 'MEAN_STD'}


def test_old_layout_keeps_stats_in_model_file(tiny_ckpt_old):
    keys = set(load_file(str(tiny_ckpt_old / MODEL_FILE)))
    assert 'normalize_inputs.buffer_observation_images_front.mean' in keys
    assert 'normalize_inputs.buffer_observation_state.std' in keys
    assert 'normalize_targets.buffer_action.mean' in keys
    assert 'unnormalize_outputs.buffer_action.std' in keys
    assert not (tiny_ckpt_old / PRE_STATE).exists()


def test_both_layouts_load_to_the_same_model(tiny_ckpt, tiny_ckpt_old):
    new, old = load_checkpoint(tiny_ckpt), load_checkpoint(tiny_ckpt_old)
    assert (new.layout, old.layout) == ('new', 'old')
    assert any(k.startswith('model.vae_encoder') for k in new.ignored_keys)
    for name in ('image', 'state', 'action'):
        for a, b in zip(new.norm[name], old.norm[name]):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    image = torch.randint(0, 256, (1, 96, 128, 3), dtype=torch.uint8)
    state = torch.tensor([[0.2, -0.5]])
    with torch.no_grad():
        out_new = policy_graph(new, fused=False)(image, state)
        out_old = policy_graph(old, fused=False)(image, state)
    assert out_new.shape == (1, TINY['chunk_size'], 2)
    torch.testing.assert_close(out_new, out_old)


def test_normalization_is_lerobots(tiny_ckpt):
    """The graph = LeRobot's (x - mean) / (std + 1e-8) on inputs and a * std + mean on actions."""
    ck = load_checkpoint(tiny_ckpt)
    stats = load_file(str(tiny_ckpt / PRE_STATE))
    post = load_file(str(tiny_ckpt / POST_STATE))
    image = torch.randint(0, 256, (1, 96, 128, 3), dtype=torch.uint8)
    state = torch.tensor([[0.3, 0.1]])
    x = image.permute(0, 3, 1, 2).float() / 255.0
    x = (x - stats['observation.images.front.mean']) / (stats['observation.images.front.std'] + 1e-8)
    s = (state - stats['observation.state.mean']) / (stats['observation.state.std'] + 1e-8)
    with torch.no_grad():
        expected = ck.core([x], s) * post['action.std'] + post['action.mean']
        got = policy_graph(ck, fused=False)(image, state)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_min_max_normalization(tmp_path):
    path = write_random_checkpoint(tmp_path / 'mm', layout='new', normalization_mapping={
        'VISUAL': 'MEAN_STD', 'STATE': 'MIN_MAX', 'ACTION': 'MIN_MAX'}, **TINY)
    ck = load_checkpoint(path)
    pre = load_file(str(path / PRE_STATE))
    lo, hi = pre['observation.state.min'].numpy(), pre['observation.state.max'].numpy()
    scale, offset = ck.norm['state']
    np.testing.assert_allclose(lo * scale + offset, -1.0, atol=1e-6)
    np.testing.assert_allclose(hi * scale + offset, 1.0, atol=1e-6)


def test_wrong_key_is_named(tiny_ckpt, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path)
    tensors = load_file(str(ck / MODEL_FILE))
    tensors['model.action_head.weights'] = tensors.pop('model.action_head.weight')
    save_file(tensors, str(ck / MODEL_FILE))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(ck)
    assert 'missing key(s): model.action_head.weight' in str(err.value)
    assert 'unexpected key(s): model.action_head.weights' in str(err.value)


def test_missing_key_and_wrong_shape_are_named(tiny_ckpt, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path)
    tensors = load_file(str(ck / MODEL_FILE))
    del tensors['model.backbone.layer3.1.bn1.running_var']
    tensors['model.decoder_pos_embed.weight'] = torch.zeros(7, TINY['dim_model'])
    save_file(tensors, str(ck / MODEL_FILE))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(ck)
    text = str(err.value)
    assert 'model.backbone.layer3.1.bn1.running_var' in text
    assert 'model.decoder_pos_embed.weight is [7, 64], expected [10, 64]' in text


def test_vae_keys_are_not_required(tiny_ckpt, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path)
    tensors = {k: v for k, v in load_file(str(ck / MODEL_FILE)).items() if not k.startswith('model.vae_encoder')}
    save_file(tensors, str(ck / MODEL_FILE))
    assert load_checkpoint(ck).ignored_keys == []


def test_corrupt_safetensors(tiny_ckpt, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path)
    data = (ck / MODEL_FILE).read_bytes()
    (ck / MODEL_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match='model.safetensors .* corrupt'):
        load_checkpoint(ck)
    (ck / MODEL_FILE).write_bytes(b'not a safetensors file at all')
    with pytest.raises(CheckpointError, match='corrupt'):
        load_checkpoint(ck)


def test_missing_stats(tiny_ckpt, tiny_ckpt_old, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path, 'new')
    (ck / PRE_STATE).unlink()
    with pytest.raises(CheckpointError, match='processor state not found'):
        load_checkpoint(ck)
    for f in ck.glob('policy_*'):
        f.unlink()
    with pytest.raises(CheckpointError, match='no normalization statistics'):
        load_checkpoint(ck)
    old = _copy(tiny_ckpt_old, tmp_path, 'old')
    tensors = load_file(str(old / MODEL_FILE))
    tensors['normalize_inputs.buffer_observation_state.mean'] = torch.full((2,), float('inf'))
    save_file(tensors, str(old / MODEL_FILE))
    with pytest.raises(CheckpointError, match='not finite'):
        load_checkpoint(old)


def test_bad_config(tiny_ckpt, tmp_path):
    ck = _copy(tiny_ckpt, tmp_path)
    (ck / 'config.json').write_text('{"type": "act", "input_features": ')
    with pytest.raises(CheckpointError, match='not valid JSON'):
        load_checkpoint(ck)
    config = json.loads((tiny_ckpt / 'config.json').read_text())
    config['dim_model'] = 65
    (ck / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match='not divisible by n_heads'):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(tmp_path / 'nowhere')


def test_half_precision_checkpoint_loads(tmp_path):
    path = write_random_checkpoint(tmp_path / 'bf16', layout='old', dtype=torch.bfloat16, **TINY)
    ck = load_checkpoint(path)
    assert ck.core.action_head.weight.dtype == torch.float32

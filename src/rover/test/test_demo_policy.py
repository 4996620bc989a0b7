"""The demo checkpoint: seeded backbone + trained rest, in LeRobot's layout."""
import shutil

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rover.demo_policy import DEMO_ACT, TRAINED, write_checkpoint


def test_checkpoint_combines_seeded_backbone_and_trained_tensors(tmp_path):
    from rover_quantize.checkpoint import load_checkpoint
    ckpt = write_checkpoint(tmp_path / 'ckpt')
    loaded = load_checkpoint(ckpt)          # strict LeRobot key matching
    assert loaded.cfg.chunk_size == DEMO_ACT['chunk_size'] and loaded.cfg.image_hw == DEMO_ACT['image_shape']
    tensors = load_file(str(ckpt / 'model.safetensors'))
    with safe_open(str(TRAINED), 'pt') as f:
        trained_keys = list(f.keys())
        assert any(k.startswith('model.encoder.layers.') for k in trained_keys)
        assert not any(k.startswith('model.backbone.') for k in trained_keys)
        for key in trained_keys:
            assert (tensors[key] == f.get_tensor(key).float()).all(), key


def test_a_trained_file_from_another_backbone_is_refused(tmp_path):
    with safe_open(str(TRAINED), 'pt') as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    metadata['backbone_sha256'] = '0' * 64
    other = tmp_path / 'other.safetensors'
    save_file(tensors, str(other), metadata=metadata)
    with pytest.raises(RuntimeError, match='another seeded backbone'):
        write_checkpoint(tmp_path / 'ckpt', trained=other)
    shutil.rmtree(tmp_path / 'ckpt', ignore_errors=True)


TINY_ACT = dict(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
                n_vae_encoder_layers=1, chunk_size=4, image_shape=(64, 96), state_dim=2, action_dim=2,
                latent_dim=8)


@pytest.mark.slow
def test_one_trainer_learns_and_its_mask_ignores_padded_steps(tmp_path):
    """train_head (the demo policy's and rover_dataset.train_demo's trainer) fits a learnable
    target, and with a pad mask, garbage in the padded chunk steps changes nothing."""
    import copy

    import numpy as np
    import torch
    from rover.demo_policy import train_head
    from rover_quantize.checkpoint import load_checkpoint, write_random_checkpoint

    rng = np.random.default_rng(0)
    n, chunk = 32, TINY_ACT['chunk_size']
    images = rng.integers(0, 256, (n, 64, 96, 3), dtype=np.uint8)
    states = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32)
    actions = np.tile(np.float32([0.4, -0.3]), (n, chunk, 1))       # a steady command: quick to learn
    pad = np.zeros((n, chunk), bool)
    pad[:, 2:] = True
    garbage = actions.copy()
    garbage[:, 2:] = 50.0                                           # only in padded steps

    ck = load_checkpoint(write_random_checkpoint(tmp_path / 'ck', seed=1, **TINY_ACT))
    initial = copy.deepcopy(ck.core.state_dict())

    def fit(targets, mask, steps):  # from the same initial weights every time
        torch.manual_seed(0)
        ck.core.load_state_dict(initial)
        pred = train_head(ck, images, states, targets, np.arange(24), np.arange(24, n), steps,
                          np.random.default_rng(0), pad=mask, batch_size=8, log_every=0)
        return pred.numpy()

    untrained = fit(actions, None, 0)
    trained = fit(actions, None, 40)
    error = lambda pred: float(np.abs(pred - actions[24:]).mean())  # noqa: E731
    assert error(trained) < 0.5 * error(untrained)
    masked_clean, masked_garbage = fit(actions, pad, 10), fit(garbage, pad, 10)
    np.testing.assert_allclose(masked_garbage[:, :2], masked_clean[:, :2], atol=1e-5)
    assert np.abs(fit(garbage, None, 10)[:, :2] - masked_clean[:, :2]).max() > 0.1  # unmasked, it shows

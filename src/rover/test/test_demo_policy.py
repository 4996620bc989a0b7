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

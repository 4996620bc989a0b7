"""Shared fixtures: tiny LeRobot-layout checkpoints and rosbags written in the test session."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('OMP_NUM_THREADS', '2')

# Small enough to export, calibrate and quantize in seconds; the ResNet-18 backbone is full size
# (LeRobot's), only the image is small.
TINY = dict(dim_model=64, n_heads=4, dim_feedforward=128, n_encoder_layers=1, n_decoder_layers=1,
            n_vae_encoder_layers=1, chunk_size=10, image_shape=(96, 128), state_dim=2, action_dim=2,
            latent_dim=8)
# The pipeline tests need a model that can be quantized: with 96x128 images the random tiny model
# sees 12 feature tokens and is too sensitive; 192x256 (48 tokens) quantizes like the default.
from rover_quantize.checkpoint import SMALL_CONFIG  # noqa: E402

PIPELINE = dict(SMALL_CONFIG, state_dim=2, action_dim=2)
BAG_FRAMES, CALIB, VALID = 60, 32, 16


@pytest.fixture(scope='session')
def tiny_ckpt(tmp_path_factory):
    from rover_quantize.checkpoint import write_random_checkpoint
    return write_random_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny_new', seed=1, layout='new', **TINY)


@pytest.fixture(scope='session')
def tiny_ckpt_old(tmp_path_factory):
    from rover_quantize.checkpoint import write_random_checkpoint
    return write_random_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny_old', seed=1, layout='old', **TINY)


@pytest.fixture(scope='session')
def pipeline_ckpt(tmp_path_factory):
    from rover_quantize.checkpoint import write_random_checkpoint
    return write_random_checkpoint(tmp_path_factory.mktemp('ckpt') / 'pipeline', seed=1, layout='new', **PIPELINE)


@pytest.fixture(scope='session')
def tiny_bag(tmp_path_factory):
    """60 frames at 30 Hz, bgr8 Image + TwistStamped state, MCAP."""
    from rover_quantize.bags import write_test_bag
    return write_test_bag(tmp_path_factory.mktemp('bags') / 'drive_mcap', storage='mcap', n_frames=BAG_FRAMES,
                          hw=PIPELINE['image_shape'], seed=3)


class Built:
    """A model directory built once per session from the tiny checkpoint and the bag."""

    def __init__(self, model_dir, manifest, ckpt, bag, loaded):
        self.model_dir, self.manifest, self.ckpt, self.bag, self.loaded = model_dir, manifest, ckpt, bag, loaded

    def __iter__(self):
        return iter((self.model_dir, self.manifest))


@pytest.fixture(scope='session')
def built(pipeline_ckpt, tiny_bag, tmp_path_factory):
    from rover_quantize.checkpoint import load_checkpoint
    from rover_quantize.pipeline import build_model_dir
    model_dir = tmp_path_factory.mktemp('built') / 'model'
    manifest = build_model_dir(pipeline_ckpt, model_dir, bags=[tiny_bag], calibration_frames=CALIB,
                               validation_frames=VALID, progress=False)
    return Built(model_dir, manifest, pipeline_ckpt, tiny_bag, load_checkpoint(pipeline_ckpt))


# Fails a test that changes the test process's scheduling: every later test and child inherits it.
from rover_common.process import scheduling_guard  # noqa: E402

scheduling_unchanged = pytest.fixture(autouse=True, name='scheduling_unchanged')(scheduling_guard)

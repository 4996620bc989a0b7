import os

import numpy as np
import pytest

from model_fixtures import read_manifest, reference_actions, write_manifest
from rover_policy.backends import BackendError, create_backend
from rover_policy.model_dir import ModelDirError, load_model_dir
from rover_policy.preprocessing import ImagePreprocessor, prepare_state


def frames_and_states(model, count=4, seed=0):
    rng = np.random.default_rng(seed)
    preprocess = ImagePreprocessor.for_model(model)
    for _ in range(count):
        yield (preprocess(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)),
               prepare_state(rng.uniform(-1, 1, 2), model.state_dim))


def test_cpu_backends_match_their_onnx_files(tiny_model_dir):
    model = load_model_dir(tiny_model_dir)
    with create_backend(model, 'cpu_fp32', threads=2) as fp32, create_backend(model, 'cpu_int8', threads=1) as int8:
        assert fp32.describe()['model_file'] == 'model_fp32.onnx'
        assert int8.describe()['model_file'] == 'model_int8.onnx' and int8.describe()['threads'] == 1
        outputs = []
        for image, state in frames_and_states(model):
            a32, a8 = fp32.infer(image, state), int8.infer(image, state)
            assert a32.shape == a8.shape == (model.chunk_size, model.action_dim)
            assert a32.dtype == np.float32
            np.testing.assert_allclose(a32, reference_actions(tiny_model_dir, image, state), atol=1e-6)
            np.testing.assert_allclose(a8, reference_actions(tiny_model_dir, image, state, 'model_int8.onnx'),
                                       atol=1e-5)
            assert np.abs(a8 - a32).max() < 0.05  # quantized, but close
            outputs.append(a32)
        assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # the inputs matter


def test_unknown_backend(tiny_model_dir):
    with pytest.raises(BackendError, match="unknown backend 'gpu'"):
        create_backend(load_model_dir(tiny_model_dir), 'gpu')


def test_checksum_mismatch_refuses_to_load(model_copy):
    model = load_model_dir(model_copy)
    with open(os.path.join(model_copy, 'model_int8.onnx'), 'r+b') as f:
        f.seek(100)
        f.write(b'\xff\xff')
    with pytest.raises(ModelDirError, match='checksum mismatch'):
        create_backend(model, 'cpu_int8')


def test_manifest_that_disagrees_with_the_model(model_copy):
    manifest = read_manifest(model_copy)
    manifest['inputs'][0]['shape'] = [1, 96, 128, 3]
    manifest['features']['shape'] = [1, 8, 12, 16]
    write_manifest(model_copy, manifest)
    with pytest.raises(BackendError, match=r'input "image" has shape \[1, 48, 64, 3\], the manifest says \[1, 96, 128, 3\]'):
        create_backend(load_model_dir(model_copy), 'cpu_fp32')
    manifest = read_manifest(model_copy)
    manifest['inputs'][0]['shape'] = [1, 48, 64, 3]
    manifest['inputs'][1]['name'] = 'observation_state'
    write_manifest(model_copy, manifest)
    with pytest.raises(BackendError, match='expects input "observation_state", the model has image, state'):
        create_backend(load_model_dir(model_copy), 'cpu_fp32')


def test_corrupt_onnx_with_matching_checksum(model_copy):
    from model_fixtures import sha256
    path = os.path.join(model_copy, 'model_fp32.onnx')
    with open(path, 'wb') as f:
        f.write(b'not an onnx model')
    manifest = read_manifest(model_copy)
    manifest['files']['model_fp32.onnx']['sha256'] = sha256(path)
    write_manifest(model_copy, manifest)
    with pytest.raises(BackendError, match='ONNX Runtime cannot load'):
        create_backend(load_model_dir(model_copy), 'cpu_fp32')

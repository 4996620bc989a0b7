import os

import pytest

from model_fixtures import read_manifest, sha256, write_manifest
from rover_policy.model_dir import ModelDirError, load_model_dir, sha256_of


def test_loads_the_contract_fields(tiny_model_dir):
    model = load_model_dir(tiny_model_dir)
    manifest = read_manifest(tiny_model_dir)
    assert model.image.name == 'image' and model.image.shape == (1, 48, 64, 3)
    assert (model.image_height, model.image_width) == (48, 64)
    assert model.state.name == 'state' and model.state_dim == 2
    assert model.actions.shape == (1, manifest['chunk_size'], 2)
    assert model.chunk_size == manifest['chunk_size'] == model.n_action_steps
    assert model.features.shape == tuple(manifest['features']['shape'])
    assert model.temporal_ensemble_coeff is None and model.control_rate_hz == 30.0
    assert model.action_names == ['steering', 'throttle']
    model.check_rover_names()


def test_verified_model_checks_sha256(tiny_model_dir):
    model = load_model_dir(tiny_model_dir)
    path = model.verified_model('cpu_int8')
    assert path == os.path.join(tiny_model_dir, 'model_int8.onnx')
    assert sha256_of(path) == sha256(path)


@pytest.mark.parametrize('path_kind', ['empty', 'missing_dir', 'no_manifest'])
def test_missing_directory_or_manifest(tmp_path, path_kind):
    path = {'empty': '', 'missing_dir': str(tmp_path / 'nope'), 'no_manifest': str(tmp_path)}[path_kind]
    expected = {'empty': 'no model directory', 'missing_dir': 'not found', 'no_manifest': 'no manifest.json'}
    with pytest.raises(ModelDirError, match=expected[path_kind]):
        load_model_dir(path)


def test_unreadable_manifest(model_copy):
    with open(os.path.join(model_copy, 'manifest.json'), 'w') as f:
        f.write('{not json')
    with pytest.raises(ModelDirError, match='cannot read'):
        load_model_dir(model_copy)


def test_checksum_mismatch_names_file_and_both_hashes(model_copy):
    model = load_model_dir(model_copy)
    path = os.path.join(model_copy, 'model_int8.onnx')
    expected = sha256(path)
    with open(path, 'ab') as f:
        f.write(b'\0')
    actual = sha256(path)
    with pytest.raises(ModelDirError) as info:
        model.verified_model('cpu_int8')
    message = str(info.value)
    assert 'checksum mismatch' in message and path in message
    assert expected in message and actual in message
    model.verified_model('cpu_fp32')  # other files are still fine


def test_missing_model_file_and_missing_entry(model_copy):
    os.remove(os.path.join(model_copy, 'model_fp32.onnx'))
    model = load_model_dir(model_copy)
    with pytest.raises(ModelDirError, match='model file missing: .*model_fp32.onnx'):
        model.verified_model('cpu_fp32')
    manifest = read_manifest(model_copy)
    del manifest['models']['cpu_int8']  # no INT8 model met the accuracy bar
    write_manifest(model_copy, manifest)
    with pytest.raises(ModelDirError, match='no "cpu_int8" model listed.*available: backbone, cpu_fp32, head'):
        load_model_dir(model_copy).verified_model('cpu_int8')


def test_file_without_sha256_is_refused(model_copy):
    manifest = read_manifest(model_copy)
    del manifest['files']['head.onnx']
    write_manifest(model_copy, manifest)
    with pytest.raises(ModelDirError, match='no sha256 for head.onnx'):
        load_model_dir(model_copy).verified_model('head')


def _edit(model_dir, change):
    manifest = read_manifest(model_dir)
    change(manifest)
    write_manifest(model_dir, manifest)


@pytest.mark.parametrize('change, message', [
    (lambda m: m.update(format_version=2), 'unsupported format_version 2'),
    (lambda m: m.update(format='something-else'), '"format" is'),
    (lambda m: m['inputs'].insert(1, {'name': 'image_rear', 'shape': [1, 48, 64, 3], 'dtype': 'uint8',
                                      'layout': 'NHWC', 'color': 'rgb'}),
     '2 camera inputs \\(image, image_rear\\); the policy node supports exactly one camera'),
    (lambda m: m['inputs'][0].update(layout='NCHW'), 'only NHWC'),
    (lambda m: m['inputs'][0].update(shape=[1, 3, 48, 64]), r'must have shape \[1, H, W, 3\]'),
    (lambda m: m.update(chunk_size=7), 'chunk_size 7 differs'),
    (lambda m: m.update(n_action_steps=0), 'n_action_steps 0 must be in'),
    (lambda m: m.update(temporal_ensemble_coeff=0.01), 'needs n_action_steps == 1'),   # as LeRobot refuses it
    (lambda m: m.update(temporal_ensemble_coeff='0.01', n_action_steps=1), 'finite number'),
    (lambda m: m.update(control_rate_hz=0), 'control_rate_hz must be > 0'),
    (lambda m: m['outputs'][0].update(shape=[1, 20]), r'\[1, chunk_size, action_dim\]'),
    (lambda m: m.update(action_names=['steering']), 'must list 2 names'),
])
def test_invalid_manifests_are_explained(model_copy, change, message):
    _edit(model_copy, change)
    with pytest.raises(ModelDirError, match=message):
        load_model_dir(model_copy)


def test_rover_names_are_checked(model_copy):
    _edit(model_copy, lambda m: m.update(action_names=['steering', 'brake']))
    with pytest.raises(ModelDirError, match="lack \\['throttle'\\]"):
        load_model_dir(model_copy).check_rover_names()
    _edit(model_copy, lambda m: m.update(action_names=['throttle', 'steering'], state_names=['speed', 'steering']))
    model = load_model_dir(model_copy)
    with pytest.raises(ModelDirError, match="contain \\['speed'\\]"):
        model.check_rover_names()


def test_ensemble_coeff_and_defaults(model_copy):
    def change(m):
        m['temporal_ensemble_coeff'] = 0.01
        m['n_action_steps'] = 1
        del m['action_names'], m['state_names']
    _edit(model_copy, change)
    model = load_model_dir(model_copy)
    assert model.temporal_ensemble_coeff == 0.01
    assert model.action_names == ['steering', 'throttle'] == model.state_names

"""The hailo backend against the fake hailo_platform (test/fake_hailo), which runs the
"HEF" (an ONNX graph shaped like a compiled HEF) with ONNX Runtime."""
import os
import sys

import numpy as np
import pytest

import hailo_fixtures as hf
from rover_policy.backends import BackendError, create_backend
from rover_policy.model_dir import ModelDirError, load_model_dir
from test_backends import frames_and_states


@pytest.fixture
def fake_hailo(monkeypatch):
    monkeypatch.delenv('FAKE_HAILO_NO_DEVICE', raising=False)
    with hf.fake_hailo_on_path():
        yield


@pytest.fixture
def hybrid_dir(model_copy):
    model = load_model_dir(model_copy)
    hf.make_backbone_hef(model, os.path.join(model_copy, 'model.hef'))
    hf.add_hef_to_manifest(model_copy, 'model.hef')
    return model_copy


def test_hybrid_actions_equal_the_cpu_fp32_path(hybrid_dir, fake_hailo):
    model = load_model_dir(hybrid_dir)
    with create_backend(model, 'hailo', threads=2) as hailo, create_backend(model, 'cpu_fp32') as fp32:
        assert hailo.describe() == {'backend': 'hailo', 'hailo_mode': 'hybrid', 'hef': 'model.hef',
                                    'hef_sha256_verified': True}
        # the HEF's quant infos are read (features are post-ReLU: zero point 0)
        assert hailo.quant_infos['rover_backbone/conv_out'][1] == 0
        for image, state in frames_and_states(model, count=5):
            np.testing.assert_allclose(hailo.infer(image, state), fp32.infer(image, state), atol=1e-5)


def test_whole_model_hef_from_the_parameter(model_copy, tmp_path, fake_hailo):
    model = load_model_dir(model_copy)
    hef = hf.make_whole_model_hef(model, str(tmp_path / 'whole.hef'))  # outside the model dir
    with create_backend(model, 'hailo', hef_path=hef) as hailo, create_backend(model, 'cpu_fp32') as fp32:
        assert hailo.mode == 'whole' and hailo.describe()['hef_sha256_verified'] is False
        for image, state in frames_and_states(model, count=3, seed=4):
            np.testing.assert_allclose(hailo.infer(image, state), fp32.infer(image, state), atol=1e-5)


def test_hef_shape_mismatch_is_explained(model_copy, tmp_path, fake_hailo):
    model = load_model_dir(model_copy)
    hef = hf.make_identity_hef(str(tmp_path / 'other.hef'), (32, 32, 3))
    with pytest.raises(BackendError) as info:
        create_backend(model, 'hailo', hef_path=hef)
    message = str(info.value)
    assert 'the HEF does not match' in message
    assert 'other_net/input_layer1: [32, 32, 3]' in message
    assert 'expected one image input [48, 64, 3]' in message and '[6, 8, 8] (NHWC; hybrid' in message
    # the device was released on the way out: a correct HEF works right after
    good = hf.make_backbone_hef(model, str(tmp_path / 'good.hef'))
    create_backend(model, 'hailo', hef_path=good).close()


def test_features_shape_mismatch(hybrid_dir, fake_hailo):
    from model_fixtures import read_manifest, write_manifest
    manifest = read_manifest(hybrid_dir)
    manifest['features']['shape'] = [1, 16, 6, 8]  # a different backbone than the HEF's
    write_manifest(hybrid_dir, manifest)
    with pytest.raises(BackendError, match=r'outputs \{rover_backbone/conv_out: \[6, 8, 8\]\}'):
        create_backend(load_model_dir(hybrid_dir), 'hailo')


def test_missing_hailo_platform_says_how_to_install(hybrid_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, 'hailo_platform', None)  # import fails like on a machine without it
    with pytest.raises(BackendError) as info:
        create_backend(load_model_dir(hybrid_dir), 'hailo')
    message = str(info.value)
    assert 'hailo_platform' in message and 'hailo_pci' in message and 'numpy < 2' in message
    assert 'cat /sys/module/hailo_pci/version' in message and 'docker/README.md' in message


def test_no_device(hybrid_dir, fake_hailo, monkeypatch):
    monkeypatch.setenv('FAKE_HAILO_NO_DEVICE', '1')
    with pytest.raises(BackendError, match='no Hailo device available .*HAILO_OUT_OF_PHYSICAL_DEVICES.*hailortcli scan'):
        create_backend(load_model_dir(hybrid_dir), 'hailo')


def test_device_is_released_on_close(hybrid_dir, fake_hailo):
    model = load_model_dir(hybrid_dir)
    first = create_backend(model, 'hailo')
    with pytest.raises(BackendError, match='no Hailo device'):  # one user per device
        create_backend(model, 'hailo')
    first.close()
    create_backend(model, 'hailo').close()


def test_hef_files_are_checked(tiny_model_dir, hybrid_dir, fake_hailo):
    with pytest.raises(BackendError, match='names no HEF'):
        create_backend(load_model_dir(tiny_model_dir), 'hailo')
    with pytest.raises(BackendError, match='HEF file not found'):
        create_backend(load_model_dir(tiny_model_dir), 'hailo', hef_path='/nonexistent/model.hef')
    with open(os.path.join(hybrid_dir, 'model.hef'), 'ab') as f:
        f.write(b'x')
    with pytest.raises(ModelDirError, match='checksum mismatch .*model.hef'):
        create_backend(load_model_dir(hybrid_dir), 'hailo')


def test_fake_enforces_the_api_contract(hybrid_dir, fake_hailo):
    """What the backend tests rely on: the fake rejects what real HailoRT would get wrong."""
    from hailo_platform import FormatType, HailoRTException, VDevice
    model = load_model_dir(hybrid_dir)
    image, _ = next(frames_and_states(model))
    pixels = image[0].astype(np.float32)
    with VDevice() as vdevice:
        infer_model = vdevice.create_infer_model(os.path.join(hybrid_dir, 'model.hef'))
        assert infer_model.input().shape == [48, 64, 3] and infer_model.output().shape == [6, 8, 8]
        infer_model.input().set_format_type(FormatType.FLOAT32)  # output stays quantized uint8
        configured = infer_model.configure()
        with pytest.raises(HailoRTException, match='after configure'):
            infer_model.output().set_format_type(FormatType.FLOAT32)
        bindings = configured.create_bindings()
        with pytest.raises(HailoRTException, match='no buffer set'):
            configured.run([bindings], 1000)
        with pytest.raises(HailoRTException, match='not C-contiguous'):
            bindings.input().set_buffer(np.asfortranarray(pixels))
        with pytest.raises(HailoRTException, match='dtype uint8 does not match format type FLOAT32'):
            bindings.input().set_buffer(image[0])
        with pytest.raises(HailoRTException, match='shape'):
            bindings.input().set_buffer(image.astype(np.float32))  # batch dim is not part of the stream
        bindings.input().set_buffer(pixels)
        quantized = np.empty((6, 8, 8), np.uint8)
        bindings.output().set_buffer(quantized)
        configured.run([bindings], 1000)
        info = infer_model.output().quant_infos[0]
        dequantized = (bindings.output().get_buffer().astype(np.float32) - info.qp_zp) * info.qp_scale
        backbone = hf.onnx_features_nhwc(model, image)
        assert np.abs(dequantized - backbone).max() <= info.qp_scale / 2 + 1e-6
        assert np.abs(backbone).max() > 10 * info.qp_scale  # a real comparison, not all zeros
        configured.shutdown()
    # without the scheduler a network group must be activated first (the backend uses the scheduler)
    from hailo_platform import HailoSchedulingAlgorithm
    params = VDevice.create_params()
    params.scheduling_algorithm = HailoSchedulingAlgorithm.NONE
    with VDevice(params) as vdevice:
        configured = vdevice.create_infer_model(os.path.join(hybrid_dir, 'model.hef')).configure()
        bindings = configured.create_bindings(input_buffers={'rover_backbone/input_layer1': image[0]},
                                              output_buffers={'rover_backbone/conv_out': quantized})
        with pytest.raises(HailoRTException, match='not activated'):
            configured.run([bindings], 1000)
        configured.activate()
        configured.run([bindings], 1000)

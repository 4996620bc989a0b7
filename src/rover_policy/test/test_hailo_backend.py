"""The hailo backend against the fake hailo_platform (test/fake_hailo), which runs the
"HEF" (an ONNX graph shaped like a compiled HEF) with ONNX Runtime."""
import gc
import os
import sys
import time

import numpy as np
import pytest

import hailo_fixtures as hf
from rover_policy.backends import BackendError, create_backend
from rover_policy.model_dir import ModelDirError, load_model_dir
from test_backends import frames_and_states


@pytest.fixture
def fake_hailo(monkeypatch):
    for name in ('FAKE_HAILO_NO_DEVICE', 'FAKE_HAILO_LATENCY_MS', 'FAKE_HAILO_DEFAULT_SCHEDULING'):
        monkeypatch.delenv(name, raising=False)
    with hf.fake_hailo_on_path():
        from hailo_platform.pyhailort import pyhailort
        yield pyhailort
        # nothing the fake caught as undefined behaviour in HailoRT (use after release, races)
        assert pyhailort.violations() == []


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
                                    'hef_sha256_verified': True, 'hailo_head': 'fp32'}
        # the HEF's quant infos are read (features are post-ReLU: zero point 0)
        assert hailo.quant_infos['rover_backbone/conv_out'][1] == 0
        for image, state in frames_and_states(model, count=5):
            np.testing.assert_allclose(hailo.infer(image, state), fp32.infer(image, state), atol=1e-5)


def test_int8_head_runs_head_int8_onnx(hybrid_dir, fake_hailo):
    import onnxruntime as ort
    from model_fixtures import add_head_int8, reference_actions
    add_head_int8(hybrid_dir)
    model = load_model_dir(hybrid_dir)
    head_int8 = ort.InferenceSession(os.path.join(hybrid_dir, 'head_int8.onnx'), providers=['CPUExecutionProvider'])
    head_fp32 = ort.InferenceSession(os.path.join(hybrid_dir, 'head.onnx'), providers=['CPUExecutionProvider'])
    with create_backend(model, 'hailo', threads=2, hailo_head='int8') as hailo:
        assert hailo.describe()['hailo_head'] == 'int8'
        differs = False
        for image, state in frames_and_states(model, count=5, seed=2):
            got = hailo.infer(image, state)
            hef_out = hf.run_fake_hef(os.path.join(hybrid_dir, 'model.hef'),
                                      {'rover_backbone/input_layer1': image[0].astype(np.float32)})[0]
            feeds = {'features': hef_out.transpose(2, 0, 1)[np.newaxis].copy(), 'state': state}
            # exactly the INT8 head on the HEF's features ...
            np.testing.assert_allclose(got, head_int8.run(['actions'], feeds)[0][0], atol=1e-6)
            # ... which is close to, but not, the FP32 head
            fp32 = head_fp32.run(['actions'], feeds)[0][0]
            differs |= not np.allclose(got, fp32, atol=1e-6)
            np.testing.assert_allclose(got, reference_actions(hybrid_dir, image, state), atol=0.1)
        assert differs


def test_int8_head_needs_head_int8_in_the_manifest(hybrid_dir, fake_hailo, monkeypatch):
    # fails before the device is opened: no device would give another error
    monkeypatch.setenv('FAKE_HAILO_NO_DEVICE', '1')
    with pytest.raises(BackendError, match=r'hailo_head=int8 needs models.head_int8 .*--hailo-head-int8'):
        create_backend(load_model_dir(hybrid_dir), 'hailo', hailo_head='int8')
    with pytest.raises(BackendError, match="unknown hailo head 'int4'"):
        create_backend(load_model_dir(hybrid_dir), 'hailo', hailo_head='int4')


def test_int8_head_file_is_checked(hybrid_dir, fake_hailo):
    from model_fixtures import add_head_int8
    add_head_int8(hybrid_dir)
    with open(os.path.join(hybrid_dir, 'head_int8.onnx'), 'ab') as f:
        f.write(b'x')
    with pytest.raises(ModelDirError, match='checksum mismatch .*head_int8.onnx'):
        create_backend(load_model_dir(hybrid_dir), 'hailo', hailo_head='int8')
    # the FP32 head does not need it
    create_backend(load_model_dir(hybrid_dir), 'hailo').close()


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


def _hybrid_parts(model, hybrid_dir):
    """(HEF path, a prepared image, its float pixels, the backbone's NHWC features) for direct fake use."""
    image, _ = next(frames_and_states(model))
    features = hf.onnx_features_nhwc(model, image)
    return os.path.join(hybrid_dir, 'model.hef'), image, image[0].astype(np.float32), features


def test_fake_scheduler_defaults_follow_hailort(hybrid_dir, fake_hailo, monkeypatch):
    from hailo_platform import HailoRTException, HailoSchedulingAlgorithm, VDevice
    model = load_model_dir(hybrid_dir)
    hef, _, pixels, _ = _hybrid_parts(model, hybrid_dir)
    # HailoRTDefaults::get_vdevice_params(): ROUND_ROBIN (the fake's header says what is verified)
    assert VDevice.create_params().scheduling_algorithm == HailoSchedulingAlgorithm.ROUND_ROBIN == 1
    monkeypatch.setenv('FAKE_HAILO_DEFAULT_SCHEDULING', 'NONE')  # a HailoRT whose default were NONE
    assert VDevice.create_params().scheduling_algorithm == HailoSchedulingAlgorithm.NONE == 0
    monkeypatch.delenv('FAKE_HAILO_DEFAULT_SCHEDULING')
    # device_ids: create_from_ids turns the scheduler off, so a run needs activate()
    with VDevice(device_ids=['0001:01:00.0']) as vdevice:
        infer_model = vdevice.create_infer_model(hef)
        infer_model.input().set_format_type(fake_hailo.FormatType.FLOAT32)
        with infer_model.configure() as configured:
            bindings = configured.create_bindings(
                input_buffers={infer_model.input().name: pixels},
                output_buffers={infer_model.output().name: np.empty((6, 8, 8), np.uint8)})
            with pytest.raises(fake_hailo.HailoRTNetworkGroupNotActivatedException, match='not activated'):
                configured.run([bindings], 1000)
            configured.activate()
            configured.run([bindings], 1000)
    with VDevice() as vdevice:  # with the scheduler, activate() is invalid
        with vdevice.create_infer_model(hef).configure() as configured:
            with pytest.raises(HailoRTException):
                configured.activate()


@pytest.mark.parametrize('default', ['NONE', 'ROUND_ROBIN'])
def test_backend_sets_the_scheduler_whatever_the_default(hybrid_dir, fake_hailo, monkeypatch, default):
    monkeypatch.setenv('FAKE_HAILO_DEFAULT_SCHEDULING', default)
    model = load_model_dir(hybrid_dir)
    image, state = next(frames_and_states(model))
    with create_backend(model, 'hailo') as hailo, create_backend(model, 'cpu_fp32') as fp32:
        np.testing.assert_allclose(hailo.infer(image, state), fp32.infer(image, state), atol=1e-5)


def test_fake_enums_have_hailorts_values(hybrid_dir, fake_hailo, tmp_path):
    from hailo_platform import FormatOrder, FormatType, HailoSchedulingAlgorithm, VDevice
    # include/hailo/hailort.h: hailo_format_order_t, hailo_format_type_t, hailo_scheduling_algorithm_t
    assert (FormatOrder.AUTO, FormatOrder.NHWC, FormatOrder.NHCW, FormatOrder.FCR, FormatOrder.F8CR,
            FormatOrder.NHW, FormatOrder.NC, FormatOrder.NCHW) == (0, 1, 2, 3, 4, 5, 6, 11)
    assert (FormatType.AUTO, FormatType.UINT8, FormatType.UINT16, FormatType.FLOAT32) == (0, 1, 2, 3)
    assert (HailoSchedulingAlgorithm.NONE, HailoSchedulingAlgorithm.ROUND_ROBIN) == (0, 1)
    model = load_model_dir(hybrid_dir)
    whole = hf.make_whole_model_hef(model, str(tmp_path / 'whole.hef'))
    with VDevice() as vdevice:
        infer_model = vdevice.create_infer_model(whole)
        orders = {s.name.split('/')[-1]: s.format.order for s in infer_model.inputs}
        assert orders == {'input_layer1': FormatOrder.NHWC, 'input_layer2': FormatOrder.NC}
        assert infer_model.input('rover_act/input_layer1').format.type == FormatType.UINT8  # the HEF's own


def test_fake_create_infer_model_takes_name(hybrid_dir, fake_hailo):
    from hailo_platform import HailoRTException, VDevice
    hef = os.path.join(hybrid_dir, 'model.hef')
    with VDevice() as vdevice:
        assert vdevice.create_infer_model(hef, name='model').input_names == ['rover_backbone/input_layer1']
        with pytest.raises(TypeError):
            vdevice.create_infer_model(hef, network_name='model')
        with pytest.raises(HailoRTException, match='HAILO_NOT_IMPLEMENTED'):  # not a network group of the HEF
            vdevice.create_infer_model(hef, name='other')


def test_fake_checks_buffers_like_hailort(hybrid_dir, fake_hailo):
    """set_buffer checks C-contiguity only; run checks byte sizes; same-size bytes are reinterpreted."""
    from hailo_platform import FormatType, HailoRTException, VDevice
    model = load_model_dir(hybrid_dir)
    hef, image, pixels, backbone = _hybrid_parts(model, hybrid_dir)
    with VDevice() as vdevice:
        infer_model = vdevice.create_infer_model(hef)
        infer_model.input().set_format_type(FormatType.FLOAT32)  # the output stays quantized uint8
        with infer_model.configure() as configured:
            bindings = configured.create_bindings()
            with pytest.raises(fake_hailo.HailoRTNotFoundException):
                configured.run([bindings], 1000)  # no buffers set (and the model is shut down: see below)
        with infer_model.configure() as configured:
            bindings = configured.create_bindings()
            with pytest.raises(HailoRTException, match='C_CONTIGUOUS'):
                bindings.input().set_buffer(np.asfortranarray(pixels))
            readonly = pixels.copy()
            readonly.flags.writeable = False
            with pytest.raises(ValueError, match='not writeable'):
                bindings.input().set_buffer(readonly)
            # neither dtype nor shape is checked: int32 has float32's size and is read as float32 bits
            bindings.input().set_buffer(pixels.astype(np.int32).reshape(64, 48, 3))
            quantized = np.empty((6, 8, 8), np.uint8)
            bindings.output().set_buffer(quantized)
            configured.run([bindings], 1000)
            info = infer_model.output().quant_infos[0]
            garbage = (quantized.astype(np.float32) - info.qp_zp) * info.qp_scale
            as_float_bits = pixels.astype(np.int32).view(np.float32)
            reinterpreted = hf.run_fake_hef(hef, {'rover_backbone/input_layer1': as_float_bits})[0]
            assert np.abs(garbage - reinterpreted).max() <= info.qp_scale / 2 + 1e-6
            assert np.abs(garbage - backbone).max() > 10 * info.qp_scale  # really not the right answer
            bindings.input().set_buffer(pixels)
            configured.run([bindings], 1000)
            dequantized = (quantized.astype(np.float32) - info.qp_zp) * info.qp_scale
            assert np.abs(dequantized - backbone).max() <= info.qp_scale / 2 + 1e-6
            assert np.abs(backbone).max() > 10 * info.qp_scale  # a real comparison, not all zeros
            # uint8 pixels: a quarter of FLOAT32's bytes -> invalid operation at run, and HailoRT shuts
            # the configured model down: the next run fails even with good buffers
            bindings.input().set_buffer(image[0])
            with pytest.raises(fake_hailo.HailoRTInvalidOperationException):
                configured.run([bindings], 1000)
            bindings.input().set_buffer(pixels)
            with pytest.raises(fake_hailo.HailoRTStreamAborted):
                configured.run([bindings], 1000)


def test_fake_ignores_format_changes_after_configure(hybrid_dir, fake_hailo):
    from hailo_platform import FormatType, VDevice
    model = load_model_dir(hybrid_dir)
    hef, _, pixels, backbone = _hybrid_parts(model, hybrid_dir)
    with VDevice() as vdevice:
        infer_model = vdevice.create_infer_model(hef)
        infer_model.input().set_format_type(FormatType.FLOAT32)
        with infer_model.configure() as configured:
            infer_model.output().set_format_type(FormatType.FLOAT32)  # no error, and no effect
            assert infer_model.output().format.type == FormatType.FLOAT32
            bindings = configured.create_bindings(input_buffers={'rover_backbone/input_layer1': pixels})
            bindings.output().set_buffer(np.empty((6, 8, 8), np.float32))  # 4x the configured uint8 size
            with pytest.raises(fake_hailo.HailoRTInvalidOperationException):
                configured.run([bindings], 1000)
        with infer_model.configure() as configured:  # a new configure() takes the change
            out = np.empty((6, 8, 8), np.float32)
            bindings = configured.create_bindings(input_buffers={'rover_backbone/input_layer1': pixels},
                                                  output_buffers={'rover_backbone/conv_out': out})
            configured.run([bindings], 1000)
            assert np.abs(out - backbone).max() <= infer_model.output().quant_infos[0].qp_scale / 2 + 1e-5


def test_backend_checks_arrays_before_handing_them_over(hybrid_dir, tmp_path, fake_hailo):
    model = load_model_dir(hybrid_dir)
    image, state = next(frames_and_states(model))
    whole = hf.make_whole_model_hef(model, str(tmp_path / 'whole.hef'))
    for hef_path in ('', whole):
        with create_backend(model, 'hailo', hef_path=hef_path) as hailo, create_backend(model, 'cpu_fp32') as fp32:
            # same number of values as the image, other shape: HailoRT would read it as the image
            expected = r'image must be uint8/float32 \[1, 48, 64, 3\], got uint8\[1, 64, 48, 3\]'
            with pytest.raises(BackendError, match=expected):
                hailo.infer(np.ascontiguousarray(image.reshape(1, 64, 48, 3)), state)
            with pytest.raises(BackendError, match=r'image must be .*got float64'):
                hailo.infer(image.astype(np.float64), state)
            with pytest.raises(BackendError, match=r'state must be float32 \[1, 2\], got float32\[1, 3\]'):
                hailo.infer(image, np.zeros((1, 3), np.float32))
            # nothing reached HailoRT, so the configured model is still usable
            np.testing.assert_allclose(hailo.infer(image, state), fp32.infer(image, state), atol=1e-5)


def test_hung_device_times_out_with_a_clear_error(hybrid_dir, fake_hailo, monkeypatch):
    from rover_policy.backends.hailo_backend import HailoBackend
    model = load_model_dir(hybrid_dir)
    image, state = next(frames_and_states(model))
    monkeypatch.setenv('FAKE_HAILO_LATENCY_MS', 'inf')  # the device never completes a job
    hailo = HailoBackend(model, timeout_ms=150)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError, match='did not finish an inference within timeout_ms=150.*hailortcli scan'):
            hailo.infer(image, state)
        assert 0.14 <= time.monotonic() - start < 1.0  # the backend's timeout, not HailoRT's default
    finally:
        start = time.monotonic()
        hailo.close()  # shutdown() aborts the hung job before the release
        assert time.monotonic() - start < 1.0
    create_backend(model, 'hailo').close()  # the device was released


def test_late_completion_after_a_timeout_does_not_touch_the_next_run(hybrid_dir, fake_hailo, monkeypatch):
    from rover_policy.backends.hailo_backend import HailoBackend
    model = load_model_dir(hybrid_dir)
    (image, state), (other, other_state) = list(frames_and_states(model, count=2, seed=5))
    with HailoBackend(model, timeout_ms=100) as hailo, create_backend(model, 'cpu_fp32') as fp32:
        monkeypatch.setenv('FAKE_HAILO_LATENCY_MS', '400')  # slower than the timeout: completes later
        with pytest.raises(BackendError, match='timeout_ms=100'):
            hailo.infer(image, state)
        monkeypatch.setenv('FAKE_HAILO_LATENCY_MS', '0')
        # the late job still owns its output buffer; this run must not share it (the fake flags a race)
        np.testing.assert_allclose(hailo.infer(other, other_state), fp32.infer(other, other_state), atol=1e-5)
        time.sleep(0.5)  # the late job has written its buffer by now
        np.testing.assert_allclose(hailo.infer(other, other_state), fp32.infer(other, other_state), atol=1e-5)


def test_close_drops_the_models_before_release(hybrid_dir, fake_hailo):
    model = load_model_dir(hybrid_dir)
    image, state = next(frames_and_states(model))
    hailo = create_backend(model, 'hailo')
    hailo.infer(image, state)
    hailo.close()
    gc.collect()  # anything still held by the backend would be destroyed now, after the release
    assert fake_hailo.violations() == []
    with pytest.raises(BackendError, match='closed'):
        hailo.infer(image, state)


def test_fake_detects_use_after_release(hybrid_dir, fake_hailo):
    from hailo_platform import FormatType, HailoRTException, VDevice
    model = load_model_dir(hybrid_dir)
    hef, _, pixels, _ = _hybrid_parts(model, hybrid_dir)
    vdevice = VDevice()
    infer_model = vdevice.create_infer_model(hef)
    infer_model.input().set_format_type(FormatType.FLOAT32)
    configured = infer_model.configure()
    bindings = configured.create_bindings(input_buffers={'rover_backbone/input_layer1': pixels},
                                          output_buffers={'rover_backbone/conv_out': np.empty((6, 8, 8), np.uint8)})
    vdevice.release()  # the configured model still holds its C++ object
    assert len(fake_hailo.violations()) == 1 and 'still holds its C++ object' in fake_hailo.violations()[0]
    with pytest.raises(HailoRTException, match='after VDevice.release'):
        configured.run([bindings], 1000)
    with pytest.raises(HailoRTException, match='after VDevice.release'):
        infer_model.configure()
    assert len(fake_hailo.violations()) == 3
    fake_hailo.clear_violations()
    # HailoRT's own nesting: nothing to report
    with VDevice() as vdevice:
        with vdevice.create_infer_model(hef).configure() as configured:
            configured.create_bindings()
    assert fake_hailo.violations() == []


def test_runs_under_the_numpy_major_the_run_asks_for():
    """The numpy-1 run (make test-numpy1) sets ROVER_EXPECT_NUMPY_MAJOR=1: HailoRT's wheel needs numpy < 2."""
    expected = os.environ.get('ROVER_EXPECT_NUMPY_MAJOR')
    if not expected:
        pytest.skip('ROVER_EXPECT_NUMPY_MAJOR not set (the numpy-1 run sets it)')
    assert np.__version__.split('.')[0] == expected, np.__version__

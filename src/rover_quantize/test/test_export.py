"""ONNX export: equality with PyTorch, the I/O contract of MODEL_DIR.md, backbone+head == whole."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rover_quantize.export import EXPORT_TOLERANCE, export_part, io_spec, policy_graph


@pytest.fixture(scope='module')
def exported(built, tmp_path_factory):
    """full/backbone/head as the pipeline exported them (each self-checked), plus the s2d variant."""
    ck = built.loaded
    out = tmp_path_factory.mktemp('export')
    for part, name in (('full', 'model_fp32.onnx'), ('backbone', 'backbone.onnx'), ('head', 'head.onnx')):
        (out / f'{part}.onnx').symlink_to(built.model_dir / name)
    infos = {name: info for name, info in built.manifest['export'].items()}
    infos['s2d'] = export_part(ck, 'full', out / 's2d.onnx', s2d=True)
    return ck, out, infos


def _session(path):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def test_ort_equals_pytorch(exported):
    ck, out, infos = exported
    for info in infos.values():
        assert info['max_rel_diff_vs_torch'] <= EXPORT_TOLERANCE
        assert info['opset'] >= 17
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (1, 192, 256, 3), dtype=np.uint8)
    state = rng.uniform(-1, 1, (1, 2)).astype(np.float32)
    with torch.no_grad():  # unfused LeRobot arithmetic, fresh input the export never saw
        want = policy_graph(ck, fused=False)(torch.from_numpy(image), torch.from_numpy(state)).numpy()
    for name in ('full.onnx', 's2d.onnx'):
        got = _session(out / name).run(['actions'], {'image': image, 'state': state})[0]
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_io_contract(exported):
    ck, out, _ = exported
    inputs, outputs = io_spec(out / 'full.onnx')
    assert inputs == [{'name': 'image', 'shape': [1, 192, 256, 3], 'dtype': 'uint8'},
                      {'name': 'state', 'shape': [1, 2], 'dtype': 'float32'}]
    assert outputs == [{'name': 'actions', 'shape': [1, 10, 2], 'dtype': 'float32'}]
    b_in, b_out = io_spec(out / 'backbone.onnx')
    assert b_in == [{'name': 'image', 'shape': [1, 192, 256, 3], 'dtype': 'uint8'}]
    h, w = ck.cfg.feature_map_hw
    assert (h, w) == (6, 8)
    assert b_out == [{'name': 'features', 'shape': [1, 512, 6, 8], 'dtype': 'float32'}]
    h_in, h_out = io_spec(out / 'head.onnx')
    assert [i['name'] for i in h_in] == ['features', 'state'] and h_out == outputs


def test_backbone_then_head_equals_whole(exported):
    _, out, _ = exported
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (1, 192, 256, 3), dtype=np.uint8)
    state = np.array([[0.1, 0.4]], np.float32)
    features = _session(out / 'backbone.onnx').run(['features'], {'image': image})[0]
    split = _session(out / 'head.onnx').run(['actions'], {'features': features, 'state': state})[0]
    whole = _session(out / 'full.onnx').run(['actions'], {'image': image, 'state': state})[0]
    np.testing.assert_allclose(split, whole, rtol=1e-4, atol=1e-4)


def test_default_feature_map_size():
    from rover_quantize.act_config import make_config
    assert make_config().feature_map_hw == (12, 20)  # 360x640, as MODEL_DIR.md says


def test_graph_is_clean_onnx(exported):
    _, out, _ = exported
    model = onnx.load(str(out / 'full.onnx'))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {'BatchNormalization', 'ATen', 'PythonOp'}  # frozen BN folded, nothing exotic

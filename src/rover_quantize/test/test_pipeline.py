"""The whole pipeline on a tiny checkpoint and a bag: manifest, hashes, frame split, refusal, CLI, Hailo."""
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from rover_quantize import pipeline
from rover_quantize.cli import main as cli_main
from rover_quantize.errors import QuantizeError, ValidationFailed
from rover_quantize.quantize import QuantResult, corrupt_model

from conftest import BAG_FRAMES, CALIB, VALID


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_contract(built):
    model_dir, manifest = built
    assert manifest['format'] == 'rover-act-model' and manifest['format_version'] == 1
    assert manifest['models'] == {'cpu_fp32': 'model_fp32.onnx', 'cpu_int8': 'model_int8.onnx',
                                  'backbone': 'backbone.onnx', 'head': 'head.onnx'}
    assert manifest['inputs'] == [
        {'name': 'image', 'shape': [1, 192, 256, 3], 'dtype': 'uint8', 'layout': 'NHWC', 'color': 'rgb',
         'feature': 'observation.images.front'},
        {'name': 'state', 'shape': [1, 2], 'dtype': 'float32', 'feature': 'observation.state'}]
    assert manifest['outputs'] == [{'name': 'actions', 'shape': [1, 10, 2], 'dtype': 'float32'}]
    assert manifest['features'] == {'name': 'features', 'shape': [1, 512, 6, 8], 'dtype': 'float32'}
    assert manifest['chunk_size'] == 10 and manifest['n_action_steps'] == 10
    assert manifest['action_names'] == ['steering', 'throttle'] == manifest['state_names']
    assert manifest['camera_topic'] == 'camera/image_raw' and manifest['control_rate_hz'] == 30.0
    assert manifest['checkpoint']['layout'] == 'new'
    q, v = manifest['quantization'], manifest['validation']
    assert q['mode'] == 'static' and q['per_channel'] is True and q['calibration_source'] == 'bags'
    assert q['calibration_frames'] == CALIB and q['int8_mac_fraction'] >= 0.5
    # the saturation guard variant is chosen by measurement: the most accurate all-INT8 model
    tried = {s['step'].rsplit(' ', 1)[1]: s['mse'] for s in q['search']
             if s['step'].startswith(f"all, calibration {q['calibration_method']}, saturation guard")}
    assert set(tried) == {'signed+pixels', 'signed', 'off'}
    assert q['saturation_guard'] == min(tried, key=tried.get)
    if q['saturation_guard'] == 'signed+pixels' and 'backbone.stem' not in q['fp32_groups']:
        assert q['reduced_range_weights'] >= 1  # conv1 sees raw pixels
    assert v['frames'] == VALID and v['passed'] is True
    assert v['mse'] < 1e-3 and v['max_abs_error'] < 0.05
    assert len(v['mse_per_dim']) == 2 == len(v['max_abs_error_per_dim'])
    assert (model_dir / 'report' / 'index.html').is_file()
    assert (model_dir / 'report' / 'error_histogram.png').stat().st_size > 1000


def test_search_target_holds_the_worst_action_dimension_not_the_average():
    # The max error is a max over every dimension; its tail follows the worst dimension's RMS.
    # demo_trained (VNNI bench): steering 9.2e-5, throttle 3.0e-5 passed on the average, and
    # the held-out max error came out 0.0502.
    from rover_quantize.quantize import _passes_search
    even = {'mse': 6.1e-5, 'max_abs_error': 0.028, 'mse_per_dim': [6.1e-5, 6.1e-5]}
    lopsided = {'mse': 6.1e-5, 'max_abs_error': 0.028, 'mse_per_dim': [9.2e-5, 3.0e-5]}
    assert _passes_search(even)
    assert not _passes_search(lopsided)


def test_search_tried_every_fp32_group_back_in_int8(built):
    # The drop steps go by isolated sensitivities and drop in batches; afterwards every group
    # left in FP32 was tried back in INT8 on its own and measured to break the search's target.
    from rover_quantize.quantize import _passes_search
    q = built.manifest['quantization']
    assert q['fp32_groups'], 'the fixture model needs the search (see conftest); this test needs one that does'
    back = {s['step'].removeprefix('back to int8 '): s for s in q['search'] if s['step'].startswith('back to int8 ')}
    assert set(q['fp32_groups']) <= set(back)
    for group in q['fp32_groups']:
        assert back[group]['kept'] is False
        assert not _passes_search({'mse': back[group]['mse'], 'max_abs_error': back[group]['max'],
                                   'mse_per_dim': back[group]['mse_per_dim']})
    returned = {g for g, s in back.items() if s['kept']}
    assert not returned & set(q['fp32_groups'])
    assert _passes_search(q['selection_error'])


def test_manifest_hashes_are_right(built):
    model_dir, manifest = built
    assert set(manifest['files']) == {'model_fp32.onnx', 'model_int8.onnx', 'backbone.onnx', 'head.onnx'}
    for name, entry in manifest['files'].items():
        assert entry['sha256'] == _sha(model_dir / name), name
        assert entry['bytes'] == (model_dir / name).stat().st_size
    assert manifest['checkpoint']['sha256'] == _sha(built.ckpt / 'model.safetensors')


def test_calibration_frames_spread_and_disjoint(built):
    _, manifest = built
    calib = manifest['quantization']['calibration_frame_indices']
    valid = manifest['validation']['frame_indices']
    assert len(calib) == CALIB and len(valid) == VALID
    assert not set(calib) & set(valid)
    select = manifest['quantization']['selection_frame_indices']
    assert select and not set(select) & set(calib) and not set(select) & set(valid)
    total = BAG_FRAMES
    assert min(calib) <= 3 and max(calib) >= total - 4   # over the whole bag, not the first N
    assert min(valid) <= total // 3 and max(valid) >= 2 * total // 3


def test_int8_model_is_quantized_and_close(built):
    model_dir, _ = built
    ops = {n.op_type for n in __import__('onnx').load(str(model_dir / 'model_int8.onnx')).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    rng = np.random.default_rng(0)
    feed = {'image': rng.integers(0, 256, (1, 192, 256, 3), dtype=np.uint8),
            'state': np.array([[0.2, 0.1]], np.float32)}
    fp32 = ort.InferenceSession(str(model_dir / 'model_fp32.onnx'), providers=['CPUExecutionProvider'])
    int8 = ort.InferenceSession(str(model_dir / 'model_int8.onnx'), providers=['CPUExecutionProvider'])
    a, b = fp32.run(None, feed)[0], int8.run(None, feed)[0]
    assert a.shape == b.shape == (1, 10, 2) and not np.array_equal(a, b)


def test_int8_gemm_outputs_stay_float(built):
    # ORT's integer Gemm/MatMul (QGemm, MatMulIntegerToFloat) write float; a QuantizeLinear on
    # that output would round it and clip it to its calibrated range (on demo_trained's action
    # head: max error 0.235 -> 0.071 without it). The next quantized op (the feed-forward's ReLU)
    # still quantizes what it writes, so the int8 path into the following Gemm is unbroken.
    import onnx

    model_dir, _ = built
    graph = onnx.load(str(model_dir / 'model_int8.onnx')).graph
    producer = {o: n for n in graph.node for o in n.output}
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    quantized = [n for n in graph.node if n.op_type in ('Gemm', 'MatMul')
                 and all(i in producer and producer[i].op_type == 'DequantizeLinear' for i in n.input[:2])]
    assert quantized
    for n in quantized:
        assert all(r.op_type != 'QuantizeLinear' for r in readers.get(n.output[0], [])), n.name
    relus = [r for n in quantized for r in readers.get(n.output[0], []) if r.op_type == 'Relu']
    assert relus and all(any(q.op_type == 'QuantizeLinear' for q in readers.get(r.output[0], [])) for r in relus)


def _tree_sha(root):
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob('*')) if p.is_file()}


def test_validation_catches_a_broken_model(built, tmp_path, monkeypatch):
    """A quantized model with a corrupted weight scale must be refused, and written only with force.
    Refused, it must not cost the directory its working INT8 model."""
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    before = _tree_sha(model_dir)

    def broken(pre_path, work_dir, settings, *args, **kwargs):
        # the built INT8 model with one weight scale x50 stands in for a quantizer gone wrong
        # (running the real quantizer three times would take minutes)
        path = corrupt_model(built.model_dir / 'model_int8.onnx', work_dir / 'model_int8.onnx', 'scale')
        return QuantResult(path, settings, [], [], [], {}, [], 0.0, mac_fraction=0.9)
    monkeypatch.setattr(pipeline, 'quantize_model', broken)
    common = dict(bags=[built.bag], calibration_frames=8, validation_frames=6, search=False, report=False,
                  progress=False, ck=built.loaded)
    with pytest.raises(ValidationFailed, match='missed the accuracy bar.*left as it was'):
        pipeline.quantize_model_dir(model_dir, **common)
    assert _tree_sha(model_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['md']  # no staging directory left

    # A directory without an INT8 model has nothing to lose: it gets the manifest saying why.
    manifest = json.loads((model_dir / 'manifest.json').read_text())
    (model_dir / 'model_int8.onnx').unlink()
    del manifest['models']['cpu_int8'], manifest['files']['model_int8.onnx']
    (model_dir / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(ValidationFailed, match='missed the accuracy bar'):
        pipeline.quantize_model_dir(model_dir, **common)
    manifest = json.loads((model_dir / 'manifest.json').read_text())
    assert not (model_dir / 'model_int8.onnx').exists()
    assert 'cpu_int8' not in manifest['models'] and 'model_int8.onnx' not in manifest['files']
    assert manifest['validation']['passed'] is False
    assert any('not written' in n for n in manifest['notes'])

    manifest = pipeline.quantize_model_dir(model_dir, force=True, **common)
    assert (model_dir / 'model_int8.onnx').exists() and manifest['quantization']['forced'] is True
    assert manifest['validation']['passed'] is False
    assert manifest['files']['model_int8.onnx']['sha256'] == _sha(model_dir / 'model_int8.onnx')
    assert _sha(model_dir / 'model_fp32.onnx') == before['model_fp32.onnx']


def test_revalidate_checks_hashes(built, tmp_path):
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    result = pipeline.revalidate(model_dir, bags=[built.bag], frames=5, progress=False)
    assert result['passed'] and result['frames'] == 5
    with open(model_dir / 'head.onnx', 'r+b') as f:
        f.seek(200)
        f.write(b'\x00\x01\x02')
    with pytest.raises(QuantizeError, match='sha256 mismatch.*head.onnx'):
        pipeline.revalidate(model_dir, frames=5, progress=False)


def test_synthetic_build_says_so(tiny_ckpt, tmp_path):
    manifest = pipeline.export_model_dir(tiny_ckpt, tmp_path / 'md', progress=False)
    assert manifest['quantization'] is None and 'cpu_int8' not in manifest['models']
    frames = pipeline.gather_frames(pipeline.FrameSpec.of_manifest(manifest), None, 'camera/image_raw',
                                    'rover/state', 6, 4)
    assert frames.source == 'synthetic' and any('synthetic' in n for n in frames.notes)
    assert frames.calib_images.shape == (6, 96, 128, 3) and frames.valid_states.shape == (4, 2)
    assert not np.array_equal(frames.calib_images[0], frames.valid_images[0])


def test_refuses_to_clobber_a_foreign_directory(tiny_ckpt, tmp_path):
    (tmp_path / 'stuff').mkdir()
    (tmp_path / 'stuff' / 'thesis.txt').write_text('precious')
    with pytest.raises(QuantizeError, match='not a model directory'):
        pipeline.export_model_dir(tiny_ckpt, tmp_path / 'stuff', progress=False)
    assert (tmp_path / 'stuff' / 'thesis.txt').read_text() == 'precious'


def test_hailo_preparation(built, tmp_path):
    from rover_quantize.hailo import add_hef, prepare_hailo
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    with pytest.raises(QuantizeError, match='--bag'):
        prepare_hailo(model_dir, frames=4, progress=False)
    info = prepare_hailo(model_dir, bags=[built.bag], frames=12, progress=False)
    out = model_dir / 'hailo'
    calib = np.load(out / 'calib_set.npy')
    assert calib.shape == (12, 192, 256, 3) and calib.dtype == np.float32
    assert 0 <= calib.min() and calib.max() <= 255 and calib.max() > 100
    manifest = json.loads((model_dir / 'manifest.json').read_text())
    mean, std = manifest['image_normalization']['mean'], manifest['image_normalization']['std']
    alls = (out / 'act_backbone.alls').read_text()
    assert alls.startswith('normalization1 = normalization([') and f'{mean[0]:.4f}' in alls and f'{std[2]:.4f}' in alls
    script = (out / 'compile_hef.sh').read_text()
    for cmd in ('hailo parser onnx backbone_hailo.onnx --hw-arch hailo8l', '--start-node-names',
                'hailo optimize act_backbone.har --hw-arch hailo8l --calib-set-path calib_set.npy',
                '--model-script act_backbone.alls', 'hailo compiler act_backbone_optimized.har --hw-arch hailo8l'):
        assert cmd in script
    # The parser's ONNX takes normalized input: (pixel - mean) / std gives backbone.onnx's features
    image = calib[3:4].astype(np.uint8)
    normalized = ((image.astype(np.float32) - np.float32(mean)) / np.float32(std)).transpose(0, 3, 1, 2)
    hailo = ort.InferenceSession(str(out / 'backbone_hailo.onnx'), providers=['CPUExecutionProvider'])
    full = ort.InferenceSession(str(model_dir / 'backbone.onnx'), providers=['CPUExecutionProvider'])
    assert [i.name for i in hailo.get_inputs()] == ['image_normalized'] and info['input_shape'] == [1, 3, 192, 256]
    got = hailo.run(None, {'image_normalized': normalized})[0]
    want = full.run(None, {'image': image})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    # a HEF compiled elsewhere gets registered with its hash
    fake = tmp_path / 'act_backbone.hef'
    fake.write_bytes(b'HEF-not-really' * 10)
    manifest = add_hef(model_dir, fake, 'features')
    assert manifest['models']['hef'] == 'model.hef' and manifest['models']['hef_output'] == 'features'
    assert manifest['files']['model.hef']['sha256'] == _sha(fake)


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(['--help'])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for sub in ('build', 'export', 'quantize', 'validate', 'hailo', 'add-hef'):
        assert sub in text
    assert cli_main(['build', str(tmp_path / 'missing'), '-o', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'checkpoint directory not found' in err and 'Traceback' not in err
    assert cli_main(['validate', str(tmp_path)]) == 2
    assert 'manifest.json not found' in capsys.readouterr().err


def test_console_script_runs_as_module(tmp_path):
    import os
    from pathlib import Path
    src = Path(__file__).resolve().parents[2]   # this package and rover_common (the model contract)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src / 'rover_quantize'), str(src / 'rover_common')]))
    proc = subprocess.run([sys.executable, '-m', 'rover_quantize.cli', 'hailo', str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith('rover-quantize: error:') and 'Traceback' not in proc.stderr


def test_cli_random_checkpoint_and_export(tmp_path, capsys):
    assert cli_main(['--quiet', 'random-checkpoint', str(tmp_path / 'ck'), '--tiny', '--layout', 'old']) == 0
    assert cli_main(['--quiet', 'export', str(tmp_path / 'ck'), '-o', str(tmp_path / 'md')]) == 0
    out = capsys.readouterr().out
    assert 'exported model_fp32.onnx, backbone.onnx, head.onnx' in out
    manifest = json.loads((tmp_path / 'md' / 'manifest.json').read_text())
    assert manifest['checkpoint']['layout'] == 'old' and manifest['inputs'][0]['shape'] == [1, 192, 256, 3]
    for name, entry in manifest['files'].items():
        assert entry['sha256'] == _sha(tmp_path / 'md' / name)


@pytest.mark.parametrize('mode', ['dynamic', 'mixed'])
def test_other_modes(built, tmp_path, mode):
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    # force: a random model may miss the bar in these modes; the run itself must work
    manifest = pipeline.quantize_model_dir(model_dir, mode=mode, bags=[built.bag], calibration_frames=8,
                                           validation_frames=6, search=False, report=False, progress=False,
                                           ck=built.loaded, force=True)
    assert manifest == json.loads((model_dir / 'manifest.json').read_text())
    q = manifest['quantization']
    assert q['mode'] == mode
    if mode == 'mixed':  # transformer INT8, backbone FP32
        assert all(g.startswith('backbone.') for g in q['fp32_groups']) and q['fp32_groups']
    import onnx
    ops = {n.op_type for n in onnx.load(str(model_dir / 'model_int8.onnx')).graph.node}
    expected = {'DynamicQuantizeLinear', 'MatMulInteger'} if mode == 'dynamic' else {'QuantizeLinear'}
    assert ops & expected, ops
    assert manifest['validation']['frames'] == 6


def test_auto_calibration_measures_percentile_and_mse(built, tmp_path):
    model_dir = tmp_path / 'md'
    shutil.copytree(built.model_dir, model_dir)
    manifest = pipeline.quantize_model_dir(model_dir, calibration_method='auto', bags=[built.bag],
                                           calibration_frames=8, validation_frames=6, search=False,
                                           report=False, progress=False, ck=built.loaded, force=True)
    q = manifest['quantization']
    steps = [s['step'] for s in q['search']]
    # both methods' all-INT8 models were built and measured, bias correction on and off
    assert any('calibration Percentile' in s for s in steps) and any('calibration MSE' in s for s in steps)
    assert 'all, bias correction off' in steps
    measured = {s['step']: s['mse'] for s in q['search'] if s['step'].startswith('all, calibration')}
    final = q['search'][-1]
    assert final['step'] == 'all' and q['calibration_method'] in ('Percentile', 'MSE')
    assert final['mse'] <= min(measured.values()) + 1e-12   # the kept model is the best one measured
    assert q['bias_correction'] == final['bias_correction']

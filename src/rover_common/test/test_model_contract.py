"""The model-directory contract module: standard library only, and what both sides rely on."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rover_common import model_contract as mc

CONTRACT = Path(mc.__file__)


def test_loads_alone_without_numpy_torch_or_ros():
    """The policy node on the Pi and rover-quantize on a training PC both use this file."""
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("model_contract", {str(CONTRACT)!r})\n'
            'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n'
            'print(sorted(m for m in ("numpy", "torch", "onnx", "onnxruntime", "rclpy", "rover_quantize", "rover_policy") '
            'if m in sys.modules))\n')
    out = subprocess.run([sys.executable, '-I', '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_temporal_ensemble_coeff_has_lerobots_meaning():
    assert mc.check_temporal_ensemble_coeff(None, 100) is None        # off: any n_action_steps
    assert mc.check_temporal_ensemble_coeff(0.01, 1) == 0.01           # the ACT paper's value
    assert mc.check_temporal_ensemble_coeff(-0.5, 1) == -0.5           # favours newer predictions
    assert mc.check_temporal_ensemble_coeff(0, 1) == 0.0               # uniform
    with pytest.raises(mc.ContractError, match='needs n_action_steps == 1'):
        mc.check_temporal_ensemble_coeff(0.01, 100)
    for bad in (math.nan, math.inf, '0.01', True):
        with pytest.raises(mc.ContractError, match='finite number'):
            mc.check_temporal_ensemble_coeff(bad, 1)


def test_checks_catch_a_changed_file_and_a_foreign_manifest(tmp_path):
    (tmp_path / 'a.onnx').write_bytes(b'model')
    manifest = mc.new_manifest(inputs=[], outputs=[], features=None, chunk_size=10, n_action_steps=10,
                               temporal_ensemble_coeff=None, action_names=['steering', 'throttle'],
                               state_names=['steering', 'throttle'], models={mc.CPU_FP32: 'a.onnx'},
                               files=mc.files_entry(tmp_path, ['a.onnx']), created_by='test')
    mc.write_manifest(tmp_path, manifest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.onnx', 'manifest.json']  # no temp file left
    assert mc.read_manifest(tmp_path) == manifest and mc.verify_files(tmp_path, manifest) == []
    (tmp_path / 'a.onnx').write_bytes(b'mode1')
    assert mc.verify_files(tmp_path, manifest) == ['a.onnx']
    (tmp_path / 'a.onnx').unlink()
    assert mc.verify_files(tmp_path, manifest) == ['a.onnx']
    (tmp_path / 'manifest.json').write_text(json.dumps({**manifest, 'format_version': 2}))
    with pytest.raises(mc.ContractError, match='unsupported format_version 2'):
        mc.read_manifest(tmp_path)
    (tmp_path / 'manifest.json').write_text('{"format": "other"}')
    with pytest.raises(mc.ContractError, match="expected 'rover-act-model'"):
        mc.read_manifest(tmp_path)
    with pytest.raises(mc.ContractError, match='not found'):
        mc.read_manifest(tmp_path / 'nowhere')

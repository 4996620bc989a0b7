"""The model-directory contract (MODEL_DIR.md) in code: the one definition the writer
(rover_quantize), the reader (rover_policy) and the tests' fixtures share.

Standard library only (no ROS, numpy, torch or ONNX): the policy node on the Pi, where
rover_quantize is not built, can use this file as it is.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

MANIFEST = 'manifest.json'
FORMAT = 'rover-act-model'
FORMAT_VERSION = 1                 # changes only on incompatible changes; readers ignore unknown keys
SUPPORTED_FORMAT_VERSIONS = (1,)

# File names inside the directory, and the `models` keys that name them.
FP32_FILE = 'model_fp32.onnx'
INT8_FILE = 'model_int8.onnx'
BACKBONE_FILE = 'backbone.onnx'
HEAD_FILE = 'head.onnx'
HEAD_INT8_FILE = 'head_int8.onnx'  # optional (rover-quantize --hailo-head-int8): head.onnx in INT8
HEF_FILE = 'model.hef'
REPORT_DIR = 'report'
HAILO_DIR = 'hailo'
CPU_FP32, CPU_INT8, BACKBONE, HEAD, HEF = 'cpu_fp32', 'cpu_int8', 'backbone', 'head', 'hef'
HEAD_INT8 = 'head_int8'
HEF_OUTPUTS = ('features', 'actions')  # models.hef_output: the feature map (hybrid) or the actions

# Tensor names of the graphs.
IMAGE_INPUT = 'image'              # [1, H, W, 3] uint8 RGB; several cameras: image_<camera>
STATE_INPUT = 'state'              # [1, state_dim] float32, unnormalized
ENV_STATE_INPUT = 'environment_state'
ACTIONS_OUTPUT = 'actions'         # [1, chunk_size, action_dim] float32, unnormalized
FEATURES = 'features'              # backbone output [1, C, h, w] (NCHW)

# Defaults a reader applies when the manifest leaves a key out.
DEFAULT_NAMES = ('steering', 'throttle')     # state_names / action_names of the rover
DEFAULT_CONTROL_RATE_HZ = 30.0
DEFAULT_CAMERA_TOPIC = 'camera/image_raw'


class ContractError(ValueError):
    """A manifest or model directory that breaks the contract; the message says how."""


def sha256_of(path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(block_size), b''):
            digest.update(block)
    return digest.hexdigest()


def files_entry(model_dir, names) -> dict:
    """The manifest's `files` entries for these files: {name: {"sha256", "bytes"}}."""
    return {name: {'sha256': sha256_of(Path(model_dir) / name),
                   'bytes': (Path(model_dir) / name).stat().st_size} for name in names}


def verify_files(model_dir, manifest: dict, names=None) -> list[str]:
    """Names (all of `files`, or the given ones) whose file is missing or has another sha256."""
    files = manifest.get('files') or {}
    bad = []
    for name in (files if names is None else names):
        path = Path(model_dir) / name
        expected = str((files.get(name) or {}).get('sha256', '')).lower()
        if not expected or not path.is_file() or sha256_of(path) != expected:
            bad.append(name)
    return bad


def write_manifest(model_dir, manifest: dict) -> Path:
    """Write atomically (a reader never sees half a manifest)."""
    path = Path(model_dir) / MANIFEST
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(manifest, indent=2) + '\n')
    os.replace(tmp, path)
    return path


def read_manifest(model_dir) -> dict:
    """The parsed manifest after checking format and version (ContractError otherwise)."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContractError(f'{path} not found (not a model directory written by rover-quantize?)') from None
    except (OSError, ValueError) as exc:
        raise ContractError(f'cannot read {path}: {exc}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        got = manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__
        raise ContractError(f'{path}: "format" is {got!r}, expected {FORMAT!r}')
    if manifest.get('format_version') not in SUPPORTED_FORMAT_VERSIONS:
        raise ContractError(f'{path}: unsupported format_version {manifest.get("format_version")!r}; '
                            f'this reader knows {", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))}')
    return manifest


def check_temporal_ensemble_coeff(value, n_action_steps: int) -> float | None:
    """The manifest's `temporal_ensemble_coeff`, checked with LeRobot's meaning.

    None: no temporal ensembling (LeRobot's default). A number k: every control step blends all
    chunks' actions for that step with weights w_i = exp(-k * i), w_0 the oldest chunk's action
    (k = 0 uniform, k > 0 favours older predictions, k < 0 newer ones; the ACT paper uses 0.01).
    Like LeRobot's ACTConfig it needs n_action_steps == 1 (a new chunk every step)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContractError(f'temporal_ensemble_coeff must be null or a finite number, got {value!r}')
    if n_action_steps != 1:
        raise ContractError(f'temporal_ensemble_coeff {value} needs n_action_steps == 1 (as in LeRobot), '
                            f'got {n_action_steps}')
    return float(value)


def new_manifest(*, inputs: list, outputs: list, features, chunk_size: int, n_action_steps: int,
                 temporal_ensemble_coeff: float | None, action_names: list, state_names: list,
                 models: dict, files: dict, created_by: str,
                 control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ,
                 camera_topic: str = DEFAULT_CAMERA_TOPIC, **extra) -> dict:
    """A manifest with every key the contract requires (writers add their own keys in `extra`)."""
    check_temporal_ensemble_coeff(temporal_ensemble_coeff, n_action_steps)
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'created_by': created_by,
        'files': files, 'models': models, 'inputs': inputs, 'outputs': outputs, 'features': features,
        'chunk_size': int(chunk_size), 'n_action_steps': int(n_action_steps),
        'temporal_ensemble_coeff': temporal_ensemble_coeff,
        'action_names': list(action_names), 'state_names': list(state_names),
        'control_rate_hz': float(control_rate_hz), 'camera_topic': camera_topic,
        **extra,
    }

"""Load and check a model directory written by rover_quantize (see rover_quantize/MODEL_DIR.md).

Everything the policy needs comes from `manifest.json`; nothing is guessed from
file names. Every model file the policy loads is checked against the sha256 the
manifest lists for it, so a half-copied or swapped file never drives the car.
File names, keys, versions and defaults are the contract's
(rover_common.model_contract), which rover_quantize writes by.
"""
import json
import math
import os
from dataclasses import dataclass, field

from rover_common.model_contract import (DEFAULT_CONTROL_RATE_HZ, DEFAULT_NAMES, FORMAT, MANIFEST,
                                         SUPPORTED_FORMAT_VERSIONS, ContractError,
                                         check_temporal_ensemble_coeff, sha256_of)

MANIFEST_NAME = MANIFEST
FORMAT_NAME = FORMAT
KNOWN_NAMES = DEFAULT_NAMES   # the rover maps [steering, throttle] to angular.z / linear.x


class ModelDirError(Exception):
    """The model directory cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple
    dtype: str
    layout: str = ''
    color: str = ''


@dataclass
class ModelDir:
    path: str
    manifest: dict
    image: TensorSpec                 # [1, H, W, 3]
    state: TensorSpec                 # [1, state_dim]
    actions: TensorSpec               # [1, chunk_size, action_dim]
    features: TensorSpec | None       # [1, C, h, w] (NCHW) or None when the manifest has none
    chunk_size: int
    n_action_steps: int
    temporal_ensemble_coeff: float | None
    control_rate_hz: float
    action_names: list = field(default_factory=list)
    state_names: list = field(default_factory=list)

    @property
    def image_height(self) -> int:
        return self.image.shape[1]

    @property
    def image_width(self) -> int:
        return self.image.shape[2]

    @property
    def state_dim(self) -> int:
        return self.state.shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[2]

    def model_file(self, key: str) -> str:
        """Relative file name of `models[key]`, or a ModelDirError saying it is absent."""
        models = self.manifest.get('models') or {}
        name = models.get(key)
        if not name:
            available = ', '.join(sorted(k for k, v in models.items() if v)) or 'none'
            raise ModelDirError(
                f'{self.manifest_path}: no "{key}" model listed under "models" '
                f'(available: {available})')
        return name

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.path, MANIFEST_NAME)

    def verified_path(self, relative_name: str) -> str:
        """Absolute path of a file of the directory after checking its sha256."""
        path = os.path.join(self.path, relative_name)
        if not os.path.isfile(path):
            raise ModelDirError(f'model file missing: {path} (listed in {self.manifest_path})')
        expected = ((self.manifest.get('files') or {}).get(relative_name) or {}).get('sha256')
        if not expected:
            raise ModelDirError(
                f'{self.manifest_path} lists no sha256 for {relative_name} under "files"; '
                'refusing to load an unverified model file')
        actual = sha256_of(path)
        if actual.lower() != str(expected).lower():
            raise ModelDirError(
                f'checksum mismatch for {path}: manifest says sha256 {expected}, '
                f'the file has {actual} (file changed or copied incompletely; re-export or re-copy it)')
        return path

    def verified_model(self, key: str) -> str:
        """Checked absolute path of `models[key]` (e.g. "cpu_int8", "head", "hef")."""
        return self.verified_path(self.model_file(key))

    def has_sha256_for(self, path: str) -> bool:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.path))
        return bool(((self.manifest.get('files') or {}).get(relative) or {}).get('sha256'))

    def relative_name(self, path: str) -> str | None:
        """The manifest name of `path` when it lies inside the directory, else None."""
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.path))
        return None if relative.startswith('..') else relative

    def check_rover_names(self) -> None:
        """The rover maps [steering, throttle] to angular.z/linear.x; refuse other vectors."""
        unknown = [n for n in self.state_names if n not in KNOWN_NAMES]
        if unknown:
            raise ModelDirError(
                f'{self.manifest_path}: state_names {self.state_names} contain {unknown}; '
                f'the rover provides only {", ".join(KNOWN_NAMES)}')
        missing = [n for n in KNOWN_NAMES if n not in self.action_names]
        if missing:
            raise ModelDirError(
                f'{self.manifest_path}: action_names {self.action_names} lack {missing}; '
                'the rover needs a steering and a throttle action')


def load_model_dir(path: str) -> ModelDir:
    """Read and validate `path/manifest.json` (files are checked when they are loaded)."""
    if not path:
        raise ModelDirError('no model directory given (parameter model_dir is empty)')
    if not os.path.isdir(path):
        raise ModelDirError(f'model directory not found: {path}')
    manifest_path = os.path.join(path, MANIFEST_NAME)
    if not os.path.isfile(manifest_path):
        raise ModelDirError(
            f'{path} has no {MANIFEST_NAME}; is it a directory written by rover-quantize?')
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelDirError(f'cannot read {manifest_path}: {exc}') from exc
    if not isinstance(manifest, dict):
        raise ModelDirError(f'{manifest_path}: expected a JSON object')
    return _parse(os.path.abspath(path), manifest_path, manifest)


def _parse(path, manifest_path, manifest) -> ModelDir:
    def fail(message):
        raise ModelDirError(f'{manifest_path}: {message}')

    if manifest.get('format') != FORMAT_NAME:
        fail(f'"format" is {manifest.get("format")!r}, expected {FORMAT_NAME!r}')
    version = manifest.get('format_version')
    if version not in SUPPORTED_FORMAT_VERSIONS:
        fail(f'unsupported format_version {version!r}; this rover_policy reads version(s) '
             f'{", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))} (update rover_policy or re-export)')

    inputs = manifest.get('inputs')
    if not isinstance(inputs, list) or not inputs:
        fail('"inputs" must be a non-empty list')
    images = [i for i in inputs if _is_image(i)]
    others = [i for i in inputs if not _is_image(i)]
    if len(images) > 1:
        fail(f'{len(images)} camera inputs ({", ".join(i.get("name", "?") for i in images)}); '
             'the policy node supports exactly one camera')
    if not images:
        fail('no image input (expected {"name": "image", "shape": [1, H, W, 3], ...})')
    if len(others) != 1:
        fail(f'expected exactly one state input besides the image, found {len(others)}')
    image = _spec(images[0], fail)
    state = _spec(others[0], fail)
    if len(image.shape) != 4 or image.shape[0] != 1 or image.shape[3] != 3:
        fail(f'image input {image.name} must have shape [1, H, W, 3], got {list(image.shape)}')
    if image.layout and image.layout.upper() != 'NHWC':
        fail(f'image input {image.name} has layout {image.layout}; only NHWC is supported')
    if image.dtype not in ('uint8', 'float32'):
        fail(f'image input {image.name} has dtype {image.dtype}; expected uint8 (or float32 0-255)')
    if image.color and image.color.lower() not in ('rgb', 'bgr'):
        fail(f'image input {image.name} has color {image.color!r}; expected "rgb" or "bgr"')
    if len(state.shape) != 2 or state.shape[0] != 1 or state.dtype != 'float32':
        fail(f'state input {state.name} must be float32 [1, state_dim], got '
             f'{state.dtype} {list(state.shape)}')

    outputs = manifest.get('outputs')
    if not isinstance(outputs, list) or len(outputs) != 1:
        fail('"outputs" must list exactly one tensor (the actions)')
    actions = _spec(outputs[0], fail)
    if len(actions.shape) != 3 or actions.shape[0] != 1:
        fail(f'output {actions.name} must have shape [1, chunk_size, action_dim], got {list(actions.shape)}')
    chunk_size = _int(manifest.get('chunk_size', actions.shape[1]), 'chunk_size', fail)
    if chunk_size != actions.shape[1]:
        fail(f'chunk_size {chunk_size} differs from the output shape {list(actions.shape)}')
    n_action_steps = _int(manifest.get('n_action_steps', chunk_size), 'n_action_steps', fail)
    if not 1 <= n_action_steps <= chunk_size:
        fail(f'n_action_steps {n_action_steps} must be in 1..chunk_size ({chunk_size})')

    features = None
    if manifest.get('features'):
        features = _spec(manifest['features'], fail)
        if len(features.shape) != 4 or features.shape[0] != 1:
            fail(f'features must have shape [1, C, h, w], got {list(features.shape)}')

    try:  # LeRobot's meaning: None = off; any finite k weights chunks exp(-k * i), oldest first
        coeff = check_temporal_ensemble_coeff(manifest.get('temporal_ensemble_coeff'), n_action_steps)
    except ContractError as exc:
        fail(str(exc))
    try:
        rate = float(manifest.get('control_rate_hz', DEFAULT_CONTROL_RATE_HZ))
    except (TypeError, ValueError):
        fail(f'control_rate_hz {manifest.get("control_rate_hz")!r} is not a number')
    if not math.isfinite(rate) or rate <= 0:
        fail(f'control_rate_hz must be > 0, got {rate}')

    action_names = _names(manifest.get('action_names'), actions.shape[2], 'action_names', fail)
    state_names = _names(manifest.get('state_names'), state.shape[1], 'state_names', fail)
    if not isinstance(manifest.get('models'), dict):
        fail('"models" must map backend names to files')
    if not isinstance(manifest.get('files'), dict):
        fail('"files" must map file names to {"sha256": ...}')

    return ModelDir(path=path, manifest=manifest, image=image, state=state, actions=actions,
                    features=features, chunk_size=chunk_size, n_action_steps=n_action_steps,
                    temporal_ensemble_coeff=coeff, control_rate_hz=rate,
                    action_names=action_names, state_names=state_names)


def _is_image(entry) -> bool:
    if not isinstance(entry, dict):
        return False
    name = str(entry.get('name', ''))
    return name == 'image' or name.startswith('image_') or 'layout' in entry or 'color' in entry


def _spec(entry, fail) -> TensorSpec:
    if not isinstance(entry, dict) or not entry.get('name'):
        fail(f'tensor entry without a name: {entry!r}')
    shape = entry.get('shape')
    if not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape):
        fail(f'tensor {entry["name"]} needs a static shape of positive ints, got {shape!r}')
    return TensorSpec(name=entry['name'], shape=tuple(shape), dtype=str(entry.get('dtype', 'float32')),
                      layout=str(entry.get('layout', '')), color=str(entry.get('color', '')))


def _int(value, key, fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(f'{key} must be an integer, got {value!r}')
    return value


def _names(names, size, key, fail) -> list:
    if names is None:
        if size > len(DEFAULT_NAMES):
            fail(f'{key} missing and the vector has {size} entries; name them')
        return list(DEFAULT_NAMES[:size])
    if not isinstance(names, list) or len(names) != size:
        fail(f'{key} {names!r} must list {size} names')
    return [str(n) for n in names]

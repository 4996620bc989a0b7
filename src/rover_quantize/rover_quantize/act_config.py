"""LeRobot ACT configuration (`config.json` of a pretrained policy directory).

Field names and defaults follow LeRobot's `ACTConfig`
(src/lerobot/policies/act/configuration_act.py). Both config styles are read:
the current one (`input_features` / `output_features` / `normalization_mapping`)
and the early one (`input_shapes` / `output_shapes` / `*_normalization_modes`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError
from rover_common.model_contract import ContractError, check_temporal_ensemble_coeff

OBS_STATE = 'observation.state'
OBS_ENV_STATE = 'observation.environment_state'
OBS_IMAGE_PREFIX = 'observation.image'  # both observation.image and observation.images.<cam>
ACTION = 'action'

NORM_MODES = ('MEAN_STD', 'MIN_MAX', 'IDENTITY', 'QUANTILES', 'QUANTILE10')
FEATURE_TYPES = ('VISUAL', 'STATE', 'ENV', 'ACTION')

# backbone name -> BasicBlock counts per stage (torchvision layout)
RESNET_LAYERS = {'resnet18': (2, 2, 2, 2), 'resnet34': (3, 4, 6, 3)}

# LeRobot ACTConfig defaults (inference-relevant ones plus the ones it writes out).
DEFAULTS = {
    'n_obs_steps': 1,
    'chunk_size': 100,
    'n_action_steps': 100,
    'vision_backbone': 'resnet18',
    'pretrained_backbone_weights': 'ResNet18_Weights.IMAGENET1K_V1',
    'replace_final_stride_with_dilation': False,
    'pre_norm': False,
    'dim_model': 512,
    'n_heads': 8,
    'dim_feedforward': 3200,
    'feedforward_activation': 'relu',
    'n_encoder_layers': 4,
    'n_decoder_layers': 1,
    'use_vae': True,
    'latent_dim': 32,
    'n_vae_encoder_layers': 4,
    'temporal_ensemble_coeff': None,
    'dropout': 0.1,
    'kl_weight': 10.0,
    'optimizer_lr': 1e-5,
    'optimizer_weight_decay': 1e-4,
    'optimizer_lr_backbone': 1e-5,
}


@dataclass(frozen=True)
class Feature:
    type: str
    shape: tuple


@dataclass
class ActConfig:
    input_features: dict
    output_features: dict
    normalization_mapping: dict
    n_obs_steps: int = 1
    chunk_size: int = 100
    n_action_steps: int = 100
    vision_backbone: str = 'resnet18'
    replace_final_stride_with_dilation: bool = False
    pre_norm: bool = False
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = 'relu'
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    temporal_ensemble_coeff: float | None = None
    raw: dict = field(default_factory=dict, repr=False)

    # -- the feature views ACT itself uses (PreTrainedConfig properties) --
    @property
    def image_features(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.type == 'VISUAL']

    @property
    def robot_state_feature(self) -> Feature | None:
        f = self.input_features.get(OBS_STATE)
        return f if f is not None and f.type == 'STATE' else None

    @property
    def env_state_feature(self) -> Feature | None:
        f = self.input_features.get(OBS_ENV_STATE)
        return f if f is not None and f.type == 'ENV' else None

    @property
    def action_feature(self) -> Feature:
        return self.output_features[ACTION]

    @property
    def state_dim(self) -> int:
        return int(self.robot_state_feature.shape[0]) if self.robot_state_feature else 0

    @property
    def action_dim(self) -> int:
        return int(self.action_feature.shape[0])

    @property
    def image_hw(self) -> tuple[int, int]:
        shape = self.input_features[self.image_features[0]].shape
        return int(shape[1]), int(shape[2])

    @property
    def backbone_channels(self) -> int:
        return 512  # resnet18/34 layer4

    @property
    def feature_map_hw(self) -> tuple[int, int]:
        """layer4 output size: conv1 /2, maxpool /2, layer2..4 /2 each (conv arithmetic)."""
        h, w = self.image_hw

        def down(n, k, s, p):
            return (n + 2 * p - k) // s + 1
        h, w = down(h, 7, 2, 3), down(w, 7, 2, 3)
        h, w = down(h, 3, 2, 1), down(w, 3, 2, 1)
        for _ in range(3):
            h, w = down(h, 3, 2, 1), down(w, 3, 2, 1)
        return h, w

    def norm_mode(self, feature_type: str) -> str:
        return self.normalization_mapping.get(feature_type, 'IDENTITY')

    def camera_names(self) -> list[str]:
        """Short names: observation.images.front -> front; observation.image -> image."""
        return [k.split('.')[-1] for k in self.image_features]

    def to_json_dict(self) -> dict:
        """A LeRobot-style config.json (current style) for this configuration."""
        out = {'type': 'act'}
        for key, value in DEFAULTS.items():
            out[key] = value
        out.update({k: v for k, v in self.raw.items() if k not in ('input_features', 'output_features')})
        out['input_features'] = {k: {'type': f.type, 'shape': list(f.shape)} for k, f in self.input_features.items()}
        out['output_features'] = {k: {'type': f.type, 'shape': list(f.shape)} for k, f in self.output_features.items()}
        out['normalization_mapping'] = dict(self.normalization_mapping)
        for name in ('n_obs_steps', 'chunk_size', 'n_action_steps', 'vision_backbone',
                     'replace_final_stride_with_dilation', 'pre_norm', 'dim_model', 'n_heads',
                     'dim_feedforward', 'feedforward_activation', 'n_encoder_layers',
                     'n_decoder_layers', 'use_vae', 'latent_dim', 'n_vae_encoder_layers',
                     'temporal_ensemble_coeff'):
            out[name] = getattr(self, name)
        return out


def _feature_type_from_key(key: str) -> str:
    if key.startswith(OBS_IMAGE_PREFIX):
        return 'VISUAL'
    if key == OBS_ENV_STATE:
        return 'ENV'
    if key == ACTION:
        return 'ACTION'
    return 'STATE'


def _parse_features(raw: dict, where: str) -> dict:
    features = {}
    if not isinstance(raw, dict):
        raise CheckpointError(f'config.json: {where} must be an object, got {type(raw).__name__}')
    for key, value in raw.items():
        if not isinstance(value, dict) or 'shape' not in value:
            raise CheckpointError(f'config.json: {where}[{key!r}] needs "type" and "shape"')
        ftype = str(value.get('type', _feature_type_from_key(key))).upper()
        try:
            shape = tuple(int(s) for s in value['shape'])
        except (TypeError, ValueError):
            raise CheckpointError(f'config.json: {where}[{key!r}].shape is not a list of integers') from None
        features[key] = Feature(ftype, shape)
    return features


def _legacy_features(raw: dict) -> tuple[dict, dict, dict]:
    """input_shapes/output_shapes + *_normalization_modes (LeRobot before `input_features`)."""
    inputs = {k: Feature(_feature_type_from_key(k), tuple(int(s) for s in v))
              for k, v in raw['input_shapes'].items()}
    outputs = {k: Feature(_feature_type_from_key(k), tuple(int(s) for s in v))
               for k, v in raw.get('output_shapes', {}).items()}
    mapping = {}
    modes = dict(raw.get('input_normalization_modes', {}))
    modes.update(raw.get('output_normalization_modes', {}))
    for key, mode in modes.items():
        ftype = _feature_type_from_key(key)
        mode = str(mode).upper()
        if mapping.get(ftype, mode) != mode:
            raise CheckpointError(
                f'config.json: features of type {ftype} use different normalization modes; not supported')
        mapping[ftype] = mode
    return inputs, outputs, mapping


def parse_config(raw: dict) -> ActConfig:
    """Validate a config.json dict into an ActConfig (clear error on anything unusable)."""
    if not isinstance(raw, dict):
        raise CheckpointError('config.json must hold a JSON object')
    policy_type = raw.get('type', 'act')
    if policy_type != 'act':
        raise CheckpointError(f'config.json: policy type is {policy_type!r}, expected "act"')
    if 'input_features' in raw:
        inputs = _parse_features(raw['input_features'], 'input_features')
        outputs = _parse_features(raw.get('output_features', {}), 'output_features')
        mapping_raw = raw.get('normalization_mapping', {
            'VISUAL': 'MEAN_STD', 'STATE': 'MEAN_STD', 'ACTION': 'MEAN_STD'})
        mapping = {str(k).upper(): str(v).upper() for k, v in mapping_raw.items()}
    elif 'input_shapes' in raw:
        inputs, outputs, mapping = _legacy_features(raw)
    else:
        raise CheckpointError('config.json has neither "input_features" nor "input_shapes"')
    for ftype, mode in mapping.items():
        if mode not in NORM_MODES:
            raise CheckpointError(
                f'config.json: normalization mode {mode!r} for {ftype} is not one of {", ".join(NORM_MODES)}')

    values = {}
    for name, default in DEFAULTS.items():
        values[name] = raw.get(name, default)
    cfg = ActConfig(
        input_features=inputs, output_features=outputs, normalization_mapping=mapping,
        n_obs_steps=int(values['n_obs_steps']), chunk_size=int(values['chunk_size']),
        n_action_steps=int(values['n_action_steps']), vision_backbone=str(values['vision_backbone']),
        replace_final_stride_with_dilation=bool(values['replace_final_stride_with_dilation']),
        pre_norm=bool(values['pre_norm']), dim_model=int(values['dim_model']),
        n_heads=int(values['n_heads']), dim_feedforward=int(values['dim_feedforward']),
        feedforward_activation=str(values['feedforward_activation']),
        n_encoder_layers=int(values['n_encoder_layers']), n_decoder_layers=int(values['n_decoder_layers']),
        use_vae=bool(values['use_vae']), latent_dim=int(values['latent_dim']),
        n_vae_encoder_layers=int(values['n_vae_encoder_layers']),
        temporal_ensemble_coeff=values['temporal_ensemble_coeff'],
        raw=dict(raw),
    )
    validate_config(cfg)
    return cfg


def validate_config(cfg: ActConfig) -> None:
    problems = []
    if ACTION not in cfg.output_features:
        problems.append('output_features has no "action"')
    elif len(cfg.action_feature.shape) != 1:
        problems.append(f'action shape must be 1-D, got {list(cfg.action_feature.shape)}')
    if not cfg.image_features and cfg.env_state_feature is None:
        problems.append('ACT needs at least one image or observation.environment_state input')
    shapes = {cfg.input_features[k].shape for k in cfg.image_features}
    if len(shapes) > 1:
        problems.append(f'all cameras must have the same shape, got {sorted(shapes)}')
    for key in cfg.image_features:
        shape = cfg.input_features[key].shape
        if len(shape) != 3 or shape[0] != 3:
            problems.append(f'{key} shape must be [3, H, W], got {list(shape)}')
    if cfg.robot_state_feature is not None and len(cfg.robot_state_feature.shape) != 1:
        problems.append('observation.state shape must be 1-D')
    if cfg.vision_backbone not in RESNET_LAYERS and cfg.image_features:
        problems.append(f'vision_backbone {cfg.vision_backbone!r} not supported (use one of '
                        f'{", ".join(RESNET_LAYERS)})')
    if cfg.replace_final_stride_with_dilation and cfg.image_features:
        problems.append('replace_final_stride_with_dilation is not possible with BasicBlock ResNets '
                        '(torchvision refuses it for resnet18/34 too)')
    if cfg.feedforward_activation not in ('relu', 'gelu'):
        problems.append(f'feedforward_activation {cfg.feedforward_activation!r} not supported '
                        '(relu or gelu; glu does not fit LeRobot\'s linear2 shape)')
    if cfg.dim_model % cfg.n_heads:
        problems.append(f'dim_model {cfg.dim_model} is not divisible by n_heads {cfg.n_heads}')
    if cfg.dim_model % 2:
        problems.append('dim_model must be even (2-D sinusoidal position embedding)')
    if cfg.n_obs_steps != 1:
        problems.append(f'n_obs_steps must be 1, got {cfg.n_obs_steps}')
    if cfg.n_action_steps > cfg.chunk_size:
        problems.append(f'n_action_steps {cfg.n_action_steps} > chunk_size {cfg.chunk_size}')
    try:
        check_temporal_ensemble_coeff(cfg.temporal_ensemble_coeff, cfg.n_action_steps)
    except ContractError as exc:
        problems.append(str(exc))
    for name in ('chunk_size', 'dim_model', 'n_heads', 'dim_feedforward', 'n_encoder_layers',
                 'n_decoder_layers', 'latent_dim'):
        if getattr(cfg, name) < 1:
            problems.append(f'{name} must be >= 1')
    if problems:
        raise CheckpointError('config.json: ' + '; '.join(problems))


def load_config(path: Path) -> ActConfig:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f'{path} not found') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{path} is not valid JSON: {exc}') from None
    return parse_config(raw)


def make_config(*, image_shape=(360, 640), state_dim=2, action_dim=2, cameras=('front',),
                normalization_mapping=None, **overrides) -> ActConfig:
    """An ActConfig built from a few knobs (used by the random checkpoint writer and the bench)."""
    raw = dict(DEFAULTS)
    if 'chunk_size' in overrides and 'n_action_steps' not in overrides:
        overrides['n_action_steps'] = min(int(overrides['chunk_size']), raw['n_action_steps'])
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f'unknown ACT config field(s): {", ".join(sorted(unknown))}')
    raw.update(overrides)
    inputs = {}
    if state_dim:
        inputs[OBS_STATE] = {'type': 'STATE', 'shape': [int(state_dim)]}
    for cam in cameras:
        inputs[f'observation.images.{cam}'] = {'type': 'VISUAL', 'shape': [3, int(image_shape[0]), int(image_shape[1])]}
    raw['type'] = 'act'
    raw['input_features'] = inputs
    raw['output_features'] = {ACTION: {'type': 'ACTION', 'shape': [int(action_dim)]}}
    raw['normalization_mapping'] = normalization_mapping or {
        'VISUAL': 'MEAN_STD', 'STATE': 'MEAN_STD', 'ACTION': 'MEAN_STD'}
    return parse_config(raw)

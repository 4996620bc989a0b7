"""Read (strictly) and write LeRobot ACT pretrained directories.

A LeRobot pretrained policy directory holds `config.json` + `model.safetensors`.
Normalization statistics live in one of two places:
- older LeRobot: inside model.safetensors as `normalize_inputs.buffer_<feature>.<stat>`,
  `normalize_targets.buffer_action.*`, `unnormalize_outputs.buffer_action.*`;
- newer LeRobot: in processor pipelines, `policy_preprocessor.json` naming a
  `normalizer_processor` step whose state file (e.g.
  `policy_preprocessor_step_3_normalizer_processor.safetensors`) holds `<feature>.<stat>`,
  and `policy_postprocessor.json` with an `unnormalizer_processor` step for the action.

Key matching is strict: every inference-path key must be there with the right shape;
the VAE encoder's keys (training only) are accepted and ignored; anything else is an error
that names the keys.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .act_config import ACTION, OBS_ENV_STATE, OBS_STATE, ActConfig, load_config, make_config
from .act_model import ActCore, FrozenBatchNorm2d
from .errors import CheckpointError
from rover_common.model_contract import sha256_of

MODEL_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
PRE_JSON = 'policy_preprocessor.json'
POST_JSON = 'policy_postprocessor.json'
PRE_STATE = 'policy_preprocessor_step_3_normalizer_processor.safetensors'
POST_STATE = 'policy_postprocessor_step_0_unnormalizer_processor.safetensors'
VAE_PREFIXES = ('model.vae_encoder',)  # vae_encoder.*, vae_encoder_cls_embed, ..._pos_enc
OLD_NORM_PREFIXES = ('normalize_inputs.', 'normalize_targets.', 'unnormalize_outputs.')
STAT_NAMES = {'MEAN_STD': ('mean', 'std'), 'MIN_MAX': ('min', 'max'),
              'QUANTILES': ('q01', 'q99'), 'QUANTILE10': ('q10', 'q90')}
DEFAULT_EPS = 1e-8
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# A small configuration that exports, calibrates and quantizes in seconds and still meets the
# accuracy bar with random weights (tests, demo). The ResNet-18 backbone stays full size.
SMALL_CONFIG = dict(dim_model=64, n_heads=4, dim_feedforward=128, n_encoder_layers=1, n_decoder_layers=1,
                    n_vae_encoder_layers=1, latent_dim=8, chunk_size=10, image_shape=(192, 256))


@dataclass
class LoadedCheckpoint:
    path: Path
    cfg: ActConfig
    core: ActCore
    norm: dict            # 'image'/'state'/'env_state' -> (scale, offset) normalize; 'action' -> unnormalize
    layout: str           # 'old' (stats in model.safetensors) or 'new' (processor files)
    sha256: str           # of model.safetensors
    ignored_keys: list    # VAE encoder / training-only keys that were accepted and ignored


def _short_list(keys, limit=6) -> str:
    keys = sorted(keys)
    text = ', '.join(keys[:limit])
    return text + (f' (+{len(keys) - limit} more)' if len(keys) > limit else '')


def _read_safetensors(path: Path, what: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file  # torch loader: handles bf16/fp16 checkpoints too
    if not path.is_file():
        raise CheckpointError(f'{what} not found: {path}')
    try:
        tensors = load_file(str(path))
        return {k: v.to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
                for k, v in tensors.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'{what} {path} is corrupt or not a safetensors file: {exc}') from None


# ---------------------------------------------------------------- normalization
def _affine(mode: str, stats: dict, eps: float, inverse: bool, legacy: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) so that normalize(x) = x*scale+offset (or unnormalize when inverse)."""
    a, b = (np.asarray(stats[n], np.float64).reshape(-1) for n in STAT_NAMES[mode])
    if mode == 'MEAN_STD':
        mean, std = a, b
        return (std, mean) if inverse else (1.0 / (std + eps), -mean / (std + eps))
    low, high = a, b
    if legacy:  # old Normalize/Unnormalize: (x-min)/(max-min+1e-8)*2-1 ; (x+1)/2*(max-min)+min
        denom_n, denom_u = high - low + 1e-8, high - low
    else:       # processors: denominator replaced by eps where max == min
        denom_n = denom_u = np.where(high - low == 0, eps, high - low)
    if inverse:
        return denom_u / 2.0, denom_u / 2.0 + low
    return 2.0 / denom_n, -2.0 * low / denom_n - 1.0


def _check_finite(name: str, stats: dict):
    for stat, value in stats.items():
        if not np.all(np.isfinite(value)):
            raise CheckpointError(
                f'normalization statistic {name}.{stat} is not finite (policy saved without dataset stats?)')


def _norm_table(cfg: ActConfig, get_stats, eps: float, legacy: bool) -> dict:
    """Build the affine maps for every tensor the exported graph (un)normalizes."""
    table = {}
    entries = []
    for key in cfg.image_features[:1]:  # same stats shape for every camera; see below
        entries.append(('image', key, 'VISUAL', 3, False))
    if cfg.robot_state_feature:
        entries.append(('state', OBS_STATE, 'STATE', cfg.state_dim, False))
    if cfg.env_state_feature:
        entries.append(('env_state', OBS_ENV_STATE, 'ENV', cfg.env_state_feature.shape[0], False))
    entries.append(('action', ACTION, 'ACTION', cfg.action_dim, True))
    for name, key, ftype, dim, inverse in entries:
        mode = cfg.norm_mode(ftype)
        if mode == 'IDENTITY':
            table[name] = (np.ones(dim), np.zeros(dim))
            continue
        stats = get_stats(key, STAT_NAMES[mode], inverse)
        _check_finite(key, stats)
        for stat, value in stats.items():
            if value.size != dim:
                raise CheckpointError(f'normalization statistic {key}.{stat} has {value.size} values, '
                                      f'expected {dim}')
        table[name] = _affine(mode, stats, eps, inverse, legacy)
    if len(cfg.image_features) > 1:
        mode = cfg.norm_mode('VISUAL')
        if mode != 'IDENTITY':
            first = get_stats(cfg.image_features[0], STAT_NAMES[mode], False)
            for key in cfg.image_features[1:]:
                other = get_stats(key, STAT_NAMES[mode], False)
                if any(not np.allclose(first[s], other[s]) for s in first):
                    raise CheckpointError(
                        f'cameras {cfg.image_features[0]} and {key} have different image statistics; '
                        'the exported graph shares one image normalization')
    return table


def _old_layout_stats(cfg: ActConfig, tensors: dict):
    def get(key, names, inverse):
        module = 'unnormalize_outputs' if inverse else 'normalize_inputs'
        prefix = f'{module}.buffer_{key.replace(".", "_")}.'
        missing = [prefix + n for n in names if prefix + n not in tensors]
        if missing:
            raise CheckpointError(f'model.safetensors is missing normalization key(s): {_short_list(missing)}')
        return {n: tensors[prefix + n] for n in names}
    return get


def _find_processor_state(ckpt: Path, json_name: str, registry: str, fallback: str) -> tuple[Path, float]:
    config_path = ckpt / json_name
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f'{config_path} is not valid JSON: {exc}') from None
        for step in config.get('steps', []):
            if step.get('registry_name') == registry:
                if 'state_file' not in step:
                    raise CheckpointError(f'{config_path}: step {registry} has no state_file')
                eps = float(step.get('config', {}).get('eps', DEFAULT_EPS))
                return ckpt / step['state_file'], eps
        raise CheckpointError(f'{config_path} has no {registry} step')
    candidates = sorted(ckpt.glob(json_name.replace('.json', '') + f'*{registry}*.safetensors'))
    if len(candidates) == 1:
        return candidates[0], DEFAULT_EPS
    return ckpt / fallback, DEFAULT_EPS


def _new_layout_stats(ckpt: Path):
    pre_path, pre_eps = _find_processor_state(ckpt, PRE_JSON, 'normalizer_processor', PRE_STATE)
    post_path, post_eps = _find_processor_state(ckpt, POST_JSON, 'unnormalizer_processor', POST_STATE)
    cache = {}

    def tensors(path):
        if path not in cache:
            cache[path] = _read_safetensors(path, 'processor state')
        return cache[path]

    def get(key, names, inverse):
        path = post_path if inverse else pre_path
        data = tensors(path)
        missing = [f'{key}.{n}' for n in names if f'{key}.{n}' not in data]
        if missing:
            raise CheckpointError(f'{path.name} is missing normalization key(s): {_short_list(missing)}')
        return {n: data[f'{key}.{n}'] for n in names}
    return get, pre_eps, post_eps


# ---------------------------------------------------------------- loading
def load_checkpoint(path) -> LoadedCheckpoint:
    """Load a LeRobot ACT pretrained directory into an eval-mode ActCore + normalization maps."""
    ckpt = Path(path)
    if not ckpt.is_dir():
        raise CheckpointError(f'checkpoint directory not found: {ckpt}')
    cfg = load_config(ckpt / CONFIG_FILE)
    model_path = ckpt / MODEL_FILE
    tensors = _read_safetensors(model_path, MODEL_FILE)

    core = ActCore(cfg)
    expected = {f'model.{k}': tuple(v.shape) for k, v in core.state_dict().items()}
    old_norm_keys = {k for k in tensors if k.startswith(OLD_NORM_PREFIXES)}
    ignored = sorted(k for k in tensors if cfg.use_vae and k.startswith(VAE_PREFIXES))
    ignored += sorted(k for k in old_norm_keys if k.startswith('normalize_targets.'))
    ignored += sorted(k for k in tensors if k.endswith('num_batches_tracked'))
    model_keys = {k for k in tensors if k not in old_norm_keys and k not in ignored}

    missing = set(expected) - model_keys
    unexpected = model_keys - set(expected)
    problems = []
    if missing:
        problems.append(f'missing key(s): {_short_list(missing)}')
    if unexpected:
        problems.append(f'unexpected key(s): {_short_list(unexpected)}')
    wrong = [f'{k} is {list(tensors[k].shape)}, expected {list(expected[k])}'
             for k in sorted(model_keys & set(expected)) if tuple(tensors[k].shape) != expected[k]]
    if wrong:
        problems.append('shape mismatch: ' + '; '.join(wrong[:4]) + (f' (+{len(wrong) - 4} more)' if len(wrong) > 4 else ''))
    if problems:
        raise CheckpointError(f'{model_path} does not match {CONFIG_FILE}: ' + '; '.join(problems))

    state = {k[len('model.'):]: torch.from_numpy(np.ascontiguousarray(tensors[k])).to(torch.float32)
             for k in expected}
    core.load_state_dict(state, strict=True)
    core.eval()

    has_processors = (ckpt / PRE_JSON).is_file() or any(ckpt.glob('policy_preprocessor*.safetensors'))
    if has_processors:
        get, pre_eps, post_eps = _new_layout_stats(ckpt)
        # eps comes per processor; the table builder takes one, so wrap per direction
        norm = _norm_table(cfg, get, pre_eps, legacy=False)
        if post_eps != pre_eps:
            norm['action'] = _norm_table(cfg, get, post_eps, legacy=False)['action']
        layout = 'new'
        unused_old = sorted(k for k in old_norm_keys if not k.startswith('normalize_targets.'))
        ignored += unused_old  # stats come from the processors when both are present
    elif old_norm_keys or all(cfg.norm_mode(t) == 'IDENTITY' for t in ('VISUAL', 'STATE', 'ENV', 'ACTION')):
        get = _old_layout_stats(cfg, tensors)
        norm = _norm_table(cfg, get, DEFAULT_EPS, legacy=True)
        expected_old = _old_layout_keys(cfg, inference_only=True)
        stray = {k for k in old_norm_keys if not k.startswith('normalize_targets.')} - expected_old
        if stray:
            raise CheckpointError(f'{model_path}: unexpected normalization key(s): {_short_list(stray)}')
        layout = 'old'
    else:
        raise CheckpointError(
            f'{ckpt}: no normalization statistics: expected normalize_inputs.* keys in {MODEL_FILE} '
            f'(older LeRobot) or {PRE_JSON} + policy_preprocessor*/policy_postprocessor* safetensors (newer)')
    return LoadedCheckpoint(ckpt, cfg, core, norm, layout, sha256_of(model_path), ignored)


def _old_layout_keys(cfg: ActConfig, inference_only: bool = False) -> set:
    keys = set()
    for key, feat in cfg.input_features.items():
        mode = cfg.norm_mode(feat.type)
        if mode == 'IDENTITY' or mode not in STAT_NAMES:
            continue
        for stat in STAT_NAMES[mode]:
            keys.add(f'normalize_inputs.buffer_{key.replace(".", "_")}.{stat}')
    mode = cfg.norm_mode('ACTION')
    if mode in STAT_NAMES:
        for stat in STAT_NAMES[mode]:
            keys.add(f'unnormalize_outputs.buffer_action.{stat}')
            if not inference_only:
                keys.add(f'normalize_targets.buffer_action.{stat}')
    return keys


# ---------------------------------------------------------------- writing
def default_stats(cfg: ActConfig, seed: int = 0) -> dict:
    """Plausible dataset statistics: ImageNet for images, rover-like state/action ranges."""
    rng = np.random.default_rng(seed + 1)
    stats = {}

    def vec(dim, center, spread):
        mean = center + rng.uniform(-0.05, 0.05, dim)
        std = spread * rng.uniform(0.8, 1.2, dim)
        return {'mean': mean, 'std': std, 'min': mean - 2.5 * std, 'max': mean + 2.5 * std,
                'q01': mean - 2.3 * std, 'q99': mean + 2.3 * std, 'q10': mean - 1.3 * std,
                'q90': mean + 1.3 * std}
    for key in cfg.image_features:
        mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
        stats[key] = {'mean': mean, 'std': std, 'min': np.zeros(3), 'max': np.ones(3),
                      'q01': np.full(3, 0.02), 'q99': np.full(3, 0.98), 'q10': np.full(3, 0.1),
                      'q90': np.full(3, 0.9)}
    if cfg.robot_state_feature:
        stats[OBS_STATE] = vec(cfg.state_dim, 0.1, 0.4)
    if cfg.env_state_feature:
        stats[OBS_ENV_STATE] = vec(cfg.env_state_feature.shape[0], 0.0, 1.0)
    stats[ACTION] = vec(cfg.action_dim, 0.1, 0.4)
    return stats


def _set_realistic_batchnorm(core: ActCore, cfg: ActConfig, seed: int):
    """Give the frozen BNs the statistics a trained network would have.

    With identity BN, random convs shrink or blow up activations layer after layer, which
    says nothing about a real model. One forward pass on synthetic road images with each
    BN recording the mean/var of its input (then a random gamma/beta) gives well-scaled
    activations like a trained ResNet's. The last BN of each residual branch gets a small
    gamma (0.1-0.4): trained ResNets have small residual branches (and are commonly
    initialized that way, "zero-init residual"); full-size random branches stacked eight
    deep make a far more chaotic network than anything trained.
    """
    from .calibration import synthetic_frames
    gen = torch.Generator().manual_seed(seed + 7)
    bns = [m for m in core.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    h, w = cfg.image_hw
    frames = synthetic_frames(2, h, w, seed=seed)  # uint8 NHWC RGB
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    x = (x - mean) / std
    with torch.no_grad():
        residual_ends = {id(b.bn2) for layer in ('layer1', 'layer2', 'layer3', 'layer4')
                         for b in getattr(core.backbone, layer)}
        for bn in bns:
            low, high = (0.1, 0.4) if id(bn) in residual_ends else (0.5, 1.0)
            bn.weight.copy_(torch.empty(bn.weight.shape).uniform_(low, high, generator=gen))
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.1)
            bn.collect_stats = True
        core.backbone(x)
        for bn in bns:
            bn.collect_stats = False


def _lerobot_backbone_init(core: ActCore):
    """The backbone as LeRobot builds it without pretrained weights: torchvision's ResNet init
    (kaiming normal, fan_out, for the convs) and FrozenBatchNorm2d as constructed (weight 1,
    bias 0, running mean 0, running var 1). torchvision's BN init loop only matches
    nn.BatchNorm2d, so the frozen BNs keep their constructor values. The transformer's
    xavier init (LeRobot's _reset_parameters) is already ActCore's."""
    with torch.no_grad():
        for m in core.backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, FrozenBatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)


INITS = ('synthetic', 'lerobot')


def _state_dict_for_lerobot(core: ActCore) -> dict:
    return {f'model.{k}': v.detach().clone().contiguous() for k, v in core.state_dict().items()}


def write_random_checkpoint(path, *, seed: int = 0, layout: str = 'new', stats: dict | None = None,
                            dtype: torch.dtype = torch.float32, init: str = 'synthetic',
                            **config_overrides) -> Path:
    """Write a LeRobot-layout ACT pretrained directory with random weights (fixed seed).

    It holds every key LeRobot's ACTPolicy.state_dict() has, VAE encoder included.
    `layout="old"` keeps normalization buffers inside model.safetensors; `"new"` writes the
    policy_preprocessor/postprocessor json + safetensors pair. Config knobs: image_shape=(H, W),
    state_dim, action_dim, cameras=("front",), normalization_mapping, and any ACTConfig field
    (dim_model, n_heads, dim_feedforward, n_encoder_layers, n_decoder_layers, chunk_size, ...).
    `init="synthetic"` gives the frozen BNs trained-looking statistics (_set_realistic_batchnorm);
    `init="lerobot"` initialises the backbone the way a fresh LeRobot ACTPolicy has it
    (_lerobot_backbone_init), i.e. what a user gets from LeRobot without pretrained weights.
    """
    from safetensors.torch import save_file
    if layout not in ('new', 'old'):
        raise ValueError(f'layout must be "new" or "old", got {layout!r}')
    if init not in INITS:
        raise ValueError(f'init must be one of {INITS}, got {init!r}')
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    cfg = make_config(**config_overrides)
    torch.manual_seed(seed)
    core = ActCore(cfg, with_vae_encoder=True)
    if cfg.image_features:
        if init == 'lerobot':
            _lerobot_backbone_init(core)
        else:
            _set_realistic_batchnorm(core, cfg, seed)
    tensors = _state_dict_for_lerobot(core)
    stats = stats or default_stats(cfg, seed)

    def stat_tensor(key, stat):
        value = np.asarray(stats[key][stat], np.float32)
        if key in cfg.image_features:
            value = value.reshape(3, 1, 1)
        return torch.from_numpy(value.copy())

    features = {**cfg.input_features, **cfg.output_features}
    if layout == 'old':
        for key in sorted(_old_layout_keys(cfg)):
            module, buffer, stat = key.split('.')
            feature = next(k for k in features if 'buffer_' + k.replace('.', '_') == buffer)
            tensors[key] = stat_tensor(feature, stat)
    else:
        pre, post = {}, {}
        for key, feat in features.items():
            for stat in stats.get(key, {}):
                pre[f'{key}.{stat}'] = stat_tensor(key, stat)
                if feat.type == 'ACTION':
                    post[f'{key}.{stat}'] = stat_tensor(key, stat)
        save_file(pre, str(out / PRE_STATE))
        save_file(post, str(out / POST_STATE))
        feat_json = {k: {'type': f.type, 'shape': list(f.shape)} for k, f in features.items()}
        out_json = {k: {'type': f.type, 'shape': list(f.shape)} for k, f in cfg.output_features.items()}
        norm_map = dict(cfg.normalization_mapping)
        (out / PRE_JSON).write_text(json.dumps({'name': 'policy_preprocessor', 'steps': [
            {'registry_name': 'rename_observations_processor', 'config': {'rename_map': {}}},
            {'registry_name': 'to_batch_processor', 'config': {}},
            {'registry_name': 'device_processor', 'config': {'device': 'cpu', 'float_dtype': None}},
            {'registry_name': 'normalizer_processor',
             'config': {'eps': DEFAULT_EPS, 'features': feat_json, 'norm_map': norm_map},
             'state_file': PRE_STATE},
        ]}, indent=2))
        (out / POST_JSON).write_text(json.dumps({'name': 'policy_postprocessor', 'steps': [
            {'registry_name': 'unnormalizer_processor',
             'config': {'eps': DEFAULT_EPS, 'features': out_json, 'norm_map': norm_map},
             'state_file': POST_STATE},
            {'registry_name': 'device_processor', 'config': {'device': 'cpu', 'float_dtype': None}},
        ]}, indent=2))
    if dtype != torch.float32:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    save_file(tensors, str(out / MODEL_FILE), metadata={'format': 'pt'})
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_json_dict(), indent=4))
    return out


def lerobot_state_dict_keys(cfg: ActConfig) -> list[str]:
    """Keys ACTPolicy.state_dict() has for this config (model.* incl. the VAE encoder)."""
    with torch.device('meta'):
        core = ActCore(cfg, with_vae_encoder=True)
    return sorted(f'model.{k}' for k in core.state_dict())

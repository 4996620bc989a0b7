"""Checkpoint -> model directory: export, calibrate, quantize, validate, report, manifest."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .act_model import feature_names
from .bags import index_bags, load_frames, split_indices
from .calibration import synthetic_frames, synthetic_states
from .checkpoint import LoadedCheckpoint, load_checkpoint
from .errors import QuantizeError, ValidationFailed
from .export import export_part, io_spec
from .manifest import FORMAT, FORMAT_VERSION, created_by, files_entry, read_manifest, write_manifest
from .quantize import BAR_MAX, BAR_MSE, MIN_INT8_MAC_FRACTION, QuantSettings, preprocess, quantize_model, temp_work_dir
from .validation import validate

FP32_FILE = 'model_fp32.onnx'
INT8_FILE = 'model_int8.onnx'
BACKBONE_FILE = 'backbone.onnx'
HEAD_FILE = 'head.onnx'
REPORT_DIR = 'report'
DEFAULT_VALIDATION_FRAMES = 50
SELECTION_FRAMES = 48  # held out from calibration, used by the exclusion search (never for validation);
                       # 24 let held-out max errors of a trained model land just above the bar


@dataclass
class FrameSets:
    calib_images: np.ndarray
    calib_states: np.ndarray
    valid_images: np.ndarray
    valid_states: np.ndarray
    source: str                 # 'bags' or 'synthetic'
    bags: list
    calib_indices: list
    valid_indices: list
    notes: list


def _names(dim: int, default2=('steering', 'throttle'), prefix='dim') -> list[str]:
    return list(default2) if dim == 2 else [f'{prefix}_{i}' for i in range(dim)]


def gather_frames(manifest: dict, bags, image_topic: str, state_topic: str | None,
                  calibration_frames: int, validation_frames: int, seed: int = 0,
                  progress: bool = True) -> FrameSets:
    """Calibration + held-out validation frames from bags (spread over them), or synthetic ones."""
    image_inputs = [i for i in manifest['inputs'] if i['name'].startswith('image')]
    state_input = next((i for i in manifest['inputs'] if i['name'] == 'state'), None)
    state_dim = state_input['shape'][1] if state_input else 0
    h, w = image_inputs[0]['shape'][1:3]
    if calibration_frames < 1 or validation_frames < 1:
        raise QuantizeError('calibration and validation need at least one frame each')
    if bags:
        if len(image_inputs) != 1:
            raise QuantizeError(f'the model has {len(image_inputs)} cameras; calibration from bags '
                                'supports one camera topic')
        idx = index_bags([Path(b) for b in bags], image_topic, state_topic, state_dim)
        calib_idx, valid_idx = split_indices(idx.total, calibration_frames, validation_frames)
        frames = load_frames(idx, calib_idx + valid_idx, (h, w), state_dim, progress=progress)
        calib, valid = frames[:len(calib_idx)], frames[len(calib_idx):]
        stack = (lambda fs: np.stack([f.image for f in fs]))
        states = (lambda fs: np.stack([f.state for f in fs]).astype(np.float32) if state_dim
                  else np.zeros((len(fs), 0), np.float32))
        notes = list(idx.notes)
        if len(calib_idx) < calibration_frames or len(valid_idx) < validation_frames:
            notes.append(f'the bags hold {idx.total} frames: using {len(calib_idx)} for calibration and '
                         f'{len(valid_idx)} for validation')
        return FrameSets(stack(calib), states(calib), stack(valid), states(valid), 'bags',
                         [str(Path(b).resolve()) for b in bags], calib_idx, valid_idx, notes)
    notes = ['no bag given: calibrated and validated on synthetic road frames; '
             'rebuild with --bag for a model calibrated on real camera data']
    return FrameSets(
        synthetic_frames(calibration_frames, h, w, seed=seed * 1000 + 1),
        synthetic_states(calibration_frames, state_dim, seed=seed * 1000 + 1),
        synthetic_frames(validation_frames, h, w, seed=seed * 1000 + 2),
        synthetic_states(validation_frames, state_dim, seed=seed * 1000 + 2),
        'synthetic', [], list(range(calibration_frames)), list(range(validation_frames)), notes)


def feeds_for(manifest: dict, images: np.ndarray, states: np.ndarray, seed: int = 0) -> list[dict]:
    """Feed dicts for the whole-model graph, one per frame."""
    feeds = []
    env = next((i for i in manifest['inputs'] if i['name'] == 'environment_state'), None)
    env_values = synthetic_states(len(images), env['shape'][1], seed=seed + 77) if env else None
    for i in range(len(images)):
        feed = {}
        for spec in manifest['inputs']:
            if spec['name'].startswith('image'):
                feed[spec['name']] = images[i:i + 1]
            elif spec['name'] == 'state':
                feed['state'] = states[i:i + 1].astype(np.float32)
            elif spec['name'] == 'environment_state':
                feed['environment_state'] = env_values[i:i + 1]
        feeds.append(feed)
    return feeds


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise QuantizeError(f'{out_dir} exists and is not a directory')
        if any(out_dir.iterdir()) and not (out_dir / 'manifest.json').exists():
            raise QuantizeError(f'{out_dir} is not empty and is not a model directory; choose another -o')
        # A rebuild must never leave a stale model behind the new manifest.
        for name in (INT8_FILE, 'manifest.json'):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def export_model_dir(checkpoint, out_dir, *, image_topic: str = 'camera/image_raw',
                     control_rate_hz: float = 30.0, ck: LoadedCheckpoint | None = None,
                     progress: bool = True) -> dict:
    """Write model_fp32.onnx, backbone.onnx, head.onnx (each checked against PyTorch) + manifest."""
    from tqdm import tqdm
    ck = ck or load_checkpoint(checkpoint)
    cfg = ck.cfg
    if not cfg.image_features:
        raise QuantizeError('the checkpoint has no camera input; the rover model directory needs one')
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    exports = {}
    parts = [('full', FP32_FILE), ('backbone', BACKBONE_FILE), ('head', HEAD_FILE)]
    for part, name in tqdm(parts, desc='exporting ONNX', unit='model', leave=False, disable=not progress):
        exports[name] = export_part(ck, part, out_dir / name)
    inputs, outputs = io_spec(out_dir / FP32_FILE)
    image_keys = dict(zip([i['name'] for i in inputs if i['name'].startswith('image')], cfg.image_features))
    for spec in inputs:
        if spec['name'] in image_keys:
            spec.update({'layout': 'NHWC', 'color': 'rgb', 'feature': image_keys[spec['name']]})
        elif spec['name'] == 'state':
            spec['feature'] = 'observation.state'
        elif spec['name'] == 'environment_state':
            spec['feature'] = 'observation.environment_state'
    h, w = cfg.feature_map_hw
    feats = [{'name': n, 'shape': [1, cfg.backbone_channels, h, w], 'dtype': 'float32'}
             for n in feature_names(cfg)]
    action_scale, action_offset = ck.norm['action']
    image_scale, image_offset = (np.asarray(v, np.float64) for v in ck.norm['image'])
    manifest = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'created_by': created_by(),
        'created_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'checkpoint': {'path': str(ck.path.resolve()), 'sha256': ck.sha256, 'layout': ck.layout,
                       'ignored_keys': len(ck.ignored_keys)},
        'files': {},
        'models': {'cpu_fp32': FP32_FILE, 'backbone': BACKBONE_FILE, 'head': HEAD_FILE},
        'inputs': inputs,
        'outputs': outputs,
        'features': feats[0] if len(feats) == 1 else feats,
        'chunk_size': cfg.chunk_size,
        'n_action_steps': cfg.n_action_steps,
        'temporal_ensemble_coeff': cfg.temporal_ensemble_coeff,
        'action_names': _names(cfg.action_dim, prefix='action'),
        'state_names': _names(cfg.state_dim, prefix='state') if cfg.state_dim else [],
        'control_rate_hz': float(control_rate_hz),
        'camera_topic': image_topic,
        'architecture': {'vision_backbone': cfg.vision_backbone, 'dim_model': cfg.dim_model,
                         'n_heads': cfg.n_heads, 'dim_feedforward': cfg.dim_feedforward,
                         'n_encoder_layers': cfg.n_encoder_layers, 'n_decoder_layers': cfg.n_decoder_layers,
                         'pre_norm': cfg.pre_norm, 'image_hw': list(cfg.image_hw),
                         'parameters': int(sum(p.numel() for p in ck.core.parameters()))},
        'action_normalization': {'scale': [float(v) for v in action_scale],
                                 'offset': [float(v) for v in action_offset],
                                 'meaning': 'action = normalized * scale + offset (folded into the graph)'},
        'image_normalization': {  # folded into the graphs; the Hailo model script needs it
            'mean': [float(v) for v in -image_offset * 255.0 / image_scale],
            'std': [float(v) for v in 255.0 / image_scale],
            'meaning': 'normalized = (pixel - mean) / std, pixel in 0..255, RGB channel order'},
        'export': {name: e for name, e in exports.items()},
        'quantization': None,
        'validation': None,
        'notes': [],
    }
    manifest['files'] = files_entry(out_dir, [FP32_FILE, BACKBONE_FILE, HEAD_FILE])
    write_manifest(out_dir, manifest)
    return manifest


def _quantization_source(model_dir: Path, manifest: dict, work: Path, ck: LoadedCheckpoint | None) -> tuple[Path, str]:
    """The FP32 graph to quantize: the space-to-depth stem variant of model_fp32.onnx (same sums,
    faster in INT8) exported from the checkpoint when it is at hand and unchanged; otherwise
    model_fp32.onnx itself."""
    if ck is None:
        path = Path(manifest['checkpoint']['path'])
        try:
            from .checkpoint import file_sha256
            if (path / 'model.safetensors').is_file() and \
                    file_sha256(path / 'model.safetensors') == manifest['checkpoint']['sha256']:
                ck = load_checkpoint(path)
        except QuantizeError:
            ck = None
    if ck is not None:
        h, w = ck.cfg.image_hw
        if h % 2 == 0 and w % 2 == 0:
            source = work / 'fp32_s2d.onnx'
            export_part(ck, 'full', source, s2d=True)
            return source, 'model_fp32.onnx with a space-to-depth stem (exported from the checkpoint)'
    return model_dir / FP32_FILE, 'model_fp32.onnx'


def quantize_model_dir(model_dir, *, bags=None, image_topic: str | None = None,
                       state_topic: str | None = 'rover/state', mode: str = 'static',
                       calibration_method: str = 'Percentile', calibration_frames: int = 200,
                       validation_frames: int = DEFAULT_VALIDATION_FRAMES, search: bool = True,
                       keep_fp32: list | None = None, per_channel: bool = True, force: bool = False,
                       seed: int = 0, report: bool = True, progress: bool = True,
                       ck: LoadedCheckpoint | None = None) -> dict:
    """Calibrate, quantize and validate the FP32 model of a model directory; update its manifest.

    Writes model_int8.onnx only if it meets the bar on held-out frames (or `force`); otherwise
    the manifest says so and ValidationFailed is raised after everything else is written.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    (model_dir / INT8_FILE).unlink(missing_ok=True)
    manifest['models'].pop('cpu_int8', None)
    manifest['files'].pop(INT8_FILE, None)
    image_topic = image_topic or manifest.get('camera_topic', 'camera/image_raw')
    n_select = min(SELECTION_FRAMES, max(2, calibration_frames // 4))
    frames = gather_frames(manifest, bags, image_topic, state_topic, calibration_frames + n_select,
                           validation_frames, seed, progress)
    # Selection frames (for the search) come out of the same spread-out set but are not used to
    # calibrate: errors on frames the ranges were fitted to would flatter the model.
    n_all = len(frames.calib_images)
    n_select = min(n_select, max(1, n_all // 5))
    step = n_all / n_select
    picked = sorted({min(n_all - 1, int(step * i + step / 2)) for i in range(n_select)})
    keep = [i for i in range(n_all) if i not in set(picked)]
    all_feeds = feeds_for(manifest, frames.calib_images, frames.calib_states, seed)
    calib_feeds = [all_feeds[i] for i in keep]
    selection = [all_feeds[i] for i in picked]
    selection_indices = [frames.calib_indices[i] for i in picked]
    frames.calib_indices = [frames.calib_indices[i] for i in keep]
    valid_feeds = feeds_for(manifest, frames.valid_images, frames.valid_states, seed + 1)
    action_scale = np.asarray(manifest['action_normalization']['scale'])
    settings = QuantSettings(mode=mode, calibration_method=calibration_method, per_channel=per_channel,
                             search=search, exclude_groups=list(keep_fp32 or []))
    settings.validate()
    work = temp_work_dir()
    try:
        source, source_note = _quantization_source(model_dir, manifest, work, ck)
        pre = preprocess(source, work / 'fp32_pre.onnx')
        result = quantize_model(pre, work, settings, calib_feeds, selection, action_scale, progress)
        run = validate(model_dir / FP32_FILE, result.path, valid_feeds, action_scale, progress=progress)
        manifest['quantization'] = result.manifest_entry(len(calib_feeds), frames.bags, frames.source)
        manifest['quantization']['seconds'] = round(result.seconds, 1)
        manifest['quantization']['source_graph'] = source_note
        manifest['quantization']['calibration_frame_indices'] = frames.calib_indices
        manifest['quantization']['selection_frame_indices'] = selection_indices
        manifest['validation'] = {**run.metrics, 'frame_indices': frames.valid_indices,
                                  'source': frames.source,
                                  'latency_ms_p50': {'ort_fp32': float(np.median(run.latency_fp32_ms)),
                                                     'ort_int8': float(np.median(run.latency_int8_ms))}}
        manifest['notes'] = list(frames.notes)
        min_fraction = MIN_INT8_MAC_FRACTION[mode]
        fraction_ok = result.mac_fraction >= min_fraction
        manifest['quantization']['min_int8_mac_fraction'] = min_fraction
        problems = []
        if not run.metrics['passed']:
            v = run.metrics
            problems.append(f'missed the accuracy bar on {v["frames"]} held-out frames: MSE {v["mse"]:.3g} '
                            f'(bar {BAR_MSE:g}), max error {v["max_abs_error"]:.3g} (bar {BAR_MAX:g})')
        if not fraction_ok:
            problems.append(f'only {result.mac_fraction * 100:.0f}% of the multiply-adds would run in INT8 '
                            f'(at least {min_fraction * 100:.0f}% for mode {mode}); that is not an INT8 model')
        passed = not problems
        if passed or force:
            shutil.move(str(result.path), model_dir / INT8_FILE)
            manifest['models']['cpu_int8'] = INT8_FILE
            manifest['files'].update(files_entry(model_dir, [INT8_FILE]))
            if not passed:
                manifest['quantization']['forced'] = True
                manifest['notes'].append('model_int8.onnx was written only because of --force: '
                                         + '; '.join(problems))
        else:
            manifest['notes'].append('model_int8.onnx was not written: ' + '; '.join(problems))
        write_manifest(model_dir, manifest)
        if report:
            from .report import write_report
            write_report(model_dir / REPORT_DIR, manifest, run, action_scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not passed and not force:
        raise ValidationFailed(
            'quantized model ' + '; '.join(problems) + f'; {INT8_FILE} not written '
            '(use --force to write it anyway, or try another --mode / --calibration-method)')
    return manifest


def build_model_dir(checkpoint, out_dir, *, bags=None, image_topic: str = 'camera/image_raw',
                    state_topic: str = 'rover/state', mode: str = 'static',
                    calibration_method: str = 'Percentile', calibration_frames: int = 200,
                    validation_frames: int = DEFAULT_VALIDATION_FRAMES, search: bool = True,
                    keep_fp32: list | None = None, per_channel: bool = True, force: bool = False,
                    seed: int = 0, report: bool = True, control_rate_hz: float = 30.0,
                    progress: bool = True) -> dict:
    """The whole offline pipeline; returns the manifest. With bags=None it calibrates and validates
    on synthetic frames and says so in the manifest (`quantization.calibration_source`)."""
    ck = load_checkpoint(checkpoint)
    export_model_dir(checkpoint, out_dir, image_topic=image_topic, control_rate_hz=control_rate_hz,
                     progress=progress, ck=ck)
    return quantize_model_dir(out_dir, ck=ck, bags=bags, image_topic=image_topic, state_topic=state_topic,
                              mode=mode, calibration_method=calibration_method,
                              calibration_frames=calibration_frames, validation_frames=validation_frames,
                              search=search, keep_fp32=keep_fp32, per_channel=per_channel, force=force,
                              seed=seed, report=report, progress=progress)


def revalidate(model_dir, *, bags=None, image_topic: str | None = None, state_topic: str = 'rover/state',
               frames: int = DEFAULT_VALIDATION_FRAMES, seed: int = 5, progress: bool = True) -> dict:
    """Check file hashes, then INT8 vs FP32 on frames (from bags: spread over them; else synthetic)."""
    from .manifest import verify_files
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    bad = verify_files(model_dir, manifest)
    if bad:
        raise QuantizeError(f'sha256 mismatch or missing file(s) in {model_dir}: {", ".join(bad)}')
    if 'cpu_int8' not in manifest['models']:
        raise QuantizeError(f'{model_dir} has no INT8 model to validate')
    sets = gather_frames(manifest, bags, image_topic or manifest['camera_topic'], state_topic,
                         1, frames, seed, progress)
    feeds = feeds_for(manifest, sets.valid_images, sets.valid_states, seed)
    run = validate(model_dir / FP32_FILE, model_dir / manifest['models']['cpu_int8'], feeds,
                   np.asarray(manifest['action_normalization']['scale']), progress=progress)
    return {**run.metrics, 'source': sets.source,
            'latency_ms_p50': {'ort_fp32': float(np.median(run.latency_fp32_ms)),
                               'ort_int8': float(np.median(run.latency_int8_ms))}}

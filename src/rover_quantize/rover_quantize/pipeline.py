"""Checkpoint -> model directory: export, calibrate, quantize, validate, report, manifest."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .act_model import feature_names
from .bags import index_bags, load_frames, split_indices
from .calibration import synthetic_frames, synthetic_states
from .checkpoint import LoadedCheckpoint, load_checkpoint
from .errors import QuantizeError, ValidationFailed
from .export import export_part, io_spec
from .manifest import created_by, read_manifest
from rover_common.model_contract import (BACKBONE, BACKBONE_FILE, CPU_FP32, CPU_INT8, FP32_FILE, HEAD, HEAD_FILE,
                             HEAD_INT8, HEAD_INT8_FILE, INT8_FILE, REPORT_DIR, files_entry, new_manifest,
                             sha256_of, verify_files, write_manifest)
from .modes import BAR_MAX, BAR_MSE, DEFAULT_CALIBRATION_METHOD, DEFAULT_MODE, MIN_INT8_MAC_FRACTION
from .groups import is_backbone
from .quantize import QuantSettings, make_session, preprocess, quantize_model
from .staging import StagedDir
from .validation import validate

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


@dataclass
class FrameSpec:
    """What the model's inputs need from a frame source."""
    hw: tuple
    cameras: int
    state_dim: int

    @classmethod
    def of_manifest(cls, manifest: dict) -> 'FrameSpec':
        images = [i for i in manifest['inputs'] if i['name'].startswith('image')]
        state = next((i for i in manifest['inputs'] if i['name'] == 'state'), None)
        return cls(tuple(images[0]['shape'][1:3]), len(images), state['shape'][1] if state else 0)

    @classmethod
    def of_config(cls, cfg) -> 'FrameSpec':
        return cls(tuple(cfg.image_hw), len(cfg.image_features), cfg.state_dim)


def gather_frames(spec: FrameSpec, bags, image_topic: str, state_topic: str | None,
                  calibration_frames: int, validation_frames: int, seed: int = 0,
                  progress: bool = True) -> FrameSets:
    """Calibration + held-out validation frames from bags (spread over them), or synthetic ones."""
    h, w = spec.hw
    state_dim = spec.state_dim
    if calibration_frames < 1 or validation_frames < 1:
        raise QuantizeError('calibration and validation need at least one frame each')
    if bags:
        if spec.cameras != 1:
            raise QuantizeError(f'the model has {spec.cameras} cameras; calibration from bags '
                                'supports one camera topic')
        idx = index_bags([Path(b) for b in bags], image_topic, state_topic, state_dim)
        calib_idx, valid_idx = split_indices(idx.total, calibration_frames, validation_frames)
        frames = {f.index: f for f in load_frames(idx, calib_idx + valid_idx, (h, w), state_dim,
                                                  progress=progress)}
        calib_idx = [i for i in calib_idx if i in frames]  # undecodable frames are left out (noted)
        valid_idx = [i for i in valid_idx if i in frames]
        if not calib_idx or not valid_idx:
            raise QuantizeError('too few frames decoded for calibration and validation: '
                                + '; '.join(idx.notes[-1:]))
        calib, valid = [frames[i] for i in calib_idx], [frames[i] for i in valid_idx]
        stack = (lambda fs: np.stack([f.image for f in fs]))
        states = (lambda fs: np.stack([f.state for f in fs]).astype(np.float32) if state_dim
                  else np.zeros((len(fs), 0), np.float32))
        notes = list(idx.notes)
        if len(calib_idx) < calibration_frames or len(valid_idx) < validation_frames:
            notes.append(f'the bags hold {idx.total} usable frames: using {len(calib_idx)} for calibration '
                         f'and {len(valid_idx)} for validation')
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


def _selection_count(calibration_frames: int) -> int:
    return min(SELECTION_FRAMES, max(2, calibration_frames // 4))


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


def head_feeds(model_dir: Path, feeds: list[dict], backbone=None) -> list[dict]:
    """Feeds for head.onnx: backbone.onnx's FP32 features of each frame's image(s) in place of the
    images (what the Hailo hybrid's head gets, up to the HEF's own quantization), the rest as is.
    `backbone`: an open session of backbone.onnx, to reuse over several frame sets."""
    backbone = backbone or make_session(Path(model_dir) / BACKBONE_FILE)
    images = [i.name for i in backbone.get_inputs()]
    names = [o.name for o in backbone.get_outputs()]
    out = []
    for feed in feeds:
        features = backbone.run(names, {n: feed[n] for n in images})
        out.append({**dict(zip(names, features)), **{k: v for k, v in feed.items() if k not in images}})
    return out


def _head_settings(settings: QuantSettings) -> QuantSettings:
    """The whole model's settings for head.onnx: the backbone is not in it, so the mixed modes are
    static there and --keep-fp32 keeps only the head's groups."""
    mode = 'dynamic' if settings.mode == 'dynamic' else 'static'
    return replace(settings, mode=mode, exclude_groups=[g for g in settings.exclude_groups if not is_backbone(g)],
                   op_types=list(settings.op_types))


def _quantize_head(model_dir: Path, manifest: dict, settings: QuantSettings, calib_feeds, selection, valid_feeds,
                   action_scale, work: Path, progress: bool) -> dict:
    """head_int8.onnx with the same search as the whole model, validated on the held-out frames;
    moved into model_dir (and named in the manifest) only when it meets the bar. Returns the
    manifest's quantization.head_int8 entry; a head that misses the bar is a note, not an error."""
    settings = _head_settings(settings)
    head_work = work / 'head'
    head_fp32 = model_dir / HEAD_FILE
    started = time.monotonic()
    backbone = make_session(model_dir / BACKBONE_FILE)
    calib, select, valid = (head_feeds(model_dir, f, backbone) for f in (calib_feeds, selection, valid_feeds))
    try:
        pre = preprocess(head_fp32, work / 'head_pre.onnx')
        result = quantize_model(pre, head_work, settings, calib, select, action_scale, progress)
    except QuantizeError as exc:
        return {'written': False, 'problems': [f'quantization failed: {exc}']}
    run = validate(head_fp32, result.path, valid, action_scale, progress=progress)
    v = run.metrics
    min_fraction = MIN_INT8_MAC_FRACTION[settings.mode]
    problems = []
    if not v['passed']:
        problems.append(f'missed the accuracy bar on {v["frames"]} held-out frames: MSE {v["mse"]:.3g} '
                        f'(bar {BAR_MSE:g}), max error {v["max_abs_error"]:.3g} (bar {BAR_MAX:g})')
    if result.mac_fraction < min_fraction:
        problems.append(f'only {result.mac_fraction * 100:.0f}% of its multiply-adds would run in INT8 '
                        f'(at least {min_fraction * 100:.0f}%)')
    entry = {'written': not problems, 'mode': settings.mode, 'int8_mac_fraction': round(result.mac_fraction, 4),
             'min_int8_mac_fraction': min_fraction, 'fp32_groups': result.fp32_groups,
             'saturation_guard': settings.guard_variant if settings.saturation_guard and settings.mode != 'dynamic'
             else 'off',
             'frames': v['frames'], 'mse': v['mse'], 'max_abs_error': v['max_abs_error'], 'passed': v['passed'],
             'features_from': 'backbone.onnx (FP32)',
             # same session options (ORT's default threads) for both, runs interleaved frame by frame
             'latency_ms_p50': {'ort_fp32': float(np.median(run.latency_fp32_ms)),
                                'ort_int8': float(np.median(run.latency_int8_ms))},
             'seconds': round(time.monotonic() - started, 1)}
    if problems:
        entry['problems'] = problems
    else:
        shutil.move(str(result.path), model_dir / HEAD_INT8_FILE)
        manifest['models'][HEAD_INT8] = HEAD_INT8_FILE
        manifest['files'].update(files_entry(model_dir, [HEAD_INT8_FILE]))
    return entry


def _check_camera(ck: LoadedCheckpoint):
    if not ck.cfg.image_features:
        raise QuantizeError('the checkpoint has no camera input; the rover model directory needs one')


def export_model_dir(checkpoint, out_dir, *, image_topic: str = 'camera/image_raw',
                     control_rate_hz: float = 30.0, ck: LoadedCheckpoint | None = None,
                     progress: bool = True) -> dict:
    """Write model_fp32.onnx, backbone.onnx, head.onnx (each checked against PyTorch) + manifest
    into out_dir, replacing what was there only once everything is written."""
    ck = ck or load_checkpoint(checkpoint)
    _check_camera(ck)
    with StagedDir(out_dir) as stage:
        manifest = _export_into(stage.path, ck, image_topic, control_rate_hz, progress)
        stage.commit()
    return manifest


def _export_into(out_dir: Path, ck: LoadedCheckpoint, image_topic: str, control_rate_hz: float,
                 progress: bool) -> dict:
    from tqdm import tqdm
    cfg = ck.cfg
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
    manifest = new_manifest(
        created_by=created_by(), files={},
        models={CPU_FP32: FP32_FILE, BACKBONE: BACKBONE_FILE, HEAD: HEAD_FILE},
        inputs=inputs, outputs=outputs, features=feats[0] if len(feats) == 1 else feats,
        chunk_size=cfg.chunk_size, n_action_steps=cfg.n_action_steps,
        temporal_ensemble_coeff=cfg.temporal_ensemble_coeff,
        action_names=_names(cfg.action_dim, prefix='action'),
        state_names=_names(cfg.state_dim, prefix='state') if cfg.state_dim else [],
        control_rate_hz=float(control_rate_hz), camera_topic=image_topic,
        created_at=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        checkpoint={'path': str(ck.path.resolve()), 'sha256': ck.sha256, 'layout': ck.layout,
                    'ignored_keys': len(ck.ignored_keys)},
        architecture={'vision_backbone': cfg.vision_backbone, 'dim_model': cfg.dim_model,
                      'n_heads': cfg.n_heads, 'dim_feedforward': cfg.dim_feedforward,
                      'n_encoder_layers': cfg.n_encoder_layers, 'n_decoder_layers': cfg.n_decoder_layers,
                      'pre_norm': cfg.pre_norm, 'image_hw': list(cfg.image_hw),
                      'parameters': int(sum(p.numel() for p in ck.core.parameters()))},
        action_normalization={'scale': [float(v) for v in action_scale],
                              'offset': [float(v) for v in action_offset],
                              'meaning': 'action = normalized * scale + offset (folded into the graph)'},
        image_normalization={  # folded into the graphs; the Hailo model script needs it
            'mean': [float(v) for v in -image_offset * 255.0 / image_scale],
            'std': [float(v) for v in 255.0 / image_scale],
            'meaning': 'normalized = (pixel - mean) / std, pixel in 0..255, RGB channel order'},
        export=dict(exports), quantization=None, validation=None, notes=[])
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
            if (path / 'model.safetensors').is_file() and \
                    sha256_of(path / 'model.safetensors') == manifest['checkpoint']['sha256']:
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
                       state_topic: str | None = 'rover/state', mode: str = DEFAULT_MODE,
                       calibration_method: str = DEFAULT_CALIBRATION_METHOD, calibration_frames: int = 200,
                       validation_frames: int = DEFAULT_VALIDATION_FRAMES, search: bool = True,
                       keep_fp32: list | None = None, per_channel: bool = True, force: bool = False,
                       seed: int = 0, report: bool = True, progress: bool = True,
                       ck: LoadedCheckpoint | None = None, saturation_guard: bool = True,
                       head_int8: bool = False) -> dict:
    """Calibrate, quantize and validate the FP32 model of a model directory; update its manifest.
    With head_int8, also head_int8.onnx for the Hailo hybrid (written only if it meets the bar).

    Works on a staged copy: the directory is replaced only when the INT8 model meets the bar on
    held-out frames (or `force`), or when it held no INT8 model to lose (then the manifest says
    why none was written). Otherwise ValidationFailed is raised and the directory is untouched.
    """
    manifest = read_manifest(model_dir)
    settings = QuantSettings(mode=mode, calibration_method=calibration_method, per_channel=per_channel,
                             search=search, exclude_groups=list(keep_fp32 or []),
                             saturation_guard=saturation_guard)
    settings.validate()
    stage = StagedDir(model_dir, copy_existing=True)
    image_topic = image_topic or manifest.get('camera_topic', 'camera/image_raw')
    frames = gather_frames(FrameSpec.of_manifest(manifest), bags, image_topic, state_topic,
                           calibration_frames + _selection_count(calibration_frames),
                           validation_frames, seed, progress)
    with stage:
        return _quantize_into(stage, frames, settings, calibration_frames, seed=seed, force=force,
                              report=report, progress=progress, ck=ck,
                              replace_refused=CPU_INT8 not in manifest['models'], head_int8=head_int8)


def _quantize_into(stage: StagedDir, frames: FrameSets, settings: QuantSettings, calibration_frames: int, *,
                   seed: int, force: bool, report: bool, progress: bool, ck: LoadedCheckpoint | None,
                   replace_refused: bool, head_int8: bool = False) -> dict:
    """Quantize the model in a staged directory and commit it (see quantize_model_dir)."""
    model_dir = stage.path
    manifest = read_manifest(model_dir)
    # an INT8 head from an earlier run goes too: it belongs to the quantization being replaced
    for key, name in ((CPU_INT8, INT8_FILE), (HEAD_INT8, HEAD_INT8_FILE)):
        (model_dir / name).unlink(missing_ok=True)
        manifest['models'].pop(key, None)
        manifest['files'].pop(name, None)
    mode = settings.mode
    # Selection frames (for the search) come out of the same spread-out set but are not used to
    # calibrate: errors on frames the ranges were fitted to would flatter the model.
    n_all = len(frames.calib_images)
    n_select = min(_selection_count(calibration_frames), max(1, n_all // 5))
    step = n_all / n_select
    picked = sorted({min(n_all - 1, int(step * i + step / 2)) for i in range(n_select)})
    keep = [i for i in range(n_all) if i not in set(picked)]
    all_feeds = feeds_for(manifest, frames.calib_images, frames.calib_states, seed)
    calib_feeds = [all_feeds[i] for i in keep]
    selection = [all_feeds[i] for i in picked]
    selection_indices = [frames.calib_indices[i] for i in picked]
    calib_indices = [frames.calib_indices[i] for i in keep]
    valid_feeds = feeds_for(manifest, frames.valid_images, frames.valid_states, seed + 1)
    action_scale = np.asarray(manifest['action_normalization']['scale'])
    work = model_dir / '.work'  # inside the stage: a killed build's leftovers go with it
    work.mkdir()
    try:
        source, source_note = _quantization_source(model_dir, manifest, work, ck)
        pre = preprocess(source, work / 'fp32_pre.onnx')
        result = quantize_model(pre, work, settings, calib_feeds, selection, action_scale, progress)
        run = validate(model_dir / FP32_FILE, result.path, valid_feeds, action_scale, progress=progress)
        manifest['quantization'] = result.manifest_entry(len(calib_feeds), frames.bags, frames.source)
        manifest['quantization']['seconds'] = round(result.seconds, 1)
        manifest['quantization']['source_graph'] = source_note
        manifest['quantization']['calibration_frame_indices'] = calib_indices
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
            manifest['models'][CPU_INT8] = INT8_FILE
            manifest['files'].update(files_entry(model_dir, [INT8_FILE]))
            if not passed:
                manifest['quantization']['forced'] = True
                manifest['notes'].append('model_int8.onnx was written only because of --force: '
                                         + '; '.join(problems))
        else:
            manifest['notes'].append('model_int8.onnx was not written: ' + '; '.join(problems))
        if head_int8:
            head = _quantize_head(model_dir, manifest, settings, calib_feeds, selection, valid_feeds,
                                  action_scale, work, progress)
            manifest['quantization']['head_int8'] = head
            if not head['written']:
                manifest['notes'].append(f'{HEAD_INT8_FILE} (--hailo-head-int8) was not written: '
                                         + '; '.join(head['problems']) + '; the hailo hybrid runs head.onnx (FP32)')
        write_manifest(model_dir, manifest)
        if report:
            from .report import write_report
            write_report(model_dir / REPORT_DIR, manifest, run, action_scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if passed or force or replace_refused:
        stage.commit()
    if not passed and not force:
        raise ValidationFailed(
            'quantized model ' + '; '.join(problems) + f'; {INT8_FILE} not written'
            + ('' if stage.committed else f' and {stage.target} left as it was')
            + ' (use --force to write it anyway, or try another --mode / --calibration-method)')
    return manifest


def build_model_dir(checkpoint, out_dir, *, bags=None, image_topic: str = 'camera/image_raw',
                    state_topic: str = 'rover/state', mode: str = DEFAULT_MODE,
                    calibration_method: str = DEFAULT_CALIBRATION_METHOD, calibration_frames: int = 200,
                    validation_frames: int = DEFAULT_VALIDATION_FRAMES, search: bool = True,
                    keep_fp32: list | None = None, per_channel: bool = True, force: bool = False,
                    seed: int = 0, report: bool = True, control_rate_hz: float = 30.0,
                    progress: bool = True, saturation_guard: bool = True, head_int8: bool = False) -> dict:
    """The whole offline pipeline; returns the manifest. head_int8: also an INT8 head.onnx for
    the Hailo hybrid (see quantize_model_dir). With bags=None it calibrates and validates
    on synthetic frames and says so in the manifest (`quantization.calibration_source`).

    Every input is checked before the long export (checkpoint, settings, output directory, bags:
    topics, frames decoded), and the model is built beside out_dir and swapped in only when it
    passed; a failed, refused or interrupted build leaves out_dir as it was (see staging.py).
    """
    ck = load_checkpoint(checkpoint)
    _check_camera(ck)
    settings = QuantSettings(mode=mode, calibration_method=calibration_method, per_channel=per_channel,
                             search=search, exclude_groups=list(keep_fp32 or []),
                             saturation_guard=saturation_guard)
    settings.validate()
    stage = StagedDir(out_dir)
    old = stage.target / 'manifest.json'
    had_int8 = old.is_file() and CPU_INT8 in read_manifest(stage.target)['models']
    frames = gather_frames(FrameSpec.of_config(ck.cfg), bags, image_topic, state_topic,
                           calibration_frames + _selection_count(calibration_frames),
                           validation_frames, seed, progress)
    with stage:
        _export_into(stage.path, ck, image_topic, control_rate_hz, progress)
        return _quantize_into(stage, frames, settings, calibration_frames, seed=seed, force=force,
                              report=report, progress=progress, ck=ck, replace_refused=not had_int8,
                              head_int8=head_int8)


def revalidate(model_dir, *, bags=None, image_topic: str | None = None, state_topic: str = 'rover/state',
               frames: int = DEFAULT_VALIDATION_FRAMES, seed: int = 5, progress: bool = True) -> dict:
    """Check file hashes, then INT8 vs FP32 on frames (from bags: spread over them; else synthetic)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    bad = verify_files(model_dir, manifest)
    if bad:
        raise QuantizeError(f'sha256 mismatch or missing file(s) in {model_dir}: {", ".join(bad)}')
    if CPU_INT8 not in manifest['models']:
        raise QuantizeError(f'{model_dir} has no INT8 model to validate')
    sets = gather_frames(FrameSpec.of_manifest(manifest), bags, image_topic or manifest['camera_topic'], state_topic,
                         1, frames, seed, progress)
    feeds = feeds_for(manifest, sets.valid_images, sets.valid_states, seed)
    run = validate(model_dir / FP32_FILE, model_dir / manifest['models'][CPU_INT8], feeds,
                   np.asarray(manifest['action_normalization']['scale']), progress=progress)
    return {**run.metrics, 'source': sets.source,
            'latency_ms_p50': {'ort_fp32': float(np.median(run.latency_fp32_ms)),
                               'ort_int8': float(np.median(run.latency_int8_ms))}}

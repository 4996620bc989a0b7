"""INT8 quantization with ONNX Runtime, choosing what to quantize by measurement.

Modes and calibration methods: modes.py.

For static modes the quantizable nodes are grouped by module (groups.py: backbone stem, each
ResNet block and its downsample conv, image/state projections, each encoder/decoder layer's
attention and feed-forward, action head).
Everything is quantized first; if the result misses the accuracy bar (with margin) on
*selection* frames (a slice of the calibration frames, never the validation frames),
each group's own error is measured and the groups that cost the most accuracy per
unit of compute are kept in FP32, one at a time, until the bar is met.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .bias_correction import bias_correct, input_channel_means
from .calibration import ort_method
from .errors import QuantizeError
from .groups import WEIGHTED_OP_TYPES, Candidate, candidates, is_backbone
from .modes import (AUTO_METHOD, AUTO_METHODS, BAR_MAX, BAR_MSE, CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD,
                    DEFAULT_MODE, MIN_INT8_MAC_FRACTION, MODES)

DEFAULT_OP_TYPES = ('Conv', 'Gemm', 'MatMul', 'Relu', 'MaxPool')
OUTPUT_FLOAT_OP_TYPES = ('Gemm', 'MatMul')  # not Conv: QLinearConv, the fused INT8 conv, needs an output scale
SEARCH_MARGIN = 0.7      # the search aims below 70 % of the MSE bar ...
SEARCH_MARGIN_MAX = 0.6  # ... and 60 % of the max-error bar, so held-out frames pass too (at 80 % a
                         # trained model still missed the bar on about 1 held-out set in 3)


@dataclass
class QuantSettings:
    mode: str = DEFAULT_MODE
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    per_channel: bool = True
    activation_type: str = 'QUInt8'
    weight_type: str = 'QInt8'
    op_types: list = field(default_factory=lambda: list(DEFAULT_OP_TYPES))
    search: bool = True                 # exclude groups by measurement when needed
    bias_correction: bool = True        # correct the INT8 weights' mean output shift (static modes)
    saturation_guard: bool = True       # 7-bit weights where x86 u8s8 kernels would saturate, if measured
                                        # better (see saturation_guard_weights)
    guard_variant: str = 'signed+pixels'  # which inputs get 7-bit weights: GUARD_VARIANTS (set by the search)
    exclude_groups: list = field(default_factory=list)  # forced FP32 groups (user)

    def validate(self):
        if self.mode not in MODES:
            raise QuantizeError(f'unknown quantization mode {self.mode!r}; use one of {", ".join(MODES)}')
        if self.calibration_method not in CALIBRATION_METHODS:
            raise QuantizeError(f'unknown calibration method {self.calibration_method!r}; use one of '
                                f'{", ".join(CALIBRATION_METHODS)}')
        for name in (self.activation_type, self.weight_type):
            if name not in ('QUInt8', 'QInt8'):
                raise QuantizeError(f'unknown quantization type {name!r} (QUInt8 or QInt8)')


@dataclass
class QuantResult:
    path: Path                          # the quantized model (in a temp/work dir)
    settings: QuantSettings
    quantized_groups: list
    fp32_groups: list                   # kept FP32 (by search or by request)
    excluded_nodes: list
    selection: dict                     # error on the selection frames
    search_log: list
    seconds: float
    mac_fraction: float = 0.0           # share of the candidate nodes' multiply-adds that run in INT8
    reduced_range_weights: int = 0      # weights quantized to 7 bits by the saturation guard

    def manifest_entry(self, calibration_frames: int, bags: list, source: str) -> dict:
        s = self.settings
        return {
            'mode': s.mode, 'calibration_method': s.calibration_method if s.mode != 'dynamic' else None,
            'per_channel': s.per_channel, 'activation_type': s.activation_type, 'weight_type': s.weight_type,
            'format': 'QDQ' if s.mode != 'dynamic' else 'dynamic',
            'op_types': list(s.op_types) if s.mode != 'dynamic' else ['MatMul', 'Gemm'],
            'fp32_groups': self.fp32_groups, 'excluded_nodes': self.excluded_nodes,
            'calibration_frames': calibration_frames if s.mode != 'dynamic' else 0,
            'calibration_source': source, 'bags': bags,
            'int8_mac_fraction': round(self.mac_fraction, 4),
            'bias_correction': s.bias_correction and s.mode != 'dynamic',
            'saturation_guard': s.guard_variant if s.saturation_guard and s.mode != 'dynamic' else 'off',
            'reduced_range_weights': self.reduced_range_weights,
            'selection_error': self.selection, 'search': self.search_log,
        }


def _quiet():
    """ORT's quantizer logs and prints a lot; keep the user's terminal to our progress bars."""
    logging.getLogger().setLevel(logging.ERROR)
    return contextlib.redirect_stdout(io.StringIO())


def preprocess(fp32_path: Path, out_path: Path) -> Path:
    """ORT's quantization pre-processing: shape inference + graph optimization (folds constants,
    removes the exporter's Identity nodes, fuses MatMul+Add), which the quantizer needs."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with _quiet():
        quant_pre_process(str(fp32_path), str(out_path))
    return out_path


class Evaluator:
    """Runs FP32 once and candidate models on the same frames; errors in normalized action units."""

    def __init__(self, fp32_path: Path, feeds: list[dict], action_scale: np.ndarray, threads: int = 0):
        self.feeds = feeds
        self.action_scale = np.asarray(action_scale, np.float64).reshape(1, 1, -1)
        self.threads = threads
        session = make_session(fp32_path, threads)
        self.reference = np.concatenate([session.run(['actions'], f)[0] for f in feeds])

    def outputs(self, model_path: Path) -> np.ndarray:
        session = make_session(model_path, self.threads)
        return np.concatenate([session.run(['actions'], f)[0] for f in self.feeds])

    def error(self, model_path: Path) -> dict:
        return action_error(self.reference, self.outputs(model_path), self.action_scale)


def action_error(reference: np.ndarray, candidate: np.ndarray, action_scale) -> dict:
    """MSE and max |error| overall and per action dimension, in normalized action units."""
    scale = np.asarray(action_scale, np.float64).reshape(1, 1, -1)
    err = (candidate.astype(np.float64) - reference.astype(np.float64)) / scale
    return {
        'mse': float(np.mean(err ** 2)),
        'max_abs_error': float(np.max(np.abs(err))),
        'mse_per_dim': [float(v) for v in np.mean(err ** 2, axis=(0, 1))],
        'max_abs_error_per_dim': [float(v) for v in np.max(np.abs(err), axis=(0, 1))],
    }


def passes(metrics: dict, factor: float = 1.0, max_factor: float | None = None) -> bool:
    max_factor = factor if max_factor is None else max_factor
    return metrics['mse'] < BAR_MSE * factor and metrics['max_abs_error'] < BAR_MAX * max_factor


# The max error over many held-out frames grows with their number; the selection frames are
# few, so besides their max the search also wants an RMS error whose ~3.5-sigma tail is under
# the max-error target (errors are close to Gaussian over frames and chunk steps).
SEARCH_MAX_OVER_RMS = 3.5


def worst_dim_mse(metrics: dict) -> float:
    """The MSE of the action dimension with the most error. The max error is a max over every
    dimension, and its tail follows the worst dimension's RMS, not the average over dimensions:
    with the average, demo_trained's search passed at steering MSE 9.2e-5 (throttle 3.0e-5)
    and the held-out max error came out 0.0502 (VNNI VM, bench quantize)."""
    return max(metrics.get('mse_per_dim') or [metrics['mse']])


def _logged(metrics: dict) -> dict:
    """A search step's errors as the manifest's search log keeps them."""
    return {'mse': metrics['mse'], 'max': metrics['max_abs_error'], 'mse_per_dim': metrics.get('mse_per_dim', [])}


def _passes_search(metrics: dict) -> bool:
    rms_ok = worst_dim_mse(metrics) < (SEARCH_MARGIN_MAX * BAR_MAX / SEARCH_MAX_OVER_RMS) ** 2
    return passes(metrics, SEARCH_MARGIN, SEARCH_MARGIN_MAX) and rms_ok


def make_session(path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def pixel_overrides(model_path: Path, activation_type: str) -> dict:
    """conv1 of the whole model sees raw padded pixels (see ActPolicyGraph._fold_image_norm):
    quantize that tensor with scale 1 so every pixel value 0..255 is exact, whatever the
    calibration frames' range (a calibrated range would clip or blur pixel values)."""
    from .act_model import PIXEL_PAD_SCOPE
    model = onnx.load(str(model_path), load_external_data=False)
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == 'Conv':
            producer = producers.get(node.input[0])
            if producer is not None and producer.name.startswith(PIXEL_PAD_SCOPE):
                # range 0..255 over 256 levels: scale exactly 1 for uint8 and int8 alike
                return {node.input[0]: [{'rmin': np.array(0.0, np.float32), 'rmax': np.array(255.0, np.float32)}]}
            break
    return {}


def saturation_guard_weights(model_path: Path, cache_path: Path, high_inputs=()) -> list[str]:
    """Weights to quantize to 7 bits (ORT's reduce_range) so that no x86 kernel saturates.

    Without VNNI (AVX2, AVX-512 without VNNI) ORT's u8s8 kernels multiply uint8 activations by
    int8 weights with VPMADDUBSW, which adds each pair of products in int16 and saturates:
    2 x 255 x 127 > 32767. Measured in ORT 1.32 on AVX2: a model whose QDQ arithmetic is within
    bar (run with graph optimizations off, i.e. in float) misses it 100-fold with the integer
    kernels. It bites where the uint8 input is high most of the time: raw pixels (0..255, the
    `high_inputs`) and signed tensors, whose zero point sits mid-range (LayerNorm outputs,
    x + pos, attention outputs). Post-ReLU inputs (zero point 0, mostly small codes) keep their
    8-bit weights. 7-bit weights cannot saturate (2 x 255 x 63 < 32767) and cost one bit of
    weight precision only there; ARM (SDOT/UDOT) and VNNI kernels never saturate, so the model
    is safe wherever it runs.
    """
    from onnxruntime.quantization.calibrate import load_tensors_data
    ranges = load_tensors_data(cache_path).data
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OP_TYPES or len(node.input) < 2 or node.input[1] not in inits:
            continue
        data = ranges.get(node.input[0])
        # a tensor the calibration did not see is treated as signed (the safe side)
        low = float(np.min(data.range_value[0])) if data is not None else -1.0
        if low < 0 or node.input[0] in high_inputs:
            out.append(node.input[1])
    return out


# Tried in this order on the all-INT8 model, the most accurate kept: 7 bits for weights behind
# signed tensors and raw pixels, behind signed tensors only, or nowhere (where nothing saturates,
# e.g. on VNNI or ARM, 7 bits only cost precision). Measured on AVX2 (bench, 2 threads): demo_trained
# all-INT8 MSE 1.4e-2 -> 2e-4 (selection frames); synthetic 59.9 % -> 81.3 % of MACs INT8 after the search.
GUARD_VARIANTS = ('signed+pixels', 'signed', 'off')


def guarded_weights(pre_path, settings: QuantSettings, cache_path) -> list[str]:
    if not settings.saturation_guard or settings.guard_variant == 'off':
        return []
    high = set(pixel_overrides(pre_path, settings.activation_type)) if settings.guard_variant == 'signed+pixels' else set()
    return saturation_guard_weights(pre_path, cache_path, high)


def _overrides(pre_path, settings: QuantSettings, cache_path) -> dict:
    overrides = pixel_overrides(pre_path, settings.activation_type)
    if settings.saturation_guard:
        for weight in guarded_weights(pre_path, settings, cache_path):
            overrides[weight] = [{'reduce_range': True}]  # per channel: the first entry holds for all
    return overrides


def _static(pre_path, out_path, settings: QuantSettings, cache_path, nodes: list[str]):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    if not nodes:
        raise QuantizeError('nothing left to quantize (every group is kept in FP32)')
    extra = {'TensorQuantOverrides': _overrides(pre_path, settings, cache_path),
             # Gemm/MatMul outputs stay float: ORT's QGemm / MatMulIntegerToFloat write float, and
             # a uint8 rounding and clipping there bought nothing (the feed-forward's quantized
             # ReLU still quantizes what it writes for the next Gemm). Measured on demo_trained
             # all-INT8, 100 held-out frames (VNNI VM): MSE 2.6e-4 -> 1.8e-4, max 0.235 -> 0.071
             # (the action head's output was clipped to its calibrated range), 14.9 -> 13.9 ms.
             'OpTypesToExcludeOutputQuantization': list(OUTPUT_FLOAT_OP_TYPES)}
    with _quiet():
        quantize_static(
            str(pre_path), str(out_path), None, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types), per_channel=settings.per_channel,
            activation_type=getattr(QuantType, settings.activation_type),
            weight_type=getattr(QuantType, settings.weight_type),
            nodes_to_quantize=nodes,
            calibrate_method=getattr(CalibrationMethod, ort_method(settings.calibration_method)),
            calibration_cache_path=str(cache_path), extra_options={**extra, 'ForceQuantizeNoInputCheck': True})
    return out_path


def _dynamic(pre_path, out_path, settings: QuantSettings):
    # No node list: ORT's dynamic quantizer rewrites Gemm into MatMul+Add under new names, so a
    # list of the original names would silently match nothing.
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with _quiet():
        quantize_dynamic(str(pre_path), str(out_path), op_types_to_quantize=['MatMul', 'Gemm'],
                         per_channel=settings.per_channel, weight_type=getattr(QuantType, settings.weight_type))
    return out_path


INTEGER_OPS = {'QuantizeLinear', 'DynamicQuantizeLinear', 'MatMulInteger', 'ConvInteger', 'QLinearConv',
               'QLinearMatMul', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat'}


def assert_quantized(path: Path) -> None:
    """Never hand on a model that only pretends to be quantized."""
    model = onnx.load(str(path), load_external_data=False)
    if not any(n.op_type in INTEGER_OPS for n in model.graph.node):
        raise QuantizeError(f'{Path(path).name}: the quantizer produced no integer operators')


def quantize_model(pre_path: Path, work_dir: Path, settings: QuantSettings, calib_feeds: list[dict],
                   selection_feeds: list[dict], action_scale, progress: bool = True,
                   threads: int = 0) -> QuantResult:
    """Quantize a pre-processed FP32 model; returns the best model meeting the bar on selection frames
    (or, if none does, the most accurate one tried, for validation to reject)."""
    from tqdm import tqdm

    from .calibration import calibrate_ranges
    settings.validate()
    started = time.monotonic()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cands = candidates(pre_path, settings.op_types if settings.mode != 'dynamic' else ('MatMul', 'Gemm'))
    groups: dict[str, list[Candidate]] = {}
    for c in cands:
        groups.setdefault(c.group, []).append(c)
    groups = {g: cs for g, cs in groups.items() if any(c.cost > 0 for c in cs)}
    if settings.mode == 'mixed':
        allowed = [g for g in groups if not is_backbone(g)]
    elif settings.mode == 'mixed-backbone':
        allowed = [g for g in groups if is_backbone(g)]
    else:
        allowed = list(groups)
    unknown = set(settings.exclude_groups) - set(groups)
    if unknown:
        raise QuantizeError(f'unknown group(s) to keep in FP32: {", ".join(sorted(unknown))}; '
                            f'groups are: {", ".join(groups)}')
    active = [g for g in allowed if g not in settings.exclude_groups]
    evaluator = Evaluator(pre_path, selection_feeds, action_scale, threads)
    log = []

    def nodes_of(gs):
        return [c.name for g in gs for c in groups[g]]

    def fraction(gs):
        total = sum(c.cost for c in cands) or 1.0
        return sum(c.cost for g in gs for c in groups[g]) / total

    if settings.mode == 'dynamic':
        if settings.exclude_groups:
            raise QuantizeError('--keep-fp32 is not supported with --mode dynamic (it quantizes every MatMul/Gemm)')
        out = _dynamic(pre_path, work_dir / 'dynamic.onnx', settings)
        assert_quantized(out)
        metrics = evaluator.error(out)
        log.append({'quantized': len(active), 'mse': metrics['mse'], 'max': metrics['max_abs_error']})
        return QuantResult(out, settings, active, sorted(set(groups) - set(active)),
                           [], metrics, log, time.monotonic() - started, fraction(active))

    # 'auto': Percentile and MSE ranges from one histogram pass; the all-INT8 builds below keep
    # the method with the lower selection error
    methods = AUTO_METHODS if settings.calibration_method == AUTO_METHOD else (settings.calibration_method,)
    caches = {m: work_dir / f'calibration_{m}.json' for m in methods}
    if not all(c.exists() for c in caches.values()):
        calibrate_ranges(pre_path, calib_feeds, caches[methods[0]], methods[0], progress=progress,
                         op_types=settings.op_types, mse_cache_path=caches.get('MSE') if len(methods) > 1 else None)

    trial = [0]
    means = input_channel_means(pre_path, calib_feeds[:32], [c.name for c in cands if c.cost > 0]) \
        if settings.bias_correction else {}

    def build(gs, variant=None) -> tuple[Path, dict]:
        trial[0] += 1
        out = work_dir / f'trial_{trial[0]}.onnx'
        if variant is not None:
            settings.guard_variant = variant
        _static(pre_path, out, settings, caches[settings.calibration_method], nodes_of(gs))
        if settings.bias_correction:
            bias_correct(pre_path, out, means)
        return out, evaluator.error(out)

    # every (calibration method, saturation guard variant) on the all-INT8 model; the lowest MSE is kept
    tried = {}
    for method in methods:
        settings.calibration_method = method
        for variant in (GUARD_VARIANTS if settings.saturation_guard else (None,)):
            tried[method, variant] = build(active, variant)
            log.append({'step': f'all, calibration {method}' + (f', saturation guard {variant}' if variant else ''),
                        'fp32_groups': [], **_logged(tried[method, variant][1])})
    chosen = min(tried, key=lambda k: tried[k][1]['mse'])
    for key, (path, _) in tried.items():
        if key != chosen:
            path.unlink(missing_ok=True)
    settings.calibration_method, variant = chosen
    if variant is not None:
        settings.guard_variant = variant
    best_path, best = tried[chosen]
    if settings.bias_correction:
        # Kept only where it measurably helps: it corrects the weights' mean output shift (and, on
        # x86 without VNNI, much of the saturation's), but with VNNI kernels it was measured to add
        # error on the trained demo policy (see the README).
        settings.bias_correction = False
        path, plain = build(active)
        log.append({'step': 'all, bias correction off', 'fp32_groups': [], **_logged(plain)})
        if plain['mse'] < best['mse']:
            best_path.unlink(missing_ok=True)
            best_path, best = path, plain
        else:
            path.unlink(missing_ok=True)
            settings.bias_correction = True
    log.append({'step': 'all', 'fp32_groups': [], **_logged(best),
                'calibration_method': settings.calibration_method,
                'saturation_guard': settings.guard_variant if settings.saturation_guard else 'off',
                'bias_correction': settings.bias_correction})
    guarded = set(guarded_weights(pre_path, settings, caches[settings.calibration_method]))
    if settings.search and not _passes_search(best) and len(active) > 1:
        # Each group's own error (only that group quantized), per unit of compute it saves.
        sens = {}
        bar = tqdm(active, desc='measuring sensitivity', unit='group', leave=False, disable=not progress)
        for g in bar:
            path, m = build([g])
            sens[g] = m['mse']
            path.unlink(missing_ok=True)
        bar.close()
        cost = {g: sum(c.cost for c in groups[g]) for g in active}
        order = sorted(active, key=lambda g: sens[g] / max(cost[g], 1.0), reverse=True)
        log.append({'step': 'sensitivity', 'mse_by_group': sens})
        kept, current, best_groups = list(active), best, list(active)
        while not _passes_search(current):
            # Errors add roughly like the isolated MSEs: drop the best accuracy-per-compute groups
            # until their share of the summed sensitivity covers the reduction still needed.
            need = max(1 - SEARCH_MARGIN * BAR_MSE / current['mse'],
                       1 - (SEARCH_MARGIN_MAX * BAR_MAX / current['max_abs_error']) ** 2,
                       1 - (SEARCH_MARGIN_MAX * BAR_MAX / SEARCH_MAX_OVER_RMS) ** 2 / worst_dim_mse(current))
            total = sum(sens[g] for g in kept)
            chosen, acc = [], 0.0
            floor = MIN_INT8_MAC_FRACTION[settings.mode]
            for g in order:
                if g not in kept or sens[g] < 0.01 * total:
                    continue
                if fraction([k for k in kept if k not in chosen and k != g]) < floor:
                    continue  # would no longer be an INT8 model
                chosen.append(g)
                acc += sens[g]
                if acc >= need * total:
                    break
            if not chosen or len(chosen) >= len(kept):
                break  # the bar cannot be met by keeping groups in FP32; validation will say so
            kept = [g for g in kept if g not in chosen]
            path, current = build(kept)
            log.append({'step': 'keep fp32 ' + ', '.join(chosen), 'fp32_groups': sorted(set(active) - set(kept)),
                        **_logged(current)})
            if _passes_search(current) or current['mse'] < best['mse']:
                best_path.unlink(missing_ok=True)
                best_path, best, best_groups = path, current, list(kept)
            else:
                path.unlink(missing_ok=True)
        # The steps above go by isolated sensitivities, which over-estimate how the errors
        # combine, and drop groups in batches: each dropped group is tried back in INT8, the
        # most compute per unit of error first, and stays there if the trial meets the search
        # target (tried also when the drop steps never met it: errors combine unpredictably).
        for g in [g for g in reversed(order) if g not in best_groups]:
            trial_groups = best_groups + [g]
            path, trial_metrics = build(trial_groups)
            back = _passes_search(trial_metrics)
            log.append({'step': f'back to int8 {g}', 'kept': back, **_logged(trial_metrics),
                        'fp32_groups': sorted(set(active) - set(trial_groups))})  # the trial's, as above
            if back:
                best_path.unlink(missing_ok=True)
                best_path, best, best_groups = path, trial_metrics, trial_groups
            else:
                path.unlink(missing_ok=True)
        active = best_groups
    final = work_dir / 'model_int8.onnx'
    shutil.move(str(best_path), final)
    assert_quantized(final)
    for stale in work_dir.glob('trial_*.onnx'):
        stale.unlink()
    excluded = sorted(set(groups) - set(active))
    weight_of = {n.name: n.input[1] for n in onnx.load(str(pre_path), load_external_data=False).graph.node
                 if len(n.input) > 1}
    n_guarded = sum(weight_of.get(c.name) in guarded for g in active for c in groups[g] if c.cost > 0)
    return QuantResult(final, settings, active, excluded, [c.name for g in excluded for c in groups[g]],
                       best, log, time.monotonic() - started, fraction(active), n_guarded)


def corrupt_model(path: Path, out_path: Path, what: str = 'scale') -> Path:
    """A deliberately broken copy (for tests): a scale multiplied by 50, or a weight zeroed."""
    from onnx import numpy_helper
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    # weights are a Conv/Gemm/MatMul's second input (the third, the int32 bias, is also a constant)
    weight_inputs = {n.input[1] for n in model.graph.node if n.op_type in WEIGHTED_OP_TYPES}
    for node in model.graph.node:
        if what == 'scale' and node.op_type == 'DequantizeLinear' and node.input[1] in inits \
                and node.input[0] in inits and node.output[0] in weight_inputs:  # a weight's scale
            t = inits[node.input[1]]
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 50.0, t.name))
            break
        if what == 'weight' and node.op_type in WEIGHTED_OP_TYPES and node.input[1] in inits:
            t = inits[node.input[1]]
            t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
            break
    else:
        raise QuantizeError(f'nothing to corrupt ({what}) in {path}')
    onnx.save(model, str(out_path))
    return out_path

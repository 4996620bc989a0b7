"""Held-out validation of a quantized model against FP32 (normalized action units)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .modes import BAR_MAX, BAR_MSE
from .quantize import action_error, make_session


@dataclass
class ValidationRun:
    metrics: dict            # manifest "validation" block
    reference: np.ndarray    # FP32 actions [frames, chunk, dim] (unnormalized)
    candidate: np.ndarray    # quantized actions
    latency_fp32_ms: list
    latency_int8_ms: list


def validate(fp32_path: Path, int8_path: Path, feeds: list[dict], action_scale,
             threads: int = 0, progress: bool = True) -> ValidationRun:
    """Run both models on the validation frames (interleaved, so timing is comparable)."""
    from tqdm import tqdm
    fp32 = make_session(fp32_path, threads)
    int8 = make_session(int8_path, threads)
    fp32.run(['actions'], feeds[0])  # warm-up: first runs allocate
    int8.run(['actions'], feeds[0])
    ref, cand, t_fp, t_q = [], [], [], []
    for feed in tqdm(feeds, desc='validating', unit='frame', leave=False, disable=not progress):
        t0 = time.perf_counter()
        ref.append(fp32.run(['actions'], feed)[0])
        t1 = time.perf_counter()
        cand.append(int8.run(['actions'], feed)[0])
        t2 = time.perf_counter()
        t_fp.append((t1 - t0) * 1e3)
        t_q.append((t2 - t1) * 1e3)
    ref, cand = np.concatenate(ref), np.concatenate(cand)
    metrics = action_error(ref, cand, action_scale)
    metrics = {'frames': len(feeds), **metrics,
               'bar': {'mse': BAR_MSE, 'max_abs_error': BAR_MAX},
               'passed': bool(metrics['mse'] < BAR_MSE and metrics['max_abs_error'] < BAR_MAX),
               'units': 'normalized action units (dataset normalization of the action)'}
    return ValidationRun(metrics, ref, cand, t_fp, t_q)

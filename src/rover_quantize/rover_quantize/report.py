"""Validation report: report/index.html with PNG plots (matplotlib, Agg backend)."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def write_report(out_dir: Path, manifest: dict, run=None, action_scale=None) -> Path:
    """Write out_dir/index.html (+ PNGs). `run` is a validation.ValidationRun or None."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    names = manifest.get('action_names') or []
    images = []
    if run is not None:
        scale = np.asarray(action_scale, np.float64).reshape(1, 1, -1)
        err = (run.candidate - run.reference) / scale
        dims = err.shape[-1]
        labels = [names[d] if d < len(names) else f'dim {d}' for d in range(dims)]

        fig, ax = plt.subplots(figsize=(7, 4))
        for d in range(dims):
            ax.hist(err[..., d].ravel(), bins=60, alpha=0.6, label=labels[d])
        bar = manifest['validation']['bar']['max_abs_error']
        ax.axvline(-bar, color='red', ls='--', lw=1)
        ax.axvline(bar, color='red', ls='--', lw=1, label=f'bar ±{bar}')
        ax.set_xlabel('INT8 − FP32 (normalized action units)')
        ax.set_ylabel('count')
        ax.set_title('Quantization error on held-out frames')
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / 'error_histogram.png', dpi=100)
        plt.close(fig)
        images.append(('error_histogram.png', 'Error histogram'))

        frames = np.linspace(0, len(run.reference) - 1, min(3, len(run.reference))).round().astype(int)
        fig, axes = plt.subplots(len(frames), dims, figsize=(4 * dims, 2.5 * len(frames)), squeeze=False)
        for r, f in enumerate(frames):
            for d in range(dims):
                ax = axes[r][d]
                ax.plot(run.reference[f, :, d], label='FP32', lw=2)
                ax.plot(run.candidate[f, :, d], label='INT8', lw=1, ls='--')
                ax.set_title(f'frame {f}: {labels[d]}', fontsize=9)
                ax.set_xlabel('chunk step')
                if r == 0 and d == 0:
                    ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / 'action_traces.png', dpi=100)
        plt.close(fig)
        images.append(('action_traces.png', 'FP32 vs INT8 action chunks (unnormalized)'))

        fig, ax = plt.subplots(figsize=(7, 4))
        bins = np.linspace(0, max(max(run.latency_fp32_ms), max(run.latency_int8_ms)) * 1.05, 50)
        ax.hist(run.latency_fp32_ms, bins=bins, alpha=0.6, label=f'ORT FP32 (p50 {np.median(run.latency_fp32_ms):.1f} ms)')
        ax.hist(run.latency_int8_ms, bins=bins, alpha=0.6, label=f'ORT INT8 (p50 {np.median(run.latency_int8_ms):.1f} ms)')
        ax.set_xlabel('latency per frame (ms)')
        ax.set_ylabel('frames')
        ax.set_title('Latency during validation (this machine)')
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / 'latency.png', dpi=100)
        plt.close(fig)
        images.append(('latency.png', 'Latency distribution'))

    sens = next((s['mse_by_group'] for s in manifest.get('quantization', {}).get('search', [])
                 if s.get('step') == 'sensitivity'), None)
    if sens:
        fig, ax = plt.subplots(figsize=(8, max(3, 0.3 * len(sens))))
        groups = list(sens)
        ax.barh(groups, [sens[g] for g in groups])
        ax.set_xscale('log')
        ax.set_xlabel('MSE when only this group is INT8 (selection frames)')
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(out_dir / 'sensitivity.png', dpi=100)
        plt.close(fig)
        images.append(('sensitivity.png', 'Per-group quantization sensitivity'))

    v = manifest.get('validation') or {}
    q = manifest.get('quantization') or {}
    status = ('PASSED' if v.get('passed') else 'FAILED') if v else 'not run'
    rows = [
        ('checkpoint', manifest['checkpoint']['path']),
        ('checkpoint sha256', manifest['checkpoint']['sha256']),
        ('validation', f"{status}: MSE {v.get('mse', float('nan')):.3g} (bar {v.get('bar', {}).get('mse')}), "
                       f"max |err| {v.get('max_abs_error', float('nan')):.3g} (bar {v.get('bar', {}).get('max_abs_error')}) "
                       f"on {v.get('frames', 0)} held-out frames" if v else 'not run'),
        ('per dimension', ', '.join(f'{n}: mse {m:.3g} max {x:.3g}' for n, m, x in zip(
            manifest.get('action_names', []), v.get('mse_per_dim', []), v.get('max_abs_error_per_dim', [])))),
        ('quantization', f"{q.get('mode')} / {q.get('calibration_method')} / per-channel {q.get('per_channel')} / "
                         f"{q.get('activation_type')} activations / {q.get('weight_type')} weights"),
        ('kept in FP32', ', '.join(q.get('fp32_groups') or []) or 'none'),
        ('calibration', f"{q.get('calibration_frames')} frames from {q.get('calibration_source')}"),
        ('INT8 model', manifest['models'].get('cpu_int8', 'not written (missed the bar)')),
    ]
    table = '\n'.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(str(val))}</td></tr>' for k, val in rows)
    figures = '\n'.join(f'<figure><img src="{f}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
                        for f, c in images)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rover_quantize report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}th{{text-align:left;padding-right:1em;vertical-align:top}}
td{{font-family:monospace}}img{{max-width:100%}}.PASSED{{color:green}}.FAILED{{color:#b00}}</style></head>
<body><h1>ACT quantization report <span class="{status}">{status}</span></h1>
<table>{table}</table>
{figures}
<h2>manifest.json</h2><pre>{html.escape(json.dumps(manifest, indent=2))}</pre>
</body></html>
"""
    path = out_dir / 'index.html'
    path.write_text(page)
    return path

"""ONNX export of the ACT policy graph (whole model, backbone, head) with a self-check."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from .act_model import ActPolicyGraph, feature_names, fold_frozen_bn, image_input_names
from .calibration import synthetic_frames, synthetic_states
from .checkpoint import LoadedCheckpoint
from .errors import QuantizeError

OPSET = 17
EXPORT_TOLERANCE = 1e-4  # |ORT - PyTorch| <= tol * max(1, max|PyTorch|)


def policy_graph(ck: LoadedCheckpoint, part: str = 'full', fused: bool = True, s2d: bool = False) -> ActPolicyGraph:
    """The exported module. `fused` folds frozen BN into the convs and, for the whole model, the
    image normalization into conv1 (same math, fewer ops); backbone.onnx keeps the normalization
    as explicit ops so it can be cut off for the Hailo parser. `s2d` rewrites conv1 as a
    space-to-depth conv (same sums): faster in INT8, slower in FP32, so only the graph that
    gets quantized uses it."""
    fused_backbone = fold_frozen_bn(ck.core.backbone) if fused and ck.cfg.image_features else None
    fold = fused and part == 'full' and bool(ck.cfg.image_features)
    return ActPolicyGraph(ck.core, ck.norm, part=part, fused_backbone=fused_backbone,
                          fold_image_norm=fold, s2d_stem=s2d).eval()


def example_inputs(ck: LoadedCheckpoint, part: str, n: int = 1, seed: int = 0) -> list[dict]:
    """Feeds (numpy) for a graph part: synthetic images/states, or features from the torch backbone."""
    cfg = ck.cfg
    h, w = cfg.image_hw if cfg.image_features else (0, 0)
    feeds = []
    for i in range(n):
        feed = {}
        if cfg.image_features:
            images = synthetic_frames(len(cfg.image_features), h, w, seed=seed + i)
            if part in ('full', 'backbone'):
                for name, img in zip(image_input_names(cfg), images):
                    feed[name] = img[None]
            else:
                full = policy_graph(ck, 'backbone', fused=False)
                with torch.no_grad():
                    for name, img in zip(feature_names(cfg), images):
                        feed[name] = full.features_of(torch.from_numpy(img[None])).numpy()
        if part in ('full', 'head'):
            if cfg.robot_state_feature:
                feed['state'] = synthetic_states(1, cfg.state_dim, seed=seed + i)
            if cfg.env_state_feature:
                feed['environment_state'] = synthetic_states(1, cfg.env_state_feature.shape[0], seed=seed + 50 + i)
        feeds.append(feed)
    return feeds


def torch_outputs(graph: ActPolicyGraph, feed: dict) -> list[np.ndarray]:
    args = tuple(torch.from_numpy(feed[name]) for name in graph.input_names())
    with torch.no_grad():
        out = graph(*args)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def export_part(ck: LoadedCheckpoint, part: str, path: Path, opset: int = OPSET, s2d: bool = False) -> dict:
    """Export one part to `path` and check it against eager PyTorch (unfused, LeRobot's math)."""
    graph = policy_graph(ck, part, fused=True, s2d=s2d)
    reference = policy_graph(ck, part, fused=False)
    feeds = example_inputs(ck, part, n=2)
    args = tuple(torch.from_numpy(feeds[0][n]) for n in graph.input_names())
    path = Path(path)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=opset,
                              input_names=graph.input_names(), output_names=graph.output_names(),
                              do_constant_folding=True)
        except Exception as exc:  # pragma: no cover - depends on the torch version
            raise QuantizeError(f'ONNX export of the {part} failed: {exc}') from None
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    worst = 0.0
    for feed in feeds:
        want = torch_outputs(reference, feed)
        got = session.run(None, feed)
        for w_, g_ in zip(want, got):
            scale = max(1.0, float(np.abs(w_).max()))
            worst = max(worst, float(np.abs(w_ - g_).max()) / scale)
    if not worst <= EXPORT_TOLERANCE:
        raise QuantizeError(f'exported {path.name} differs from PyTorch by {worst:.2e} '
                            f'(relative), more than {EXPORT_TOLERANCE:g}')
    return {'file': path.name, 'max_rel_diff_vs_torch': worst, 'opset': opset}


def io_spec(path: Path) -> tuple[list[dict], list[dict]]:
    """Names, shapes and dtypes of a model's inputs and outputs (for the manifest)."""
    model = onnx.load(str(path), load_external_data=False)
    dtype = {onnx.TensorProto.FLOAT: 'float32', onnx.TensorProto.UINT8: 'uint8'}

    def spec(values):
        return [{'name': v.name,
                 'shape': [d.dim_value for d in v.type.tensor_type.shape.dim],
                 'dtype': dtype.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))}
                for v in values]
    return spec(model.graph.input), spec(model.graph.output)

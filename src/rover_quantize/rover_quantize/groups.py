"""What can be quantized, grouped by module, with its cost in multiply-adds.

The exporter names nodes by module path (/backbone/layer1/layer1.0/conv1/Conv, ...); the search
keeps whole groups in FP32 (backbone stem, each ResNet block, each block's downsample conv,
image/state projections, each encoder/decoder layer's attention and feed-forward, action head).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

# The op types whose second input is a weight (what the search counts multiply-adds of).
WEIGHTED_OP_TYPES = ('Conv', 'Gemm', 'MatMul')


def node_group(name: str) -> str:
    """Module group of an exported node name, e.g. /backbone/layer1/layer1.0/conv1/Conv -> backbone.layer1.0."""
    parts = [p for p in name.split('/') if p]
    if not parts:
        return 'other'
    if parts[0] == 'backbone':
        if len(parts) > 2 and parts[1].startswith('layer'):
            # A block's 1x1 downsample conv is a group of its own: ~1 % of the multiply-adds,
            # but its output is one of the model's most sensitive tensors (demo_trained all-INT8:
            # layer2.0's and layer3.0's are 9.5 % and 6.9 % of the MSE), so the search can keep it
            # FP32 without the block's 3x3 convs.
            if len(parts) > 3 and parts[3].startswith('downsample'):
                return f'backbone.{parts[2]}.downsample'
            return f'backbone.{parts[2]}'
        if parts[1].startswith('MaxPool'):
            # The pool feeds layer1 and stays INT8 with it even when conv1 is kept FP32
            # (an FP32 max-pool in plain NCHW is many times slower than the INT8 one).
            return 'backbone.layer1.0'
        return 'backbone.stem'
    if parts[0] in ('encoder', 'decoder') and len(parts) > 1 and parts[1].startswith('layers.'):
        group = f'{parts[0]}.{parts[1]}'
        if len(parts) > 2 and parts[2] in ('self_attn', 'multihead_attn'):
            return group + '.attn'
        if len(parts) > 2 and (parts[2] in ('linear1', 'linear2') or parts[2].startswith('Relu')):
            return group + '.ffn'
        return group
    return parts[0]


def is_backbone(group: str) -> bool:
    return group.startswith('backbone.')


@dataclass
class Candidate:
    name: str
    op_type: str
    group: str
    cost: float  # multiply-accumulates (approx.)


def candidates(model_path: Path, op_types) -> list[Candidate]:
    """Nodes to quantize: Conv/Gemm/MatMul with a constant weight input, plus the other op
    types asked for (Relu, MaxPool: quantizing them lets a conv's output use the post-ReLU
    range and keeps the int8 path unbroken; measured faster and more accurate).

    MatMuls between two activations (attention scores and weighted values) are left out:
    measured on the default ACT, quantizing them costs accuracy and gains no speed.
    """
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = dims
    out = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        weights = [inits[i] for i in node.input[1:2] if i in inits]
        if not weights:
            if node.op_type not in WEIGHTED_OP_TYPES:  # Relu, MaxPool, ...: ride along, no cost
                out.append(Candidate(node.name, node.op_type, node_group(node.name), 0.0))
            continue
        w_numel = float(np.prod(weights[0].dims))
        out_shape = shapes.get(node.output[0])
        if node.op_type == 'Conv':
            spatial = float(np.prod(out_shape[2:])) if out_shape else 1.0
            cost = w_numel * spatial
        else:
            rows = float(np.prod(out_shape[:-1])) if out_shape else 1.0
            cost = w_numel * rows
        out.append(Candidate(node.name, node.op_type, node_group(node.name), cost))
    return out

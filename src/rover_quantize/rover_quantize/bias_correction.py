"""Empirical bias correction of a QDQ model (Nagel et al. 2019)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def input_channel_means(fp32_path: Path, feeds: list[dict], node_names: list[str]) -> dict:
    """Mean of each input channel of the data input of the given Conv/Gemm nodes, over frames."""
    from onnx import TensorProto, helper
    model = onnx.load(str(fp32_path))
    nodes = {n.name: n for n in model.graph.node}
    wanted, tensor_of = set(), {}
    for name in node_names:
        node = nodes[name]
        red = f'{node.input[0]}__channel_mean'
        tensor_of[name] = red
        if red not in wanted:
            wanted.add(red)
            axes = [0, 2, 3] if node.op_type == 'Conv' else [0]  # NCHW / [tokens, K]
            model.graph.node.append(helper.make_node('ReduceMean', [node.input[0]], [red], axes=axes, keepdims=0))
            model.graph.output.append(helper.make_tensor_value_info(red, TensorProto.FLOAT, None))
    names = sorted(wanted)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    total = None
    for feed in feeds:
        values = session.run(names, feed)
        total = values if total is None else [t + v for t, v in zip(total, values)]
    means = {t: v / len(feeds) for t, v in zip(names, total)}
    return {name: means[tensor_of[name]] for name in node_names}


def bias_correct(fp32_path: Path, qdq_path: Path, means: dict) -> int:
    """Empirical bias correction (Nagel et al. 2019) of a QDQ model, in place.

    INT8 weights W_q = W + dW shift each output by dW . x; its expectation dW . E[x] is a
    constant per output channel that the (int32) bias can take back. It matters most where
    inputs have a large mean: raw pixels into conv1 (~120) and post-ReLU activations.
    """
    from onnx import numpy_helper
    fp = onnx.load(str(fp32_path))
    model = onnx.load(str(qdq_path))
    fp_inits = {i.name: i for i in fp.graph.initializer}
    fp_nodes = {n.name: n for n in fp.graph.node}
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    users: dict[str, int] = {}
    dq_users: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
        if n.op_type == 'DequantizeLinear':
            dq_users[n.input[0]] = dq_users.get(n.input[0], 0) + 1
    new_dq_nodes = []
    corrected = 0
    for node in list(model.graph.node):
        if node.name not in means or len(node.input) < 3 or node.name not in fp_nodes:
            continue
        w_dq, b_dq = producer.get(node.input[1]), producer.get(node.input[2])
        if not (w_dq and b_dq and w_dq.op_type == b_dq.op_type == 'DequantizeLinear'
                and w_dq.input[0] in inits and b_dq.input[0] in inits):
            continue
        w_q = numpy_helper.to_array(inits[w_dq.input[0]]).astype(np.float64)
        w_scale = numpy_helper.to_array(inits[w_dq.input[1]]).astype(np.float64)
        axis = next((a.i for a in w_dq.attribute if a.name == 'axis'), 1)
        shape = [1] * w_q.ndim
        if w_scale.ndim:
            shape[axis] = -1
        w_zero = numpy_helper.to_array(inits[w_dq.input[2]]).astype(np.float64).reshape(shape) \
            if len(w_dq.input) > 2 and w_dq.input[2] in inits else 0.0
        dw = (w_q - w_zero) * w_scale.reshape(shape) - \
            numpy_helper.to_array(fp_inits[fp_nodes[node.name].input[1]]).astype(np.float64)
        mean = np.asarray(means[node.name], np.float64).reshape(-1)
        if node.op_type == 'Conv':
            if dw.ndim != 4 or mean.size != dw.shape[1]:
                continue
            shift = np.einsum('ockl,c->o', dw, mean)
        else:
            trans_b = next((a.i for a in node.attribute if a.name == 'transB'), 0)
            if dw.ndim != 2 or mean.size != dw.shape[1 if trans_b else 0]:
                continue
            shift = dw @ mean if trans_b else mean @ dw
        bias_t = inits[b_dq.input[0]]
        b_scale = numpy_helper.to_array(inits[b_dq.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(bias_t).astype(np.float64) * b_scale - shift
        new = np.clip(np.round(bias / b_scale), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        if users[b_dq.output[0]] > 1 or dq_users[bias_t.name] > 1:
            # Identical biases (zeros, typically) are stored once and shared: give this node its own.
            name = f'{bias_t.name}__{corrected}_{node.name.replace("/", "_")}'
            model.graph.initializer.append(numpy_helper.from_array(new, name))
            dq = onnx.helper.make_node('DequantizeLinear', [name, *b_dq.input[1:]], [name + '_dq'],
                                       name=name + '_DequantizeLinear')
            dq.attribute.extend(b_dq.attribute)
            new_dq_nodes.append(dq)
            node.input[2] = name + '_dq'
        else:
            bias_t.CopyFrom(numpy_helper.from_array(new, bias_t.name))
        corrected += 1
    model.graph.node.extend(new_dq_nodes)
    if new_dq_nodes:  # keep the graph topologically sorted: new DQs (constant inputs only) go first
        nodes = list(model.graph.node)
        ordered = new_dq_nodes + [n for n in nodes if n not in new_dq_nodes]
        del model.graph.node[:]
        model.graph.node.extend(ordered)
    onnx.save(model, str(qdq_path))
    return corrected

"""Build fake HEF files (ONNX graphs, see fake_hailo) that behave like compiled HEFs.

A HEF compiled from backbone.onnx with the normalization on chip takes NHWC
float pixels 0-255 and returns the feature map NHWC; these helpers wrap the
model directory's ONNX files accordingly (a Cast in front of the uint8 image
input, a Transpose NCHW -> NHWC behind the features) and store quant infos like
a HEF's in the ONNX metadata.
"""
import contextlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

FAKE_HAILO_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fake_hailo')


@contextlib.contextmanager
def fake_hailo_on_path():
    """Import the fake hailo_platform for the duration of the block."""
    sys.path.insert(0, FAKE_HAILO_PATH)
    try:
        yield
    finally:
        sys.path.remove(FAKE_HAILO_PATH)
        for name in [m for m in sys.modules if m == 'hailo_platform' or m.startswith('hailo_platform.')]:
            del sys.modules[name]


def _float_image_front(graph, image_name, new_name, height, width):
    """Replace the uint8 image input by a float32 one (pixels 0-255) feeding a Cast."""
    old = [i for i in graph.input if i.name == image_name][0]
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info(new_name, TensorProto.FLOAT, [1, height, width, 3]))
    graph.node.insert(0, helper.make_node('Cast', [new_name], [image_name], to=TensorProto.UINT8))


def _rename_input(graph, old_name, new_name):
    old = [i for i in graph.input if i.name == old_name][0]
    dims = [d.dim_value for d in old.type.tensor_type.shape.dim]
    graph.input.remove(old)
    graph.input.append(helper.make_tensor_value_info(new_name, old.type.tensor_type.elem_type, dims))
    graph.node.insert(0, helper.make_node('Identity', [new_name], [old_name]))


def _replace_output(graph, old_name, new_name, dims, perm=None):
    old = [o for o in graph.output if o.name == old_name][0]
    graph.output.remove(old)
    graph.output.append(helper.make_tensor_value_info(new_name, TensorProto.FLOAT, dims))
    if perm is None:
        graph.node.append(helper.make_node('Identity', [old_name], [new_name]))
    else:
        graph.node.append(helper.make_node('Transpose', [old_name], [new_name], perm=perm))


def _save_with_quant_infos(model, path, sample_feeds):
    """Quant infos per stream like a HEF's: uint8 inputs pixels as-is, outputs from observed ranges."""
    import onnxruntime as ort
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    names = [o.name for o in session.get_outputs()]
    results = [session.run(names, feeds) for feeds in sample_feeds]
    infos = {i.name: [0.0, 1.0, 0.0, 255.0] for i in session.get_inputs() if len(i.shape) == 4}
    for i in session.get_inputs():
        if len(i.shape) != 4:  # state-like input in [-1, 1]
            infos[i.name] = [127.5, 1 / 127.5, -1.0, 1.0]
    for k, name in enumerate(names):
        values = np.concatenate([r[k].ravel() for r in results])
        # margin: frames beyond the calibration samples should not clip
        low, high = 1.5 * float(min(values.min(), 0.0)), 1.5 * float(max(values.max(), 0.0))
        scale = (high - low) / 255.0 or 1.0
        infos[name] = [round(-low / scale), scale, low, high]
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = 'fake_hef_quant_infos', json.dumps(infos)
    onnx.save(model, path)
    return path


def _samples(height, width, state_dim=None, count=4, seed=3):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        feeds = [rng.integers(0, 256, (1, height, width, 3)).astype(np.float32)]
        if state_dim:
            feeds.append(rng.uniform(-1, 1, (1, state_dim)).astype(np.float32))
        yield feeds


def make_backbone_hef(model, path, network='rover_backbone'):
    """A fake HEF of backbone.onnx: float NHWC pixels in, NHWC feature map out."""
    onnx_model = onnx.load(os.path.join(model.path, model.model_file('backbone')))
    graph = onnx_model.graph
    in_name, out_name = f'{network}/input_layer1', f'{network}/conv_out'
    _float_image_front(graph, model.image.name, in_name, model.image_height, model.image_width)
    _, channels, fh, fw = model.features.shape
    _replace_output(graph, model.features.name, out_name, [1, fh, fw, channels], perm=[0, 2, 3, 1])
    feeds = [{in_name: s[0]} for s in _samples(model.image_height, model.image_width)]
    return _save_with_quant_infos(onnx_model, path, feeds)


def make_whole_model_hef(model, path, network='rover_act'):
    """A fake HEF of the whole FP32 model: float pixels + state in, actions [chunk, A] out."""
    onnx_model = onnx.load(os.path.join(model.path, model.model_file('cpu_fp32')))
    graph = onnx_model.graph
    image_in, state_in, out = f'{network}/input_layer1', f'{network}/input_layer2', f'{network}/fc_out'
    _float_image_front(graph, model.image.name, image_in, model.image_height, model.image_width)
    _rename_input(graph, model.state.name, state_in)
    _replace_output(graph, model.actions.name, out, [1, model.chunk_size, model.action_dim])
    feeds = [{image_in: s[0], state_in: s[1]}
             for s in _samples(model.image_height, model.image_width, model.state_dim)]
    return _save_with_quant_infos(onnx_model, path, feeds)


def make_identity_hef(path, shape, network='other_net'):
    """A fake HEF unrelated to the model (for shape-mismatch tests): NHWC in -> same out."""
    graph = helper.make_graph(
        [helper.make_node('Identity', [f'{network}/input_layer1'], [f'{network}/output'])], network,
        [helper.make_tensor_value_info(f'{network}/input_layer1', TensorProto.FLOAT, [1, *shape])],
        [helper.make_tensor_value_info(f'{network}/output', TensorProto.FLOAT, [1, *shape])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    feeds = [{f'{network}/input_layer1': np.zeros((1, *shape), np.float32)}]
    return _save_with_quant_infos(model, path, feeds)


def add_hef_to_manifest(model_dir, hef_name):
    """Register a HEF in the manifest (models.hef + sha256), as a user adding one would."""
    from model_fixtures import read_manifest, sha256, write_manifest
    manifest = read_manifest(model_dir)
    manifest['models']['hef'] = hef_name
    manifest['files'][hef_name] = {'sha256': sha256(os.path.join(model_dir, hef_name))}
    write_manifest(model_dir, manifest)


def onnx_features_nhwc(model, image):
    """backbone.onnx's features for a prepared image, as the NHWC [h, w, C] a HEF returns."""
    import onnxruntime as ort
    session = ort.InferenceSession(os.path.join(model.path, model.model_file('backbone')),
                                   providers=['CPUExecutionProvider'])
    (features,) = session.run([model.features.name], {model.image.name: image})
    return features[0].transpose(1, 2, 0)


def run_fake_hef(path, feeds):
    """A fake HEF's outputs (float, batch dimension dropped) for per-stream arrays without the batch."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return [r[0] for r in session.run(None, {name: value[np.newaxis] for name, value in feeds.items()})]

"""A tiny model directory that follows rover_quantize/MODEL_DIR.md, for the policy tests.

This is the ONE place the tests get their model from. It is written through
the model-directory contract (rover_common.model_contract), the same module
rover_quantize writes with and rover_policy reads with, so the tests cannot
drift from either side. The model itself is a small conv backbone (uint8 NHWC RGB in, ImageNet
normalization inside the graph, NCHW features out) and an MLP head over the
flattened features and the state, exported with torch to backbone.onnx,
head.onnx and model_fp32.onnx, plus a static QDQ INT8 model from ONNX Runtime's
quantizer, and a manifest with the files' sha256.
"""
import json
import os

import numpy as np

from rover_common import model_contract as mc

TINY_HEIGHT = 48
TINY_WIDTH = 64
TINY_CHUNK = 20
STATE_DIM = 2
ACTION_DIM = 2


def sha256(path):
    return mc.sha256_of(path)


def _modules(height, width, chunk_size, seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 5, stride=4, padding=2)
            self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float() / 255.0
            x = (x - self.mean) / self.std
            return torch.relu(self.conv2(torch.relu(self.conv1(x))))

    backbone = Backbone().eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, height, width, 3, dtype=torch.uint8))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Linear(features.numel(), 32)
            self.state = nn.Linear(STATE_DIM, 32)
            self.out = nn.Linear(32, chunk_size * ACTION_DIM)

        def forward(self, features, state):
            hidden = torch.relu(self.features(features.flatten(1)) + self.state(state))
            return torch.tanh(self.out(hidden)).view(1, chunk_size, ACTION_DIM)

    class Whole(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = Head()

        def forward(self, image, state):
            return self.head(self.backbone(image), state)

    whole = Whole().eval()
    return whole, tuple(features.shape)


def _export(module, args, path, input_names, output_names):
    import torch
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                          opset_version=17, dynamo=False)


class _Frames:
    """Calibration data for ONNX Runtime's static quantizer."""

    def __init__(self, height, width, count=16, seed=1):
        rng = np.random.default_rng(seed)
        self._items = iter([
            {'image': rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8),
             'state': rng.uniform(-1, 1, (1, STATE_DIM)).astype(np.float32)}
            for _ in range(count)])

    def get_next(self):
        return next(self._items, None)


def build_tiny_model_dir(out_dir, seed=0, height=TINY_HEIGHT, width=TINY_WIDTH,
                         chunk_size=TINY_CHUNK, n_action_steps=None, control_rate_hz=30.0):
    """Write a complete model directory to `out_dir` and return its path."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    os.makedirs(out_dir, exist_ok=True)
    whole, features_shape = _modules(height, width, chunk_size, seed)
    image = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    state = torch.zeros(1, STATE_DIM)
    features = torch.zeros(features_shape)
    _export(whole.backbone, (image,), os.path.join(out_dir, 'backbone.onnx'), ['image'], ['features'])
    _export(whole.head, (features, state), os.path.join(out_dir, 'head.onnx'),
            ['features', 'state'], ['actions'])
    fp32 = os.path.join(out_dir, 'model_fp32.onnx')
    _export(whole, (image, state), fp32, ['image', 'state'], ['actions'])
    # reduce_range (7-bit weights): on x86 without VNNI, ORT's u8s8 kernels (AVX2 VPMADDUBSW)
    # saturate int16 pair sums, which put one output 0.057 off on such a machine
    quantize_static(fp32, os.path.join(out_dir, 'model_int8.onnx'), _Frames(height, width),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=['Conv', 'MatMul', 'Gemm'])
    models = {mc.CPU_FP32: mc.FP32_FILE, mc.CPU_INT8: mc.INT8_FILE,
              mc.BACKBONE: mc.BACKBONE_FILE, mc.HEAD: mc.HEAD_FILE}
    manifest = mc.new_manifest(
        created_by='rover_policy test fixture',
        files=mc.files_entry(out_dir, list(models.values())), models=models,
        inputs=[
            {'name': mc.IMAGE_INPUT, 'shape': [1, height, width, 3], 'dtype': 'uint8', 'layout': 'NHWC',
             'color': 'rgb', 'feature': 'observation.images.front'},
            {'name': mc.STATE_INPUT, 'shape': [1, STATE_DIM], 'dtype': 'float32', 'feature': 'observation.state'},
        ],
        outputs=[{'name': mc.ACTIONS_OUTPUT, 'shape': [1, chunk_size, ACTION_DIM], 'dtype': 'float32'}],
        features={'name': mc.FEATURES, 'shape': list(features_shape), 'dtype': 'float32'},
        chunk_size=chunk_size, n_action_steps=chunk_size if n_action_steps is None else n_action_steps,
        temporal_ensemble_coeff=None, action_names=list(mc.DEFAULT_NAMES), state_names=list(mc.DEFAULT_NAMES),
        control_rate_hz=control_rate_hz,
        checkpoint={'path': 'tiny-random', 'sha256': ''},
        quantization={'mode': 'static', 'calibration_method': 'MinMax', 'per_channel': True, 'reduce_range': True,
                      'op_types': ['Conv', 'MatMul', 'Gemm'], 'calibration_frames': 16, 'bags': []})
    mc.write_manifest(out_dir, manifest)
    return out_dir


def add_head_int8(model_dir, count=16, seed=1):
    """Add head_int8.onnx (static QDQ INT8 of head.onnx, calibrated on backbone.onnx's features, as
    `rover-quantize --hailo-head-int8` writes it) and name it in the manifest: models.head_int8 + sha256."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    manifest = read_manifest(model_dir)
    height, width = manifest['inputs'][0]['shape'][1:3]
    backbone = ort.InferenceSession(os.path.join(model_dir, mc.BACKBONE_FILE), providers=['CPUExecutionProvider'])
    frames = _Frames(height, width, count, seed)
    feeds = []
    while (item := frames.get_next()) is not None:
        (features,) = backbone.run([mc.FEATURES], {mc.IMAGE_INPUT: item['image']})
        feeds.append({mc.FEATURES: features, mc.STATE_INPUT: item['state']})

    class Reader:
        def __init__(self):
            self._items = iter(feeds)

        def get_next(self):
            return next(self._items, None)

    # reduce_range: as for model_int8.onnx (no int16 saturation on x86 without VNNI)
    quantize_static(os.path.join(model_dir, mc.HEAD_FILE), os.path.join(model_dir, mc.HEAD_INT8_FILE), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=['MatMul', 'Gemm'])
    manifest['models'][mc.HEAD_INT8] = mc.HEAD_INT8_FILE
    manifest['files'].update(mc.files_entry(model_dir, [mc.HEAD_INT8_FILE]))
    write_manifest(model_dir, manifest)
    return model_dir


def write_manifest(model_dir, manifest):
    """Tests edit manifests on purpose (also into invalid ones): written as given."""
    with open(os.path.join(model_dir, mc.MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=2)


def read_manifest(model_dir):
    with open(os.path.join(model_dir, mc.MANIFEST)) as f:
        return json.load(f)


def copy_model_dir(src, dst):
    """A writable copy for tests that break something."""
    import shutil
    shutil.copytree(src, dst)
    return dst


def reference_actions(model_dir, image, state, key='model_fp32.onnx'):
    """Actions [chunk, A] of one ONNX file of the directory for a prepared image/state."""
    import onnxruntime as ort
    session = ort.InferenceSession(os.path.join(model_dir, key), providers=['CPUExecutionProvider'])
    return session.run(['actions'], {'image': image, 'state': state})[0][0]

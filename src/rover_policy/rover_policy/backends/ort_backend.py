"""ONNX Runtime on the CPU: the INT8 model (cpu_int8) or the FP32 reference (cpu_fp32)."""
import os

import numpy as np

from rover_policy.backends.base import Backend, BackendError

_ORT_TYPES = {'tensor(uint8)': 'uint8', 'tensor(float)': 'float32'}


def make_session(path: str, threads: int):
    """An ORT CPU session with `threads` intra-op threads and full graph optimization."""
    import onnxruntime as ort

    from rover_common.ort_options import node_session_options
    options = node_session_options(threads)
    try:
        return ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise BackendError(f'ONNX Runtime cannot load {path}: {exc}') from exc


def check_io(session, path: str, expected_inputs: dict, expected_outputs: dict) -> None:
    """Refuse a session whose tensors differ from what the manifest promises.

    `expected_*` map tensor name -> (shape tuple, dtype string).
    """
    def compare(kind, actual_list, expected):
        actual = {t.name: t for t in actual_list}
        for name, (shape, dtype) in expected.items():
            if name not in actual:
                raise BackendError(
                    f'{path}: the manifest expects {kind} "{name}", the model has '
                    f'{", ".join(actual) or "none"}')
            tensor = actual[name]
            static = tuple(d if isinstance(d, int) else -1 for d in tensor.shape)
            if any(a != -1 and a != b for a, b in zip(static, shape)) or len(static) != len(shape):
                raise BackendError(
                    f'{path}: {kind} "{name}" has shape {list(tensor.shape)}, the manifest says {list(shape)}')
            if _ORT_TYPES.get(tensor.type, tensor.type) != dtype:
                raise BackendError(
                    f'{path}: {kind} "{name}" has type {tensor.type}, the manifest says {dtype}')
    compare('input', session.get_inputs(), expected_inputs)
    compare('output', session.get_outputs(), expected_outputs)


class OrtBackend(Backend):
    """The whole model (image + state -> actions) in one ONNX Runtime session."""

    def __init__(self, model, key: str, threads: int = 4):
        self.name = key
        self.path = model.verified_model(key)
        self.threads = threads
        self._model = model
        self._session = make_session(self.path, threads)
        check_io(self._session, self.path,
                 {model.image.name: (model.image.shape, model.image.dtype),
                  model.state.name: (model.state.shape, model.state.dtype)},
                 {model.actions.name: (model.actions.shape, 'float32')})
        self._image_name = model.image.name
        self._state_name = model.state.name
        self._output_name = model.actions.name

    def infer(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        (actions,) = self._session.run(
            [self._output_name], {self._image_name: image, self._state_name: state})
        return np.asarray(actions[0], dtype=np.float32)

    def describe(self) -> dict:
        return {'backend': self.name, 'model_file': os.path.basename(self.path),
                'threads': self.threads, 'providers': ','.join(self._session.get_providers())}

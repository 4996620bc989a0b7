"""Hailo-8/8L through HailoRT's InferModel API (hailo_platform, HailoRT 4.20-4.23).

Call order (HailoRT's Python API): VDevice(params with the ROUND_ROBIN scheduler) ->
create_infer_model(hef) -> set the stream format types -> configure() ->
create_bindings() -> set_buffer() on every input and output before each
run([bindings], timeout_ms) -> get_buffer().

HailoRT checks nothing but C-contiguity and the byte size of a buffer (a same-size
array of another dtype or shape is silently reinterpreted, and a run that fails a
check shuts the configured model down for good), so every buffer is checked here
before it is handed over. Each run gets buffers of its own: a run that timed out
keeps going on the device and writes its output buffer whenever it completes.
Teardown is HailoRT's nesting of `with VDevice()` around `with infer_model.configure()`:
the configured model (whose destructor calls shutdown() on the device) and the infer
model (which holds a plain reference to the device) go before VDevice.release().

Two shapes of HEF are accepted and checked against the manifest at start:
- hybrid: one input (the image, NHWC [H, W, 3]) and one output, the backbone's
  feature map NHWC [h, w, C]; it is transposed to the manifest's NCHW `features`
  and `head.onnx` runs on the CPU with ONNX Runtime (what the Hailo-8L handles well:
  the ResNet on the NPU, the transformer on the CPU); `head='int8'` runs the manifest's
  head_int8.onnx instead (built with `rover-quantize build --hailo-head-int8`);
- whole model: two inputs (image [H, W, 3] and state with state_dim values) and
  one output holding chunk_size * action_dim values.
Inputs and outputs use FormatType.FLOAT32, so HailoRT quantizes and dequantizes
with the HEF's quant infos itself; pixels go in as float 0-255 (the HEF carries
the normalization, as compiled from backbone.onnx).
"""
import contextlib
import importlib
import os

import numpy as np

from rover_common.model_contract import HEAD, HEAD_INT8
from rover_policy.backends import HAILO_HEADS
from rover_policy.backends.base import Backend, BackendError
from rover_policy.backends.ort_backend import check_io, make_session

INSTALL_HINT = (
    'install HailoRT\'s Python package (hailo_platform) of exactly the version of the hailo_pci driver '
    '(`cat /sys/module/hailo_pci/version`), with numpy < 2: with Docker, use the rover-hailo image, '
    'which has it (docker/README.md, "Hailo variant"); on Ubuntu 24.04 without Docker, '
    '`pip3 install --break-system-packages --no-deps hailort-<driver version>-cp312-cp312-linux_aarch64.whl` '
    'from Hailo\'s Developer Zone, keeping apt\'s numpy; on Raspberry Pi OS (`sudo apt install hailo-all` '
    'for the driver) run the stack in the rover-hailo image')
DEVICE_HINT = (
    'check that the Hailo module is detected (`hailortcli scan`, `hailortcli fw-control identify`, '
    '`lsmod | grep hailo_pci`) and that no other process holds it')


def import_hailo_platform():
    """hailo_platform, imported only when the hailo backend is chosen."""
    try:
        import hailo_platform
    except Exception as exc:  # ImportError, or the wheel's own MissingPyHRTLib/version errors
        raise BackendError(
            f'backend "hailo" needs the hailo_platform module, which cannot be imported '
            f'({type(exc).__name__}: {exc}); {INSTALL_HINT}') from exc
    return hailo_platform


HEADS = dict(zip(HAILO_HEADS, (HEAD, HEAD_INT8)))  # the hybrid's CPU head -> the manifest's models key


class HailoBackend(Backend):
    name = 'hailo'

    def __init__(self, model, hef_path: str = '', threads: int = 4, timeout_ms: int = 1000, head: str = 'fp32'):
        self._model = model
        self.head = head
        self._head_key = self._resolve_head(model, head)  # before the device: a wrong choice fails fast
        self._stack = contextlib.ExitStack()  # VDevice, then the configured model: closed in reverse
        self._configured = None
        self._bindings = None
        self.timeout_ms = int(timeout_ms)
        self.hef_path, self.hef_verified = self._resolve_hef(model, hef_path)
        hp = import_hailo_platform()
        # HailoRTTimeout lives in the submodule only (the package does not export it)
        self._timeout_error = getattr(importlib.import_module('hailo_platform.pyhailort.pyhailort'),
                                      'HailoRTTimeout', ())
        try:
            # The scheduler runs the model without explicit activate(), as in Hailo's examples. Set it
            # whatever create_params() defaults to: without it every run fails (not activated).
            params = hp.VDevice.create_params()
            params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
            vdevice = self._stack.enter_context(hp.VDevice(params))
        except Exception as exc:
            raise BackendError(f'no Hailo device available ({exc}); {DEVICE_HINT}') from exc
        try:
            self._start(hp, vdevice, model, threads)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _resolve_head(model, head):
        if head not in HEADS:
            raise BackendError(f'unknown hailo head {head!r}; expected one of {", ".join(HEADS)}')
        if not (model.manifest.get('models') or {}).get(HEADS[head]):
            raise BackendError(
                f'hailo_head={head} needs models.{HEADS[head]} in {model.manifest_path}, which names none; '
                'rebuild the model directory with `rover-quantize build --hailo-head-int8` (or '
                '`rover-quantize quantize --hailo-head-int8`; its manifest notes say why when the INT8 head '
                'missed the accuracy bar), or set hailo_head to fp32')
        return HEADS[head]

    @staticmethod
    def _resolve_hef(model, hef_path):
        """(path, sha256 verified) of the HEF: the parameter, else the manifest's models.hef."""
        if not hef_path:
            if not (model.manifest.get('models') or {}).get('hef'):
                raise BackendError(
                    f'{model.manifest_path} names no HEF (models.hef); compile backbone.onnx with the '
                    'Hailo Dataflow Compiler, copy it into the model directory and add it to the '
                    'manifest (models.hef and its sha256 under files), or set the hef_path parameter')
            return model.verified_model('hef'), True
        path = os.path.abspath(hef_path)
        if not os.path.isfile(path):
            raise BackendError(f'HEF file not found: {path}')
        relative = model.relative_name(path)
        if relative is not None and model.has_sha256_for(path):
            return model.verified_path(relative), True
        return path, False  # a HEF outside the manifest: loaded as given, reported as unverified

    def _start(self, hp, vdevice, model, threads):
        try:
            infer_model = vdevice.create_infer_model(self.hef_path)
        except Exception as exc:
            raise BackendError(f'HailoRT cannot load the HEF {self.hef_path}: {exc}') from exc
        inputs = {s.name: tuple(int(d) for d in s.shape) for s in infer_model.inputs}
        outputs = {s.name: tuple(int(d) for d in s.shape) for s in infer_model.outputs}
        self.mode, self._image_input, self._state_input = self._match_shapes(model, inputs, outputs)
        self._output_name, self._output_shape = next(iter(outputs.items()))
        self._image_shape = inputs[self._image_input]
        self._state_shape = inputs.get(self._state_input)
        self.quant_infos = {}
        for stream in list(infer_model.inputs) + list(infer_model.outputs):
            stream.set_format_type(hp.FormatType.FLOAT32)
            # configure() freezes the formats and a later change is silently ignored: check it took
            if int(stream.format.type) != int(hp.FormatType.FLOAT32):
                raise BackendError(f'HailoRT did not take FLOAT32 for stream {stream.name} '
                                   f'(format type {stream.format.type})')
            infos = stream.quant_infos
            if infos:
                self.quant_infos[stream.name] = (float(infos[0].qp_scale), float(infos[0].qp_zp))
        self._head = None
        if self.mode == 'hybrid':
            head_path = model.verified_model(self._head_key)
            self._head = make_session(head_path, threads)
            check_io(self._head, head_path,
                     {model.features.name: (model.features.shape, 'float32'),
                      model.state.name: (model.state.shape, 'float32')},
                     {model.actions.name: (model.actions.shape, 'float32')})
        try:
            self._configured = self._stack.enter_context(infer_model.configure())
            self._bindings = self._configured.create_bindings()
        except Exception as exc:
            raise BackendError(f'HailoRT cannot configure the HEF {self.hef_path} on the device: {exc}; '
                               f'{DEVICE_HINT}') from exc

    @staticmethod
    def _match_shapes(model, inputs, outputs):
        """('hybrid' | 'whole', image input name, state input name or None) or a clear error."""
        height, width = model.image_height, model.image_width
        image_shape = (height, width, 3)
        chunk_values = model.chunk_size * model.action_dim
        expected = (f'expected one image input [{height}, {width}, 3] (NHWC) and either one output '
                    'with the backbone feature map')
        features_nhwc = None
        if model.features is not None:
            _, channels, fh, fw = model.features.shape
            features_nhwc = (fh, fw, channels)
            expected += f' {list(features_nhwc)} (NHWC; hybrid with head.onnx)'
        expected += (f', or a second input with {model.state_dim} state values and one output with '
                     f'{chunk_values} action values (whole model)')
        found = (f'HEF inputs {_fmt(inputs)}, outputs {_fmt(outputs)}')
        image_names = [n for n, s in inputs.items() if s == image_shape]
        if len(outputs) == 1 and len(image_names) == 1:
            (output_shape,) = outputs.values()
            if len(inputs) == 1 and features_nhwc is not None and output_shape == features_nhwc:
                return 'hybrid', image_names[0], None
            if len(inputs) == 2 and int(np.prod(output_shape)) == chunk_values:
                (state_name,) = [n for n in inputs if n != image_names[0]]
                if int(np.prod(inputs[state_name])) == model.state_dim:
                    return 'whole', image_names[0], state_name
        raise BackendError(f'the HEF does not match {model.manifest_path}: {found}; {expected}')

    def infer(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        if self._configured is None:
            raise BackendError('the hailo backend is closed')
        height, width, _ = self._image_shape
        image = _checked_array('image', image, (1, height, width, 3), (np.uint8, np.float32))
        state = _checked_array('state', state, (1, self._model.state_dim), (np.float32,))
        # fresh buffers each run: a timed-out run may still write its own later
        pixels = np.empty(self._image_shape, np.float32)
        np.copyto(pixels, image[0])  # uint8 0-255 -> float 0-255: the HEF normalizes
        self._hand_over(self._bindings.input(self._image_input), pixels, self._image_shape)
        if self._state_input is not None:
            state_buffer = state.reshape(self._state_shape).astype(np.float32)  # a copy, owned here
            self._hand_over(self._bindings.input(self._state_input), state_buffer, self._state_shape)
        output = np.empty(self._output_shape, np.float32)
        self._hand_over(self._bindings.output(self._output_name), output, self._output_shape)
        try:
            self._configured.run([self._bindings], self.timeout_ms)
        except self._timeout_error as exc:
            raise BackendError(f'the Hailo device did not finish an inference within timeout_ms='
                               f'{self.timeout_ms} ({exc}); {DEVICE_HINT}') from exc
        except Exception as exc:  # HailoRT shuts the configured model down after a failed run
            raise BackendError(f'Hailo inference failed ({type(exc).__name__}: {exc}); restart the '
                               f'policy node; {DEVICE_HINT}') from exc
        result = output
        if self.mode == 'whole':
            return np.array(result, dtype=np.float32).reshape(self._model.chunk_size, self._model.action_dim)
        features = np.ascontiguousarray(result.transpose(2, 0, 1)[np.newaxis])  # NHWC -> NCHW
        (actions,) = self._head.run([self._model.actions.name],
                                    {self._model.features.name: features, self._model.state.name: state})
        return np.asarray(actions[0], dtype=np.float32)

    def describe(self) -> dict:
        info = {'backend': self.name, 'hailo_mode': self.mode,
                'hef': os.path.basename(self.hef_path), 'hef_sha256_verified': self.hef_verified}
        if self.mode == 'hybrid':
            info['hailo_head'] = self.head
        return info

    def _hand_over(self, stream, array, shape):
        """set_buffer() after the checks HailoRT does not make (it reads raw bytes of any dtype/shape)."""
        if (array.dtype != np.float32 or tuple(array.shape) != tuple(shape)
                or not array.flags['C_CONTIGUOUS'] or not array.flags['WRITEABLE']):
            raise BackendError(f'internal error: buffer {array.dtype}{list(array.shape)} for a FLOAT32 '
                               f'stream of shape {list(shape)}')
        stream.set_buffer(array)

    def close(self) -> None:
        """Bindings, configured model, infer model, then VDevice.release(), as HailoRT's `with` nesting."""
        configured, self._configured, self._bindings = self._configured, None, None
        if configured is not None:
            try:
                configured.shutdown()  # aborts a run still in flight (a hung device) before the release
            except Exception:
                pass
            del configured
        self._stack.close()  # the configured model's __exit__ drops its C++ object, then release()


def _checked_array(what, array, shape, dtypes):
    """The caller's array as given, or a BackendError: a wrong shape must never be reinterpreted."""
    if not isinstance(array, np.ndarray) or tuple(array.shape) != shape or array.dtype not in dtypes:
        got = f'{array.dtype}{list(array.shape)}' if isinstance(array, np.ndarray) else type(array).__name__
        raise BackendError(f'hailo backend: {what} must be {"/".join(np.dtype(d).name for d in dtypes)} '
                           f'{list(shape)}, got {got}')
    return array


def _fmt(streams: dict) -> str:
    return '{' + ', '.join(f'{n}: {list(s)}' for n, s in streams.items()) + '}'

"""A stand-in for HailoRT's pyhailort that computes real numbers, for tests only.

It follows the surface of hailo-ai/hailort (branch hailo8)
hailort/libhailort/bindings/python/platform/hailo_platform/pyhailort/pyhailort.py:
VDevice (create_params, create_infer_model, release, one VDevice per device),
InferModel (input/output/inputs/outputs, InferStream.shape/format/set_format_type/
quant_infos), configure() -> ConfiguredInferModel (create_bindings,
run([bindings], timeout_ms), run_async, wait_for_async_ready, shutdown) and
Bindings.input/output(name).set_buffer/get_buffer.

Where the real library would silently misbehave, the fake fails loudly, so the
tests catch the mistake: format changes after configure(), a run with unset
buffers, buffers that are not C-contiguous or whose dtype/shape do not match the
stream's format type and shape.

A "HEF" here is an ONNX file whose graph inputs/outputs are the HEF's streams
with a leading batch dimension (stream shapes exclude it, as in HailoRT). The
model runs in ONNX Runtime. Streams are natively uint8 (quantized with the quant
infos in the ONNX metadata key `fake_hef_quant_infos`, {name: [zp, scale, min, max]});
FormatType.FLOAT32 makes the fake (like HailoRT) convert to and from float32.

FAKE_HAILO_NO_DEVICE=1 in the environment behaves like a machine without a Hailo
device (VDevice() raises HAILO_OUT_OF_PHYSICAL_DEVICES).
"""
import enum
import json
import os
from dataclasses import dataclass

import numpy as np

NO_DEVICE_ENV = 'FAKE_HAILO_NO_DEVICE'
_QUANT_METADATA_KEY = 'fake_hef_quant_infos'


class FormatType(enum.IntEnum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder(enum.IntEnum):
    AUTO = 0
    NHWC = 1
    NC = 4
    FCR = 5


class HailoSchedulingAlgorithm(enum.IntEnum):
    NONE = 0
    ROUND_ROBIN = 1


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTInvalidArgumentException(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTInvalidHEFException(HailoRTException):
    pass


class HailoRTNetworkGroupNotActivatedException(HailoRTException):
    pass


@dataclass
class QuantInfo:
    qp_zp: float
    qp_scale: float
    limvals_min: float
    limvals_max: float


@dataclass
class _Format:
    type: FormatType
    order: FormatOrder
    flags: int = 0


@dataclass
class _VStreamInfo:
    name: str
    shape: tuple
    format: _Format
    quant_info: QuantInfo


_DTYPES = {FormatType.AUTO: np.uint8, FormatType.UINT8: np.uint8,
           FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}
_live_vdevices = [0]


class HEF:
    """The fake HEF: an ONNX file, inspected with ONNX Runtime."""

    def __init__(self, hef_source):
        import onnxruntime as ort
        if not isinstance(hef_source, str):
            raise ValueError('the fake HEF supports file paths only')
        if not os.path.isfile(hef_source):
            raise HailoRTException('libhailort failed with error: 13 (HAILO_OPEN_FILE_FAILURE)')
        try:
            self._session = ort.InferenceSession(hef_source, providers=['CPUExecutionProvider'])
        except Exception as exc:
            raise HailoRTInvalidHEFException('Invalid HEF. See hailort.log for more information') from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        quant = json.loads(meta.get(_QUANT_METADATA_KEY, '{}'))
        self.path = hef_source

        def info(arg):
            zp, scale, low, high = quant.get(arg.name, [0.0, 1.0, 0.0, 255.0])
            order = FormatOrder.NHWC if len(arg.shape) == 4 else FormatOrder.NC
            return _VStreamInfo(arg.name, tuple(int(d) for d in arg.shape[1:]),
                                _Format(FormatType.UINT8, order), QuantInfo(zp, scale, low, high))
        self._inputs = [info(a) for a in self._session.get_inputs()]
        self._outputs = [info(a) for a in self._session.get_outputs()]

    def get_input_vstream_infos(self, network_name=None):
        return list(self._inputs)

    def get_output_vstream_infos(self, network_name=None):
        return list(self._outputs)

    def get_network_group_names(self):
        return [os.path.splitext(os.path.basename(self.path))[0]]


class _VDeviceParams:
    def __init__(self):
        self.scheduling_algorithm = HailoSchedulingAlgorithm.ROUND_ROBIN
        self.device_count = 1
        self.group_id = 'UNIQUE'


class VDevice:
    """One per physical device, like HailoRT without the multi-process service."""

    def __init__(self, params=None, *, device_ids=None):
        self._vdevice = None
        if os.environ.get(NO_DEVICE_ENV, '') not in ('', '0'):
            raise HailoRTException('libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)')
        if _live_vdevices[0] >= 1:
            raise HailoRTException('libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)')
        _live_vdevices[0] += 1
        self._params = params if params is not None else VDevice.create_params()
        self._vdevice = object()

    @staticmethod
    def create_params():
        return _VDeviceParams()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.release()
        return False

    def __del__(self):
        self.release()

    def release(self):
        if self._vdevice is not None:
            self._vdevice = None
            _live_vdevices[0] -= 1

    def get_physical_devices_ids(self):
        return ['0001:01:00.0']

    def create_infer_model(self, hef_source, network_name=''):
        if self._vdevice is None:
            raise HailoRTInvalidOperationException('VDevice was released')
        return InferModel(HEF(hef_source), hef_source, self)


class InferModel:
    class InferStream:
        def __init__(self, info, model):
            self._info = info
            self._model = model
            self._format_type = FormatType.AUTO
            self._format_order = info.format.order

        @property
        def name(self):
            return self._info.name

        @property
        def shape(self):
            return list(self._info.shape)

        @property
        def format(self):
            return _Format(self._format_type, self._format_order)

        def _check_not_configured(self, what):
            if self._model._configured:
                # HailoRT copies the formats at configure(); a later change would be ignored.
                raise HailoRTInvalidOperationException(f'{what} after configure() has no effect')

        def set_format_type(self, type):
            self._check_not_configured('set_format_type')
            self._format_type = FormatType(type)

        def set_format_order(self, order):
            self._check_not_configured('set_format_order')
            self._format_order = FormatOrder(order)

        @property
        def quant_infos(self):
            return [self._info.quant_info]

        @property
        def is_nms(self):
            return False

    def __init__(self, hef, hef_path, vdevice):
        self._hef = hef
        self._hef_path = hef_path
        self._vdevice = vdevice  # keeps the VDevice alive, as in HailoRT
        self._configured = False
        self._inputs = [self.InferStream(i, self) for i in hef.get_input_vstream_infos()]
        self._outputs = [self.InferStream(o, self) for o in hef.get_output_vstream_infos()]

    @property
    def hef(self):
        return self._hef

    def set_batch_size(self, batch_size):
        if batch_size != 1:
            raise HailoRTInvalidArgumentException('the fake supports batch size 1 only')

    @property
    def input_names(self):
        return [s.name for s in self._inputs]

    @property
    def output_names(self):
        return [s.name for s in self._outputs]

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @staticmethod
    def _pick(streams, name, kind):
        if name == '':
            if len(streams) != 1:
                raise HailoRTNotFoundException(f'{kind}() without a name but the model has {len(streams)} {kind}s')
            return streams[0]
        for stream in streams:
            if stream.name == name:
                return stream
        raise HailoRTNotFoundException(f'no {kind} named {name!r}')

    def input(self, name=''):
        return self._pick(self._inputs, name, 'input')

    def output(self, name=''):
        return self._pick(self._outputs, name, 'output')

    def configure(self):
        if self._vdevice._vdevice is None:
            raise HailoRTInvalidOperationException('VDevice was released')
        self._configured = True
        return ConfiguredInferModel(self)


class AsyncInferCompletionInfo:
    def __init__(self, exception):
        self._exception = exception

    @property
    def exception(self):
        return self._exception


class AsyncInferJob:
    def __init__(self, exception):
        self._exception = exception

    def wait(self, timeout_ms):
        if self._exception is not None:
            raise self._exception


class ConfiguredInferModel:
    class Bindings:
        class InferStream:
            def __init__(self, stream):
                self._stream = stream  # InferModel.InferStream, formats frozen by configure()
                self._buffer = None

            def set_buffer(self, buffer):
                stream = self._stream
                if not isinstance(buffer, np.ndarray):
                    raise HailoRTInvalidArgumentException(f'{stream.name}: buffer must be a numpy array')
                if not buffer.flags['C_CONTIGUOUS']:
                    # HailoRT reads the raw memory: a strided view would be read as garbage.
                    raise HailoRTInvalidArgumentException(f'{stream.name}: buffer is not C-contiguous')
                expected_dtype = np.dtype(_DTYPES[stream._format_type])
                if buffer.dtype != expected_dtype:
                    raise HailoRTInvalidArgumentException(
                        f'{stream.name}: buffer dtype {buffer.dtype} does not match format type '
                        f'{stream._format_type.name} ({expected_dtype})')
                if tuple(buffer.shape) != tuple(stream.shape):
                    raise HailoRTInvalidArgumentException(
                        f'{stream.name}: buffer shape {list(buffer.shape)} does not match the stream '
                        f'shape {stream.shape} (size mismatch)')
                self._buffer = buffer

            def get_buffer(self, tf_format=False):
                return self._buffer

        def __init__(self, configured):
            self._configured = configured
            model = configured._infer_model
            self._inputs = {s.name: self.InferStream(s) for s in model.inputs}
            self._outputs = {s.name: self.InferStream(s) for s in model.outputs}

        @staticmethod
        def _pick(streams, name, kind):
            if name == '':
                if len(streams) != 1:
                    raise HailoRTNotFoundException(f'{kind}() without a name but there are {len(streams)}')
                return next(iter(streams.values()))
            if name not in streams:
                raise HailoRTNotFoundException(f'no {kind} named {name!r}')
            return streams[name]

        def input(self, name=''):
            return self._pick(self._inputs, name, 'input')

        def output(self, name=''):
            return self._pick(self._outputs, name, 'output')

        def get(self):
            return self

    def __init__(self, infer_model):
        self._infer_model = infer_model
        self._alive = True
        params = infer_model._vdevice._params
        self._scheduled = params.scheduling_algorithm != HailoSchedulingAlgorithm.NONE
        self._active = False

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self._alive = False

    def _check_alive(self):
        if not self._alive or self._infer_model._vdevice._vdevice is None:
            raise HailoRTInvalidOperationException('the configured infer model was shut down')

    def create_bindings(self, input_buffers=None, output_buffers=None):
        self._check_alive()
        bindings = self.Bindings(self)
        for name, buffer in (input_buffers or {}).items():
            bindings.input(name).set_buffer(buffer)
        for name, buffer in (output_buffers or {}).items():
            bindings.output(name).set_buffer(buffer)
        return bindings

    def activate(self):
        if self._scheduled:
            raise HailoRTInvalidOperationException('activate is invalid while the scheduler is enabled')
        self._active = True

    def deactivate(self):
        if self._scheduled:
            raise HailoRTInvalidOperationException('deactivate is invalid while the scheduler is enabled')
        self._active = False

    def wait_for_async_ready(self, timeout_ms=1000, frames_count=1):
        self._check_alive()

    def get_async_queue_size(self):
        return 4

    def shutdown(self):
        self._alive = False

    def run(self, bindings, timeout):
        job = self.run_async(bindings)
        job.wait(timeout)

    def run_async(self, bindings, callback=None):
        self._check_alive()
        if not self._scheduled and not self._active:
            raise HailoRTNetworkGroupNotActivatedException('Network group is not activated')
        if not isinstance(bindings, (list, tuple)):
            raise TypeError('run/run_async take a list of bindings')
        error = None
        try:
            for binding in bindings:
                self._infer_one(binding)
        except HailoRTException as exc:
            error = exc
        if callback is not None:
            callback(completion_info=AsyncInferCompletionInfo(error))
        if error is not None and callback is None:
            raise error
        return AsyncInferJob(None if callback is not None else error)

    def _infer_one(self, binding):
        feeds = {}
        for name, stream in binding._inputs.items():
            if stream._buffer is None:
                raise HailoRTInvalidOperationException(f'input {name}: no buffer set before run')
            feeds[name] = _to_float(stream._buffer, stream._stream)[np.newaxis]
        for name, stream in binding._outputs.items():
            if stream._buffer is None:
                raise HailoRTInvalidOperationException(f'output {name}: no buffer set before run')
        session = self._infer_model._hef._session
        names = list(binding._outputs)
        results = session.run(names, feeds)
        for name, value in zip(names, results):
            stream = binding._outputs[name]
            np.copyto(stream._buffer, _from_float(value[0], stream._stream))


def _to_float(buffer, stream):
    if stream._format_type == FormatType.FLOAT32:
        return buffer.astype(np.float32)
    info = stream._info.quant_info
    return ((buffer.astype(np.float32) - info.qp_zp) * info.qp_scale).astype(np.float32)


def _from_float(values, stream):
    if stream._format_type == FormatType.FLOAT32:
        return values.astype(np.float32)
    info = stream._info.quant_info
    top = np.iinfo(_DTYPES[stream._format_type]).max
    quantized = np.clip(np.round(values / info.qp_scale + info.qp_zp), 0, top)
    return quantized.astype(_DTYPES[stream._format_type])


__all__ = ['AsyncInferCompletionInfo', 'AsyncInferJob', 'ConfiguredInferModel', 'FormatOrder', 'FormatType',
           'HEF', 'HailoRTException', 'HailoRTInvalidArgumentException', 'HailoRTInvalidHEFException',
           'HailoRTInvalidOperationException', 'HailoRTNetworkGroupNotActivatedException',
           'HailoRTNotFoundException', 'HailoRTTimeout',
           'HailoSchedulingAlgorithm', 'InferModel', 'NO_DEVICE_ENV', 'QuantInfo', 'VDevice']

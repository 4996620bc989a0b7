"""A stand-in for HailoRT's pyhailort that computes real numbers, for tests only.

THE FACTS THIS FAKE FOLLOWS -- recheck them against each new HailoRT release.
Source: hailo-ai/hailort, the HailoRT 4.x line for Hailo-8/8L. Versions read, by the commit
the copy was stored at:
  4.20.0 = 542ba8f3 and 4.21.0 = 0df636dc: bindings/python/platform/hailo_platform/pyhailort/pyhailort.py
  4.23.0 = a5b7365c (branch hailo8): the C++ files below and bindings/python/src/*.
  The 4.23.0 copy of pyhailort.py was not stored; the 4.20/4.21 copies agree on everything used here.
  Line numbers could not be taken from the stored copies (served as text without line numbers),
  so each fact names its file and function. Paths are under hailort/libhailort/.
  [P] = bindings/python/platform/hailo_platform/pyhailort/pyhailort.py (4.20, 4.21)
  [B] = bindings/python/src/          [I] = src/net_flow/pipeline/infer_model.cpp (4.23)

 1. VDevice.create_params() = _pyhailort.VDeviceParams.default() [P VDevice.create_params] =
    HailoRTDefaults::get_vdevice_params() [B pyhailort.cpp, VDeviceParams "default"; the stored copy
    read is of an unidentified 4.x version], which sets
    scheduling_algorithm = HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN, device_count = 1
    [src/hailort_defaults.cpp get_vdevice_params]. CAVEAT: that .cpp is stored only at 5.1.1
    (1adb3306); its 4.20-4.23 copy was not available, so the 4.x default is unverified.
    FAKE_HAILO_DEFAULT_SCHEDULING=NONE makes the fake's default NONE, to test code that must
    not depend on it. VDevice(device_ids=[...]) always gets NONE [B vdevice_api.hpp
    VDeviceWrapper::create_from_ids, 4.23]; device_ids in both params and the argument is
    HAILO_INVALID_OPERATION [VDeviceWrapper::create].
 2. Enum values [include/hailo/hailort.h, 4.21]: scheduling NONE=0 ROUND_ROBIN=1; format type
    AUTO=0 UINT8=1 UINT16=2 FLOAT32=3; format order AUTO=0 NHWC=1 NHCW=2 FCR=3 F8CR=4 NHW=5
    NC=6 BAYER_RGB=7 12_BIT_BAYER_RGB=8 HAILO_NMS=9 RGB888=10 NCHW=11 ... HAILO_NMS_BY_SCORE=23.
 3. Without the scheduler, a run before activate() fails with HAILO_NETWORK_GROUP_NOT_ACTIVATED
    -> HailoRTNetworkGroupNotActivatedException [P ExceptionWrapper.create_exception_from_status;
    where libhailort returns it was not found in the stored sources]. activate()/deactivate()
    are invalid while the scheduler is on [P ConfiguredInferModel.activate docstring].
 4. VDevice.create_infer_model(hef_source, name="") [P]; a non-empty name that is no network
    group of the HEF is HAILO_NOT_IMPLEMENTED [I InferModelBase::create].
 5. Lifetimes: the C++ InferModel keeps a plain `VDevice &` (non-owning) [I InferModelBase ctor];
    VDevice.release() destroys the C++ VDevice whatever still refers to it [B vdevice_api.hpp
    VDeviceWrapper::release: m_vdevice.reset()], whatever create_infer_model's docstring says about
    the VDevice living as long as the InferModel [P]; a configured model maps its buffer pools to the VDevice
    [I ConfiguredInferModelImpl::create] and its destructor calls shutdown() again
    [I ~ConfiguredInferModelImpl]; Python's ConfiguredInferModel.__exit__ drops the C++ object
    [P]; Hailo's tutorial nests `with VDevice(params)` around `with infer_model.configure()`
    [bindings/python/platform/hailo_tutorials/notebooks/HRT_0_Async_Inference_Tutorial.ipynb, 4.23].
    In HailoRT a use after release is undefined behaviour; the fake raises instead and records it
    (violations()), and records a release() while a configured model still holds its C++ object.
 6. An InferStream's format starts as the HEF's vstream format [src/net_flow/pipeline/
    infer_model_internal.hpp InferModel::InferStream::Impl ctor]; set_format_type() only stores
    the value [I InferStream::Impl::set_format_type]; configure() copies the formats and frame
    sizes [I InferModelBase::configure], so a later set_format_type() is silently ignored by the
    configured model (it still shows in InferStream.format).
 7. Bindings.InferStream.set_buffer() checks C-contiguity only: HailoRTException("Buffer must be
    C_CONTIGUOUS") [P Bindings.InferStream._validate_c_contiguous]; C++ takes
    buffer.mutable_data()/nbytes [B infer_model_api.cpp ...BindingsInferStreamWrapper::set_buffer]
    (a read-only array is a ValueError from pybind11, not from HailoRT code) and stores the view
    unchecked [I Bindings::InferStream::Impl::set_buffer]. No dtype or shape check, ever.
 8. At run the byte size is checked against the frame size (shape x format type size):
    HAILO_INVALID_OPERATION -> HailoRTInvalidOperationException; an unset buffer is HAILO_NOT_FOUND
    -> HailoRTNotFoundException [I ConfiguredInferModelImpl::validate_bindings]. Same-size bytes
    of another dtype are read as the configured format type.
 9. A failed run_async shuts the configured model down [I ConfiguredInferModel::run_async calls
    shutdown() on error; Python's run goes through it, B infer_model_api.cpp
    ConfiguredInferModelWrapper::run_async]. What a later run returns was not found in the stored
    sources; the fake raises HailoRTStreamAborted.
10. run(bindings, timeout) = run_async(bindings) then job.wait(timeout) [P ConfiguredInferModel.run];
    the wait raises HailoRTTimeout if the job has not completed [P AsyncInferJob.wait,
    I AsyncInferJobImpl::wait]; the job goes on and writes its output buffers when it completes;
    Python keeps the buffers alive until then [P ConfiguredInferModel.run_async _buffer_guards].
    shutdown() aborts the runner and waits for transfers in flight [I ConfiguredInferModelImpl::
    shutdown]. (The real wait may take up to 2 x timeout [B infer_model_api.cpp
    AsyncInferJobWrapper::wait]; the fake waits once.)
11. The wheel needs numpy < 2 [bindings/python/platform/setup.py install_requires: "numpy<2" at
    4.21; numpy==1.23.3 at 4.18; 5.1.1: "numpy<2" below Python 3.13].
Not checked against the sources (kept from earlier versions of this fake): one VDevice per
physical device (HAILO_OUT_OF_PHYSICAL_DEVICES, no multi-process service) and the error numbers.

Fake-only strictness (HailoRT misbehaves silently or undefinedly there): use after release
(item 5), and an output buffer handed to a new run while an earlier job that writes it is still
in flight (a data race in HailoRT). Both raise and are recorded in violations().

A "HEF" here is an ONNX file whose graph inputs/outputs are the HEF's streams with a leading
batch dimension (stream shapes exclude it, as in HailoRT). The model runs in ONNX Runtime.
Streams are natively uint8 (quantized with the quant infos in the ONNX metadata key
`fake_hef_quant_infos`, {name: [zp, scale, min, max]}); FormatType.FLOAT32 makes the fake (like
HailoRT) convert to and from float32.

Environment: FAKE_HAILO_NO_DEVICE=1 behaves like a machine without a Hailo device;
FAKE_HAILO_LATENCY_MS=<ms> makes every job complete that long after it is queued ('inf': a hung
device, whose jobs complete only when shutdown() aborts them);
FAKE_HAILO_DEFAULT_SCHEDULING=NONE|ROUND_ROBIN (item 1).
"""
import enum
import gc
import json
import math
import os
import threading
import weakref
from collections import deque
from dataclasses import dataclass

import numpy as np

NO_DEVICE_ENV = 'FAKE_HAILO_NO_DEVICE'
LATENCY_ENV = 'FAKE_HAILO_LATENCY_MS'
DEFAULT_SCHEDULING_ENV = 'FAKE_HAILO_DEFAULT_SCHEDULING'
_QUANT_METADATA_KEY = 'fake_hef_quant_infos'
_DEVICE_IDS = ['0001:01:00.0']


class FormatType(enum.IntEnum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder(enum.IntEnum):
    AUTO = 0
    NHWC = 1
    NHCW = 2
    FCR = 3
    F8CR = 4
    NHW = 5
    NC = 6
    BAYER_RGB = 7
    NCHW = 11
    HAILO_NMS_WITH_BYTE_MASK = 20
    HAILO_NMS_BY_CLASS = 22
    HAILO_NMS_BY_SCORE = 23


class HailoSchedulingAlgorithm(enum.IntEnum):
    NONE = 0
    ROUND_ROBIN = 1


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTStreamAborted(HailoRTException):
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


# The messages pyhailort's ExceptionWrapper.create_exception_from_status gives each status.
_TIMEOUT = 'Received a timeout - hailort has failed because a timeout had occurred'
_INVALID_OPERATION = 'Invalid operation. See hailort.log for more information'
_NOT_FOUND = 'Item not found. See hailort.log for more information'
_ABORTED = 'Stream was aborted'

_violations = []


def violations():
    """What the fake caught that HailoRT would have let through (use after release, races)."""
    return list(_violations)


def clear_violations():
    _violations.clear()


def _violation(message):
    _violations.append(message)
    return HailoRTException(f'fake hailo_platform: {message}')


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


_DTYPES = {FormatType.UINT8: np.uint8, FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}


def _dtype(format_type, native):
    return np.dtype(_DTYPES[native if format_type == FormatType.AUTO else format_type])


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
        self._path = hef_source

        def info(arg):
            zp, scale, low, high = quant.get(arg.name, [0.0, 1.0, 0.0, 255.0])
            order = FormatOrder.NHWC if len(arg.shape) == 4 else FormatOrder.NC
            return _VStreamInfo(arg.name, tuple(int(d) for d in arg.shape[1:]),
                                _Format(FormatType.UINT8, order), QuantInfo(zp, scale, low, high))
        self._inputs = [info(a) for a in self._session.get_inputs()]
        self._outputs = [info(a) for a in self._session.get_outputs()]

    @property
    def path(self):
        return self._path

    def get_input_vstream_infos(self, name=None):
        return list(self._inputs)

    def get_output_vstream_infos(self, name=None):
        return list(self._outputs)

    def get_network_group_names(self):
        return [os.path.splitext(os.path.basename(self._path))[0]]


class _VDeviceParams:
    def __init__(self):
        default = os.environ.get(DEFAULT_SCHEDULING_ENV, '') or 'ROUND_ROBIN'
        self.scheduling_algorithm = HailoSchedulingAlgorithm[default]
        self.device_count = 1
        self.device_ids = []
        self.group_id = 'UNIQUE'
        self.multi_process_service = False


_live_vdevices = [0]


class _NativeVDevice:
    """The C++ VDevice: what the InferModels and configured models point at."""

    def __init__(self, scheduling):
        self.scheduling = HailoSchedulingAlgorithm(scheduling)
        self.released = False
        self.configured = weakref.WeakSet()  # _NativeConfigured objects mapped to this device

    def check_alive(self, what):
        if self.released:
            raise _violation(f'{what} after VDevice.release() (use after release: undefined behaviour in HailoRT)')

    def release(self):
        if self.released:
            return
        self.released = True
        _live_vdevices[0] -= 1
        for native in list(self.configured):
            if native.alive:
                native.orphaned = True
                _violation('VDevice.release() while a ConfiguredInferModel still holds its C++ object: its '
                           'destructor runs shutdown() on the released device (drop it first: `with '
                           'infer_model.configure()` inside `with VDevice()`)')

    def create_infer_model_from_file(self, hef_path, name):
        self.check_alive('create_infer_model')
        hef = HEF(hef_path)
        if name and name not in hef.get_network_group_names():
            raise HailoRTException('libhailort failed with error: (HAILO_NOT_IMPLEMENTED)')
        return _NativeInferModel(hef, self)


class VDevice:
    """One per physical device, like HailoRT without the multi-process service."""

    def __init__(self, params=None, *, device_ids=None):
        gc.collect()  # as pyhailort does: a VDevice nobody holds any more is released first
        self._vdevice = None
        if params is not None and device_ids and getattr(params, 'device_ids', None):
            raise HailoRTInvalidOperationException(_INVALID_OPERATION)
        self._params = params if params is not None else VDevice.create_params()
        if device_ids:  # create_from_ids: the scheduler is off whatever the params say
            if any(d not in _DEVICE_IDS for d in device_ids):
                raise HailoRTNotFoundException(_NOT_FOUND)
            scheduling = HailoSchedulingAlgorithm.NONE
        else:
            scheduling = self._params.scheduling_algorithm
        if os.environ.get(NO_DEVICE_ENV, '') not in ('', '0') or _live_vdevices[0] >= 1:
            raise HailoRTException('libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)')
        _live_vdevices[0] += 1
        self._vdevice = _NativeVDevice(scheduling)

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
            self._vdevice.release()
            self._vdevice = None

    def get_physical_devices_ids(self):
        return list(_DEVICE_IDS)

    def create_infer_model(self, hef_source, name=''):
        return InferModel(self._vdevice.create_infer_model_from_file(hef_source, name), hef_source)


class _StreamConfig:
    """InferModel::InferStream::Impl: the vstream info and the user's format (shared by copies)."""

    def __init__(self, info):
        self.info = info
        self.format_type = info.format.type
        self.format_order = info.format.order

    def dtype(self):
        return _dtype(self.format_type, self.info.format.type)

    def frame_size(self):
        return int(np.prod(self.info.shape)) * self.dtype().itemsize


class _NativeInferModel:
    def __init__(self, hef, device):
        self.hef = hef
        self.device = device  # HailoRT keeps a plain reference: it does not keep the device alive
        self.inputs = [_StreamConfig(i) for i in hef.get_input_vstream_infos()]
        self.outputs = [_StreamConfig(o) for o in hef.get_output_vstream_infos()]

    def configure(self):
        self.device.check_alive('InferModel.configure')
        native = _NativeConfigured(self)
        self.device.configured.add(native)
        return native


class InferModel:
    class InferStream:
        def __init__(self, config):
            self._config = config

        @property
        def name(self):
            return self._config.info.name

        @property
        def shape(self):
            return list(self._config.info.shape)

        @property
        def format(self):
            return _Format(self._config.format_type, self._config.format_order)

        def set_format_type(self, type):
            # after configure() this changes what .format shows, not the configured model (fact 6)
            self._config.format_type = FormatType(type)

        def set_format_order(self, order):
            self._config.format_order = FormatOrder(order)

        @property
        def quant_infos(self):
            return [self._config.info.quant_info]

        @property
        def is_nms(self):
            return False

    def __init__(self, infer_model, hef_path):
        self._infer_model = infer_model
        self._hef_path = hef_path
        self._hef = None

    @property
    def hef(self):
        if not self._hef:
            self._hef = HEF(self._hef_path)
        return self._hef

    def set_batch_size(self, batch_size):
        if batch_size != 1:
            raise HailoRTInvalidArgumentException('the fake supports batch size 1 only')

    @property
    def input_names(self):
        return [s.info.name for s in self._infer_model.inputs]

    @property
    def output_names(self):
        return [s.info.name for s in self._infer_model.outputs]

    @property
    def inputs(self):
        return [self.InferStream(c) for c in self._infer_model.inputs]

    @property
    def outputs(self):
        return [self.InferStream(c) for c in self._infer_model.outputs]

    def _pick(self, configs, name, kind):
        if name == '':
            if len(configs) != 1:  # InferModelBase::input(): HAILO_INVALID_OPERATION
                raise HailoRTInvalidOperationException(_INVALID_OPERATION)
            return self.InferStream(configs[0])
        for config in configs:
            if config.info.name == name:
                return self.InferStream(config)
        raise HailoRTNotFoundException(_NOT_FOUND)

    def input(self, name=''):
        return self._pick(self._infer_model.inputs, name, 'input')

    def output(self, name=''):
        return self._pick(self._infer_model.outputs, name, 'output')

    def configure(self):
        return ConfiguredInferModel(self._infer_model.configure(), self)


class AsyncInferCompletionInfo:
    def __init__(self, exception):
        self._exception = exception

    @property
    def exception(self):
        return self._exception


class _NativeJob:
    def __init__(self, callback):
        self.done = threading.Event()
        self.callback = callback
        self.timer = None
        self.outputs = []  # (raw byte view of the user's buffer, bytes to write there)


class AsyncInferJob:
    def __init__(self, job):
        self._job = job

    def wait(self, timeout_ms):
        if not self._job.done.wait(max(float(timeout_ms), 0.0) / 1000.0):
            raise HailoRTTimeout(_TIMEOUT)


def _latency_s():
    value = os.environ.get(LATENCY_ENV, '').strip().lower()
    if value in ('', '0'):
        return 0.0
    return math.inf if value in ('inf', 'hang') else float(value) / 1000.0


class _NativeBindings:
    """ConfiguredInferModel::Bindings: a raw memory view per edge, nothing else (fact 7)."""

    def __init__(self, input_names, output_names):
        self.inputs = dict.fromkeys(input_names)
        self.outputs = dict.fromkeys(output_names)

    def input(self, name):
        return _NativeBindingStream(self.inputs, self._name(self.inputs, name))

    def output(self, name):
        return _NativeBindingStream(self.outputs, self._name(self.outputs, name))

    @staticmethod
    def _name(streams, name):
        if name == '':
            if len(streams) != 1:
                raise HailoRTInvalidOperationException(_INVALID_OPERATION)
            return next(iter(streams))
        if name not in streams:
            raise HailoRTNotFoundException(_NOT_FOUND)
        return name


class _NativeBindingStream:
    def __init__(self, streams, name):
        self._streams = streams
        self._name = name

    def set_buffer(self, buffer):
        buffer = np.asarray(buffer)
        if not buffer.flags['WRITEABLE']:  # pybind11's py::array::mutable_data()
            raise ValueError('array is not writeable')
        self._streams[self._name] = buffer.reshape(-1).view(np.uint8)  # only the bytes, as C++ sees them


class _NativeConfigured:
    """ConfiguredInferModelImpl: formats frozen at configure(), the device it is mapped to."""

    def __init__(self, infer_model):
        self.device = infer_model.device
        self.session = infer_model.hef._session
        # configure() copies the formats: later set_format_type() calls do not reach here (fact 6)
        self.inputs = {c.info.name: (c.info, c.dtype()) for c in infer_model.inputs}
        self.outputs = {c.info.name: (c.info, c.dtype()) for c in infer_model.outputs}
        self.scheduled = self.device.scheduling != HailoSchedulingAlgorithm.NONE
        self.active = False
        self.aborted = False
        self.alive = True       # the C++ object exists (until the Python side drops it)
        self.orphaned = False   # its device was released under it (recorded once)
        self.pending = []
        self.lock = threading.Lock()

    def check_alive(self, what):
        self.device.check_alive(what)
        if self.aborted:
            raise HailoRTStreamAborted(_ABORTED)

    def create_bindings(self):
        self.device.check_alive('ConfiguredInferModel.create_bindings')
        return _NativeBindings(list(self.inputs), list(self.outputs))

    def activate(self):
        self.device.check_alive('ConfiguredInferModel.activate')
        if self.scheduled:
            raise HailoRTInvalidOperationException(_INVALID_OPERATION)
        self.active = True

    def deactivate(self):
        self.device.check_alive('ConfiguredInferModel.deactivate')
        if self.scheduled:
            raise HailoRTInvalidOperationException(_INVALID_OPERATION)
        self.active = False

    def wait_for_async_ready(self, timeout_ms, frames_count):
        self.check_alive('ConfiguredInferModel.wait_for_async_ready')

    def get_async_queue_size(self):
        return 4

    def _validate(self, binding):
        """ConfiguredInferModelImpl::validate_bindings: presence and byte size, not dtype or shape."""
        for streams, specs in ((binding.inputs, self.inputs), (binding.outputs, self.outputs)):
            for name, (info, dtype) in specs.items():
                raw = streams.get(name)
                if raw is None:
                    raise HailoRTNotFoundException(_NOT_FOUND)
                if raw.size != int(np.prod(info.shape)) * dtype.itemsize:
                    raise HailoRTInvalidOperationException(_INVALID_OPERATION)

    def run_async(self, bindings, callback):
        self.check_alive('ConfiguredInferModel.run_async')
        if not self.scheduled and not self.active:
            raise HailoRTNetworkGroupNotActivatedException('Network group is not activated')
        try:
            for binding in bindings:
                self._validate(binding)
        except HailoRTException:
            self.shutdown()  # ConfiguredInferModel::run_async shuts the model down on any error (fact 9)
            raise
        with self.lock:
            busy = [raw for job in self.pending for raw, _ in job.outputs]
        if any(np.shares_memory(raw, other) for b in bindings for raw in b.outputs.values() for other in busy):
            raise _violation('an output buffer is still being written by an earlier job that has not completed '
                             '(a data race in HailoRT): give each run its own output buffers after a timeout')
        job = _NativeJob(callback)
        for binding in bindings:
            feeds = {name: self._read(binding.inputs[name], info, dtype)[np.newaxis]
                     for name, (info, dtype) in self.inputs.items()}
            names = list(self.outputs)
            for name, value in zip(names, self.session.run(names, feeds)):
                info, dtype = self.outputs[name]
                job.outputs.append((binding.outputs[name], _from_float(value[0], info, dtype).tobytes()))
        delay = _latency_s()
        if delay == 0:
            self._complete(job, callback, 0)
        else:
            with self.lock:
                self.pending.append(job)
            if math.isfinite(delay):
                job.timer = threading.Timer(delay, self._complete, (job, callback, 0))
                job.timer.daemon = True
                job.timer.start()
        return job

    @staticmethod
    def _read(raw, info, dtype):
        values = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(info.shape)  # the bytes as the format type
        if dtype == np.float32:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - info.quant_info.qp_zp) * info.quant_info.qp_scale).astype(np.float32)

    def _complete(self, job, callback, status):
        with self.lock:
            if job.done.is_set():
                return
            if job in self.pending:
                self.pending.remove(job)
            if status == 0:
                for raw, data in job.outputs:  # written late if the caller stopped waiting
                    raw[:] = np.frombuffer(data, dtype=np.uint8)
            job.done.set()
        callback(status)

    def shutdown(self):
        """ConfiguredInferModelImpl::shutdown: abort the runner, end the jobs in flight."""
        self.aborted = True
        with self.lock:
            pending = list(self.pending)
        for job in pending:
            if job.timer is not None:
                job.timer.cancel()
            self._complete(job, job.callback, 'HAILO_STREAM_ABORT')
        self.active = False

    def destroy(self):
        """~ConfiguredInferModelImpl() calls shutdown(): on a released device, a use after release."""
        if not self.alive:
            return
        self.alive = False
        if self.device.released:
            if not self.orphaned:  # release() already recorded the orphans
                _violation('a ConfiguredInferModel was destroyed after VDevice.release()')
            return
        self.shutdown()

    def __del__(self):
        try:
            self.destroy()
        except Exception:
            pass


class ConfiguredInferModel:
    class Bindings:
        class InferStream:
            def __init__(self, infer_stream):
                self._infer_stream = infer_stream
                self._buffer = None

            def set_buffer(self, buffer):
                if not buffer.flags.c_contiguous:  # pyhailort's _validate_c_contiguous: the only check
                    raise HailoRTException('Buffer must be C_CONTIGUOUS')
                self._infer_stream.set_buffer(buffer)
                self._buffer = buffer

            def get_buffer(self, tf_format=False):
                return self._buffer

        def __init__(self, bindings, input_names, output_names):
            self._bindings = bindings
            self._inputs = {}
            self._outputs = {}
            self._input_names = input_names
            self._output_names = output_names

        def input(self, name=''):
            if name == '' and len(self._input_names) == 1:
                name = self._input_names[0]
            if name not in self._inputs:
                self._inputs[name] = self.InferStream(self._bindings.input(name))
            return self._inputs[name]

        def output(self, name=''):
            if name == '' and len(self._output_names) == 1:
                name = self._output_names[0]
            if name not in self._outputs:
                self._outputs[name] = self.InferStream(self._bindings.output(name))
            return self._outputs[name]

        def get(self):
            return self._bindings

    def __init__(self, configured_infer_model, infer_model):
        self._configured_infer_model = configured_infer_model
        self._input_names = infer_model.input_names
        self._output_names = infer_model.output_names
        self._infer_model = infer_model
        self._buffer_guards = deque()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        native, self._configured_infer_model = self._configured_infer_model, None
        if native is not None:
            native.destroy()  # pyhailort drops its only reference to the C++ object (fact 5)

    def activate(self):
        self._configured_infer_model.activate()

    def deactivate(self):
        self._configured_infer_model.deactivate()

    def create_bindings(self, input_buffers=None, output_buffers=None):
        bindings = self.Bindings(self._configured_infer_model.create_bindings(), self._input_names,
                                 self._output_names)
        for name, buffer in (input_buffers or {}).items():
            bindings.input(name).set_buffer(buffer)
        for name, buffer in (output_buffers or {}).items():
            bindings.output(name).set_buffer(buffer)
        return bindings

    def wait_for_async_ready(self, timeout_ms=1000, frames_count=1):
        self._configured_infer_model.wait_for_async_ready(timeout_ms, frames_count)

    def run(self, bindings, timeout):
        job = self.run_async(bindings)
        job.wait(timeout)

    def run_async(self, bindings, callback=None):
        buffers = []  # pyhailort keeps the buffers alive until the job's callback
        for b in bindings:
            buffers.extend(b.input(name).get_buffer() for name in self._input_names)
            buffers.extend(b.output(name).get_buffer(None) for name in self._output_names)
        self._buffer_guards.append(buffers)

        def callback_wrapper(error_code):
            if callback is not None:
                error = HailoRTStreamAborted(_ABORTED) if error_code else None
                callback(completion_info=AsyncInferCompletionInfo(error))
            self._buffer_guards.popleft()

        try:
            job = self._configured_infer_model.run_async([b.get() for b in bindings], callback_wrapper)
        except BaseException:
            self._buffer_guards.pop()
            raise
        return AsyncInferJob(job)

    def get_async_queue_size(self):
        return self._configured_infer_model.get_async_queue_size()

    def shutdown(self):
        return self._configured_infer_model.shutdown()


def _from_float(values, info, dtype):
    if dtype == np.float32:
        return values.astype(np.float32)
    top = np.iinfo(dtype).max
    quantized = np.clip(np.round(values / info.quant_info.qp_scale + info.quant_info.qp_zp), 0, top)
    return quantized.astype(dtype)


__all__ = ['AsyncInferCompletionInfo', 'AsyncInferJob', 'ConfiguredInferModel', 'DEFAULT_SCHEDULING_ENV',
           'FormatOrder', 'FormatType', 'HEF', 'HailoRTException', 'HailoRTInvalidArgumentException',
           'HailoRTInvalidHEFException', 'HailoRTInvalidOperationException',
           'HailoRTNetworkGroupNotActivatedException', 'HailoRTNotFoundException', 'HailoRTStreamAborted',
           'HailoRTTimeout', 'HailoSchedulingAlgorithm', 'InferModel', 'LATENCY_ENV', 'NO_DEVICE_ENV',
           'QuantInfo', 'VDevice', 'clear_violations', 'violations']

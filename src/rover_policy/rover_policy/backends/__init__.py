"""Inference backends: ONNX Runtime on the CPU (INT8 or FP32) and HailoRT on the NPU."""
from rover_common.model_contract import CPU_FP32, CPU_INT8
from rover_policy.backends.base import Backend, BackendError

HAILO = 'hailo'
BACKENDS = (CPU_INT8, CPU_FP32, HAILO)   # the CPU ones are the manifest's models keys


HAILO_HEADS = ('fp32', 'int8')           # the hailo hybrid's CPU head: head.onnx or head_int8.onnx


def create_backend(model, backend: str, threads: int = 4, hef_path: str = '', hailo_head: str = 'fp32') -> Backend:
    """The backend named `backend` for a loaded ModelDir; files are sha256-checked on load.
    `hailo_head` is the hailo backend's only (the CPU backends run one whole graph)."""
    if backend in (CPU_INT8, CPU_FP32):
        from rover_policy.backends.ort_backend import OrtBackend
        return OrtBackend(model, backend, threads)
    if backend == HAILO:
        from rover_policy.backends.hailo_backend import HailoBackend
        return HailoBackend(model, hef_path=hef_path, threads=threads, head=hailo_head)
    raise BackendError(f'unknown backend {backend!r}; expected one of {", ".join(BACKENDS)}')


__all__ = ['BACKENDS', 'HAILO_HEADS', 'Backend', 'BackendError', 'create_backend']

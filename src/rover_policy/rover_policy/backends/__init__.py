"""Inference backends: ONNX Runtime on the CPU (INT8 or FP32) and HailoRT on the NPU."""
from rover_common.model_contract import CPU_FP32, CPU_INT8
from rover_policy.backends.base import Backend, BackendError

HAILO = 'hailo'
BACKENDS = (CPU_INT8, CPU_FP32, HAILO)   # the CPU ones are the manifest's models keys


def create_backend(model, backend: str, threads: int = 4, hef_path: str = '') -> Backend:
    """The backend named `backend` for a loaded ModelDir; files are sha256-checked on load."""
    if backend in (CPU_INT8, CPU_FP32):
        from rover_policy.backends.ort_backend import OrtBackend
        return OrtBackend(model, backend, threads)
    if backend == HAILO:
        from rover_policy.backends.hailo_backend import HailoBackend
        return HailoBackend(model, hef_path=hef_path, threads=threads)
    raise BackendError(f'unknown backend {backend!r}; expected one of {", ".join(BACKENDS)}')


__all__ = ['BACKENDS', 'Backend', 'BackendError', 'create_backend']

"""Fake hailo_platform for rover_policy's tests (see pyhailort/pyhailort.py). Never install it."""
from hailo_platform.pyhailort.pyhailort import (HEF, AsyncInferJob, FormatOrder, FormatType,  # noqa: F401
                                                HailoRTException, HailoSchedulingAlgorithm, VDevice)

__version__ = '4.20.0+fake'
__all__ = ['HEF', 'AsyncInferJob', 'FormatOrder', 'FormatType', 'HailoRTException',
           'HailoSchedulingAlgorithm', 'VDevice']

"""Fake hailo_platform for rover_policy's tests (see pyhailort/pyhailort.py, whose header lists the
HailoRT facts it follows). Never install it."""
from hailo_platform.pyhailort.pyhailort import (HEF, AsyncInferJob, FormatOrder, FormatType,  # noqa: F401
                                                HailoRTException, HailoSchedulingAlgorithm, VDevice)

__version__ = '4.23.0+fake'  # the release the facts were last checked against
__all__ = ['HEF', 'AsyncInferJob', 'FormatOrder', 'FormatType', 'HailoRTException',
           'HailoSchedulingAlgorithm', 'VDevice']

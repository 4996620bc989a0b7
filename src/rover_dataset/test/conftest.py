"""Test against the source tree (not an installed copy), like rover_quantize's tests."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault('SVT_LOG', '1')

import pytest  # noqa: E402

from rover_common.process import scheduling_guard  # noqa: E402

# Fails a test that changes the test process's scheduling: every later test and child inherits it
# (an AV1 encoder run as root moves its thread to SCHED_FIFO 99).
scheduling_unchanged = pytest.fixture(autouse=True, name='scheduling_unchanged')(scheduling_guard)

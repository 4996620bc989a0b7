import pytest

from rover_common.process import scheduling_guard

# Fails a test that changes the test process's scheduling: every later test and child inherits it.
scheduling_unchanged = pytest.fixture(autouse=True, name='scheduling_unchanged')(scheduling_guard)

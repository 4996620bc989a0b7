import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # model_fixtures, hailo_fixtures

import model_fixtures  # noqa: E402
from rover_common.process import scheduling_guard  # noqa: E402


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    """A read-only tiny model directory shared by all tests (copy it before changing anything)."""
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns about pre-processing
    return model_fixtures.build_tiny_model_dir(str(tmp_path_factory.mktemp('models') / 'tiny'))


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return model_fixtures.copy_model_dir(tiny_model_dir, str(tmp_path / 'model'))


# Fails a test that changes the test process's scheduling: every later test and child inherits it.
scheduling_unchanged = pytest.fixture(autouse=True, name='scheduling_unchanged')(scheduling_guard)

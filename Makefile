# rover: one-command set-up, tests, demo and benchmarks on an x86-64 development machine.
SHELL := /bin/bash
.SHELLFLAGS := -e -o pipefail -c  # no -u: colcon's setup.bash reads unset variables
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.rover-installed
REQS := docker/requirements-torch.txt docker/requirements-dev.txt docker/requirements-runtime.txt docker/constraints-dev.txt
# Every ROS process started from here stays on loopback, in a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell shuf -i 1-101 -n 1)
# Run inside the venv with the built workspace on the path.
ENV := source $(VENV)/bin/activate && source install/setup.bash
PYTEST_ARGS ?=
# The demo's model: a small ACT (fixed seed) exported and quantized by rover_quantize.
DEMO_MODEL := build/demo_model/manifest.json

.PHONY: setup build test demo bench lock clean train-demo
setup: build $(DEMO_MODEL)

$(STAMP): $(REQS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade 'pip>=24'
	# torch first, alone: the CPU build on disk; nothing later may replace it.
	$(VENV)/bin/pip install --quiet -r docker/requirements-torch.txt
	$(VENV)/bin/pip install --quiet -r docker/requirements-dev.txt -c docker/constraints-dev.txt
	touch $(VENV)/COLCON_IGNORE   # the venv holds ROS package.xml files colcon must not build
	touch $@

build: $(STAMP)
	source $(VENV)/bin/activate && colcon build --event-handlers console_cohesion- status-
	# the offline tools on the venv's PATH (ament_python puts console scripts in lib/<pkg>);
	# they run with the workspace sourced, as everything here does
	ln -sf $(CURDIR)/install/rover_quantize/lib/rover_quantize/rover-quantize $(VENV)/bin/rover-quantize
	ln -sf $(CURDIR)/install/rover_dataset/lib/rover_dataset/rover-dataset $(VENV)/bin/rover-dataset

$(DEMO_MODEL): src/rover/rover/demo_policy.safetensors | build
	rm -rf build/demo_model
	$(ENV) && python -m rover.demo --prepare-model

test: setup
	$(ENV) && python -m pytest -c tests/pytest.ini --rootdir . src tests $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-numpy1 PYTEST_ARGS=

demo: setup
	$(ENV) && python -m rover.demo

bench: setup
	$(ENV) && python -m rover.bench

# Is recorded data learnable? A simulated human drive -> rover-dataset -> training with the
# project's trainer -> rover-quantize build from the same bags -> the sim drives (about 15
# minutes on 2 cores; not part of CI). Then the shipped demo model, for comparison.
train-demo: setup
	$(ENV) && python -m rover_dataset.train_demo --out build/train_demo
	$(ENV) && python -m rover.demo --seconds 60

# HailoRT's wheel needs numpy < 2: the Hailo path's ROS-free tests (the hailo backend against the
# fake hailo_platform) once more in a small venv with numpy 1.x, the packages straight from src/.
NUMPY1_VENV ?= .venv-numpy1
NUMPY1_STAMP := $(NUMPY1_VENV)/.rover-installed
NUMPY1_TESTS := src/rover_policy/test/test_hailo_backend.py

$(NUMPY1_STAMP): docker/requirements-torch.txt docker/requirements-numpy1.txt
	$(PYTHON) -m venv $(NUMPY1_VENV)
	$(NUMPY1_VENV)/bin/pip install --quiet --upgrade 'pip>=24'
	$(NUMPY1_VENV)/bin/pip install --quiet -r docker/requirements-torch.txt
	$(NUMPY1_VENV)/bin/pip install --quiet -r docker/requirements-numpy1.txt
	touch $(NUMPY1_VENV)/COLCON_IGNORE
	touch $@

.PHONY: test-numpy1
test-numpy1: $(NUMPY1_STAMP)
	PYTHONPATH=$(CURDIR)/src/rover_common:$(CURDIR)/src/rover_policy ROVER_EXPECT_NUMPY_MAJOR=1 \
		$(NUMPY1_VENV)/bin/python -m pytest -c tests/pytest.ini --rootdir . $(NUMPY1_TESTS) $(PYTEST_ARGS)

# Re-pin the whole dev tree after changing requirements-dev.txt.
lock: $(STAMP)
	(echo "# pip freeze of a working .venv (torch excluded: see requirements-torch.txt). Regenerate with make lock."; \
	 $(VENV)/bin/pip freeze --all | grep -v -E '^(torch|pip)==') > docker/constraints-dev.txt

clean:
	rm -rf build install log

# The Arduino firmware for an Uno/Nano with avr-gcc and Debian's Arduino AVR core
# (apt-get install gcc-avr avr-libc arduino-core-avr): build/firmware/rover_firmware.hex,
# flash/RAM use printed, fails above the budget (tests/firmware/Makefile).
.PHONY: firmware
firmware:
	$(MAKE) -C tests/firmware firmware OUT=$(CURDIR)/build/firmware

"""Start rover nodes as child processes on loopback, and stop them cleanly.

Used by multi-process tests, benchmarks and the demo.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from rover_common.ros_env import localhost_env


def write_params_file(node_name: str, params: dict, directory: str) -> str:
    """A ROS 2 parameter YAML for one node, as `--params-file` expects it. A bare
    name is keyed `/**/name`, so it applies under any namespace; a fully
    qualified `/ns/name` is kept as it is."""
    path = os.path.join(directory, f'{node_name.strip("/").replace("/", "_")}_params.yaml')
    key = node_name if node_name.startswith('/') else f'/**/{node_name}'
    with open(path, 'w') as f:
        yaml.safe_dump({key: {'ros__parameters': params}}, f)
    return path


def scheduling_state() -> tuple[int, int, int]:
    """(policy, priority, niceness) of the calling thread: what a child process inherits."""
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, os.getpriority(os.PRIO_PROCESS, 0)


_SUITE_SCHEDULING = []  # what the first guarded test of the session started with


def scheduling_guard():
    """Body of the suite's autouse fixture (`pytest.fixture(autouse=True)(scheduling_guard)`
    in each conftest). Every later test and child process inherits the test process's
    scheduling policy, priority and niceness, so a test fails if they differ, before or
    after it, from what the session started with; they are put back first (as far as
    permissions allow) so the tests after it are not affected."""
    before = scheduling_state()
    if not _SUITE_SCHEDULING:
        _SUITE_SCHEDULING.append(before)
    expected = _SUITE_SCHEDULING[0]
    yield
    after = scheduling_state()
    if before == after == expected:
        return
    try:
        os.sched_setscheduler(0, expected[0], os.sched_param(expected[1]))
        os.setpriority(os.PRIO_PROCESS, 0, expected[2])
    except OSError:
        pass  # e.g. an unprivileged process cannot lower its niceness again
    raise AssertionError(
        f'scheduling (policy, priority, nice) of the test process: {before} before the test, {after} '
        f'after it, {expected} at the start of the session; request realtime or niceness in a child '
        'process instead')


class NodeProcess:
    """One node in its own process; output goes to a log file in a temporary directory
    of its own, which stop() removes after reading the log into memory for output()."""

    def __init__(self, module: str, node_name: str, params: dict | None = None,
                 env: dict | None = None, args: list[str] | None = None,
                 params_files: list[str] | None = None, remaps: dict | None = None):
        self.module = module
        self.node_name = node_name
        self._dir = tempfile.mkdtemp(prefix=f'{node_name}_')
        self.log_path = os.path.join(self._dir, 'output.log')
        cmd = [sys.executable, '-u', '-m', module, *(args or []), '--ros-args', '-r', f'__node:={node_name}']
        for path in params_files or []:
            cmd += ['--params-file', path]
        if params:
            cmd += ['--params-file', write_params_file(node_name, params, self._dir)]
        for src, dst in (remaps or {}).items():
            cmd += ['-r', f'{src}:={dst}']
        self.cmd = cmd
        self.env = env if env is not None else localhost_env()
        self.proc = None
        self._log = None
        self._output = None  # the log, once stop() has removed the directory

    def start(self) -> 'NodeProcess':
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        if self._output is not None:
            return self._output
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT like Ctrl-C (so nodes run their shutdown path), then SIGKILL; then the
        temporary directory goes (the log stays readable through output())."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        if os.path.isdir(self._dir):
            if os.path.exists(self.log_path):
                self._output = self.output()
            shutil.rmtree(self._dir, ignore_errors=True)
        return None if self.proc is None else self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_for(predicate, timeout: float, interval: float = 0.01, spin=None) -> bool:
    """Poll `predicate` (spinning `spin()` between polls) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spin is not None:
            spin()
        if predicate():
            return True
        if spin is None:
            time.sleep(interval)
    return predicate()

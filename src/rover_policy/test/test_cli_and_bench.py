"""The no-ROS latency benchmark (its own entry point) and the control benchmark's definitions."""
import json
import os
import re
import resource
import subprocess
import sys

import pytest

from rover_policy.bench import ON_TIME_MS, analyse, join_commands, stamp_key

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [os.path.dirname(HERE), os.path.join(os.path.dirname(os.path.dirname(HERE)), 'rover_common'),
     os.environ.get('PYTHONPATH', '')]))


def installed_script(name):
    """A console script of the built rover_policy (what `ros2 run rover_policy <name>` runs)."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        path = os.path.join(prefix, 'lib', 'rover_policy', name)
        if prefix and os.path.exists(path):
            return path
    pytest.fail(f'no {name} script in any AMENT_PREFIX_PATH entry: build rover_policy with colcon')


def run_benchmark(*args, command=(sys.executable, '-m', 'rover_policy.latency_benchmark')):
    return subprocess.run([*command, *args], env=ENV, capture_output=True, text=True, timeout=120)


def test_latency_benchmark_entry_point_prints_one_summary_line(tiny_model_dir):
    result = run_benchmark('--iterations', '20', '--model-dir', tiny_model_dir, '--backend', 'cpu_int8',
                           '--threads', '1', command=[installed_script('latency_benchmark')])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    match = re.match(r'bench inference: backend=cpu_int8 image=64x48 chunk=20 iterations=20 threads=1 '
                     r'mean_ms=(\S+) p50_ms=(\S+) p95_ms=(\S+) p99_ms=(\S+) fps=(\S+) ', lines[0])
    assert match, lines[0]
    mean, p50, p95, p99, fps = map(float, match.groups())
    assert 0 < p50 <= p95 <= p99 and fps == pytest.approx(1000 / mean, rel=0.02)


def test_latency_benchmark_bad_model_dir_exits_2(tmp_path):
    result = run_benchmark('--model-dir', str(tmp_path / 'missing'))
    assert result.returncode == 2 and 'cannot start: model directory not found' in result.stderr


def tick(k, late_ms=0.0, chunk=None, period=0.1):
    scheduled = 10.0 + k * period
    actual = scheduled + late_ms / 1000
    return dict(type='tick', scheduled=scheduled, actual=actual, published=actual + 0.0005,
                t=1000.0 + k * period + late_ms / 1000, chunk_stamp=chunk, index=0, neutral=None)


def test_bench_analysis_definitions():
    period = 0.1
    ticks = [tick(k, chunk=1000.0) for k in range(10)]
    ticks[4] = tick(4, late_ms=ON_TIME_MS + 2.0, chunk=1000.0)   # one late tick
    del ticks[7]                                                  # one skipped deadline
    ticks[0]['neutral'] = 'queue_empty'
    ticks[0]['chunk_stamp'] = None
    chunk = dict(type='chunk', stamp=1000.0, received=1000.004, started=1000.009, ready=1000.030,
                 model_s=0.020, preprocess_s=0.001)
    summary = analyse(ticks, [chunk], 10.0, 11.0, 1 / period)
    assert summary['ticks'] == 9 and summary['missed_ticks'] == 1
    assert summary['on_time_percent'] == pytest.approx(100 * 8 / 10)
    assert summary['p99_period_error_ms'] > ON_TIME_MS        # the late tick and the gap show
    assert summary['max_period_error_ms'] == pytest.approx(100.0, abs=1e-6)  # the skipped deadline
    assert summary['inference_p50_ms'] == pytest.approx(20.0)
    # overhead: 4 ms transport + (21 - 20) ms processing + 0.5 ms publishing of its first tick (k=1);
    # the 5 ms the frame waited for the busy model and the wait for the tick are reported apart
    assert summary['e2e_overhead_p99_ms'] == pytest.approx(5.5)
    assert summary['frame_wait_p50_ms'] == pytest.approx(5.0)
    assert summary['tick_wait_p50_ms'] == pytest.approx(1000 * (1000.1 - 1000.030))
    assert summary['capture_to_cmd_p50_ms'] == pytest.approx(100.5)
    assert summary['neutral_percent'] == pytest.approx(100 / 9)


def test_join_commands_matches_each_policy_command_to_the_arbiters_restamped_copy():
    # (key, sent, received here, (steering, throttle)); the arbiter restamps rover/cmd
    policy = [(1, 10.000, 10.001, (0.1, 0.2)), (2, 10.033, 10.034, (0.0, 0.0)),  # neutral: ambiguous
              (3, 10.066, 10.068, (0.3, 0.2)), (4, 10.100, 10.101, (0.4, 0.2))]
    rover = [(0, 9.990, 9.991, (0.3, 0.2)),     # sent before policy 3: never its copy
             (0, 10.002, 10.004, (0.1, 0.2)), (0, 10.035, 10.036, (0.0, 0.0)),
             (0, 10.069, 10.070, (0.3, 0.2)),
             (0, 10.300, 10.301, (0.4, 0.2))]   # 200 ms later: beyond the horizon, not a match
    joined = join_commands(policy, rover)
    assert joined == {1: (10.000, 10.001, 10.002, 10.004), 3: (10.066, 10.068, 10.069, 10.070)}


def test_bench_analysis_splits_a_commands_way_into_hops():
    period = 0.1
    ticks = [tick(k, chunk=1000.0) for k in range(5)]
    chunk = dict(type='chunk', stamp=1000.0, received=1000.004, started=1000.009, ready=1000.030,
                 model_s=0.020, preprocess_s=0.001, sent=1000.001, arrived=1000.003)
    # rover/cmd for the ticks k = 0, 1 (ROS time, as `t`): policy/cmd sent 0.5 ms after the tick,
    # 1 ms on the wire, 2 ms through the arbiter, rover/cmd 0.5 ms on the wire to the bridge
    commands = {stamp_key(t['t']): (t['t'] + 0.0005, t['t'] + 0.0015, t['t'] + 0.0025, t['t'] + 0.003)
                for t in ticks[0:2]}
    summary = analyse(ticks, [chunk], 10.0, 10.5, 1 / period, commands)
    assert summary['cam_publish_p50_ms'] == pytest.approx(1.0)
    assert summary['cam_dds_p50_ms'] == pytest.approx(2.0)
    assert summary['dispatch_p50_ms'] == pytest.approx(1.0)
    assert summary['preprocess_p50_ms'] == pytest.approx(1.0)
    assert summary['post_model_p50_ms'] == pytest.approx(0.0, abs=1e-6)
    assert summary['tick_publish_p50_ms'] == pytest.approx(0.5)
    assert summary['policy_cmd_dds_p50_ms'] == pytest.approx(1.0)
    assert summary['arbiter_hop_p50_ms'] == pytest.approx(2.0)
    assert summary['rover_cmd_dds_p50_ms'] == pytest.approx(0.5)
    assert summary['commands_matched_percent'] == pytest.approx(100 * 2 / 5)
    # the chunk's first tick (k = 0) to the bridge: 4 ms transport + 1 ms processing + 3 ms
    # from the tick's deadline to rover/cmd at the bridge
    assert summary['bridge_overhead_p50_ms'] == pytest.approx(8.0)


# Runs the control loop's realtime request in a child, so the test process (and every
# process started after it) keeps normal scheduling; prints what Linux decides it by.
REALTIME_CHILD = r"""
import json, os, resource, sys
from rover_policy.control_loop import ControlLoop

if sys.argv[1] == 'withheld':
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    if os.geteuid() == 0:
        os.setuid(65534)  # leaving root drops CAP_SYS_NICE


def rt_runtime_us():  # the cgroup's realtime budget (cgroup v1 with RT group scheduling)
    for line in open('/proc/self/cgroup'):
        _, controllers, path = line.rstrip('\n').split(':', 2)
        if 'cpu' in controllers.split(','):
            for base in (f'/sys/fs/cgroup/{controllers}{path}', f'/sys/fs/cgroup/{controllers}'):
                if os.path.exists(f'{base}/cpu.rt_runtime_us'):
                    return int(open(f'{base}/cpu.rt_runtime_us').read())
    return None


cap_eff = next(int(line.split()[1], 16) for line in open('/proc/self/status') if line.startswith('CapEff:'))
conditions = dict(cap_sys_nice=bool(cap_eff >> 23 & 1), rtprio_limit=resource.getrlimit(resource.RLIMIT_RTPRIO)[0],
                  rt_runtime_us=rt_runtime_us())
outcomes = []
ControlLoop(100.0, lambda s, a: None, clock=lambda: 0.0, wait=lambda s: False, priority=10,
            on_priority=outcomes.append).run(max_ticks=1)
print(json.dumps(dict(conditions, outcomes=outcomes, policy=os.sched_getscheduler(0),
                      priority=os.sched_getparam(0).sched_priority)))
"""


def request_realtime_in_child(permission):
    result = subprocess.run([sys.executable, '-c', REALTIME_CHILD, permission], env=ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def realtime_allowed(child):
    """Linux grants SCHED_FIFO 10 with CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 10, unless
    the cgroup has no realtime budget (Docker's default under cgroup v1 RT group scheduling)."""
    permitted = child['cap_sys_nice'] or child['rtprio_limit'] == resource.RLIM_INFINITY \
        or child['rtprio_limit'] >= 10
    return permitted and child['rt_runtime_us'] != 0


def assert_realtime_outcome(child, granted):
    if granted:
        assert child['outcomes'] == [None], child
        assert (child['policy'], child['priority']) == (os.SCHED_FIFO, 10), child
    else:
        assert child['outcomes'] == ['cannot use SCHED_FIFO priority 10: [Errno 1] Operation not permitted'], child
        assert (child['policy'], child['priority']) == (os.SCHED_OTHER, 0), child


def test_control_loop_realtime_request_outcome_matches_permissions():
    child = request_realtime_in_child('as_is')
    assert_realtime_outcome(child, granted=realtime_allowed(child))


def test_control_loop_realtime_request_refused_without_permission():
    child = request_realtime_in_child('withheld')
    if realtime_allowed(child):
        pytest.skip(f'cannot withhold realtime permission here: {child}')
    assert_realtime_outcome(child, granted=False)

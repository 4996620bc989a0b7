"""The shell scripts in docker/, run here against fakes: every script parses (and passes
shellcheck when installed), the entrypoint, the on-device checklist and the host install script.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'


# ---------------------------------------------------------------- scripts

SCRIPTS = sorted(p.name for p in DOCKER.glob('*.sh'))


@pytest.mark.parametrize('name', SCRIPTS)
def test_shell_scripts_parse_and_are_executable(name):
    subprocess.run(['bash', '-n', str(DOCKER / name)], check=True)
    assert os.access(DOCKER / name, os.X_OK), f'chmod +x docker/{name}'


@pytest.mark.skipif(not shutil.which('shellcheck'), reason='shellcheck is not installed')
def test_shell_scripts_pass_shellcheck():
    result = subprocess.run(['shellcheck', *[str(DOCKER / n) for n in SCRIPTS]], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------- rover-entrypoint.sh

@pytest.fixture
def fake_ros(tmp_path):
    """A ROS setup file that puts a fake `ros2` (printing its arguments) on the PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ros2').write_text('#!/bin/sh\necho "ros2 $*"\n')
    (bin_dir / 'ros2').chmod(0o755)
    setup = tmp_path / 'ros_setup.bash'
    setup.write_text(f'export PATH="{bin_dir}:$PATH"\nexport FAKE_ROS_SOURCED=yes\n')
    workspace = tmp_path / 'ws'
    workspace.mkdir()
    (workspace / 'setup.bash').write_text('export FAKE_WS_SOURCED=yes\n')
    check = tmp_path / 'check'
    check.write_text('#!/bin/sh\necho "check $*"\nexit "${FAKE_CHECK_EXIT:-0}"\n')
    check.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ROVER_')}
    env.update(ROS_SETUP=str(setup), ROVER_WS=str(workspace), ROVER_HAILO_CHECK=str(check))
    return env


def entrypoint(env, *args, **extra):
    return subprocess.run(['bash', str(DOCKER / 'rover-entrypoint.sh'), *args], capture_output=True,
                          text=True, env={**env, **extra}, timeout=30)


def launched(result) -> list[str]:
    lines = [line for line in result.stdout.splitlines() if line.startswith('ros2 launch')]
    assert len(lines) == 1, result.stdout + result.stderr
    words = lines[0].split()
    # --noninteractive: SIGINT to launch reaches the nodes (nobody is at a terminal)
    assert words[:5] == ['ros2', 'launch', '--noninteractive', 'rover', 'bringup.launch.py']
    return words[5:]


def test_entrypoint_launches_bringup_with_arguments_in_order(fake_ros):
    assert launched(entrypoint(fake_ros)) == []
    result = entrypoint(fake_ros, 'backend:=cpu_int8', 'autonomy:=true',
                        ROVER_LAUNCH_ARGS='record:=true  model_dir:=/opt/rover/models/v2')
    assert result.returncode == 0
    assert launched(result) == ['backend:=cpu_int8', 'autonomy:=true', 'record:=true',
                                'model_dir:=/opt/rover/models/v2']


def test_entrypoint_checks_hailort_before_a_hailo_launch(fake_ros):
    result = entrypoint(fake_ros, 'camera_source:=/dev/rover_camera', ROVER_BACKEND='hailo')
    assert result.returncode == 0
    assert 'check --print' in result.stdout
    assert launched(result) == ['backend:=hailo', 'camera_source:=/dev/rover_camera']
    # the user's backend wins, and then no Hailo check
    result = entrypoint(fake_ros, ROVER_BACKEND='hailo', ROVER_LAUNCH_ARGS='backend:=cpu_int8')
    assert 'check' not in result.stdout and launched(result)[-1] == 'backend:=cpu_int8'


def test_entrypoint_refuses_to_launch_on_a_hailort_mismatch(fake_ros):
    result = entrypoint(fake_ros, 'backend:=hailo', FAKE_CHECK_EXIT='78')
    assert result.returncode == 78
    assert 'ros2 launch' not in result.stdout


def test_entrypoint_runs_other_commands_in_the_ros_environment(fake_ros):
    result = entrypoint(fake_ros, 'bash', '-c', 'echo "$FAKE_ROS_SOURCED $FAKE_WS_SOURCED"; ros2 topic list')
    assert result.returncode == 0
    assert result.stdout.splitlines() == ['yes yes', 'ros2 topic list']


def test_entrypoint_rejects_bad_arguments_and_missing_installs(fake_ros, tmp_path):
    # configuration errors exit 2, which the systemd units do not restart
    result = entrypoint(fake_ros, 'backend:=cpu_int8', 'oops')
    assert result.returncode == 2 and "'oops' is not a launch argument" in result.stderr
    assert result.stderr.strip().endswith('--show-args'), result.stderr  # one line, no stray exit code
    result = entrypoint(fake_ros, ROS_SETUP=str(tmp_path / 'none.bash'))
    assert result.returncode == 2 and 'no ROS 2' in result.stderr
    result = entrypoint(fake_ros, ROVER_WS=str(tmp_path / 'none'))
    assert result.returncode == 2 and 'no workspace' in result.stderr



FAKE_NODE = """#!{python}
# a node: on a stop signal it takes a moment to stop in order, then records the signal
import os, signal, sys, time
def stop(signum, frame):
    time.sleep(0.3)  # e.g. the bridge sending neutral and closing the port
    open(sys.argv[1], 'w').write(signal.Signals(signum).name)
    sys.exit(0)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, stop)  # also where bash started it with SIGINT ignored
open(sys.argv[1] + '.pid', 'w').write(str(os.getpid()))  # ready
while True:
    time.sleep(0.05)
"""
# `ros2 launch --noninteractive` as it behaves: on SIGINT it passes SIGINT to its nodes and
# waits for them; on SIGTERM it exits at once and its nodes run on.
FAKE_LAUNCH = """#!/bin/bash
cut -d' ' -f5 /proc/$$/stat > "$OUT/launch.pgid"  # the nodes' process group, for clean-up
pids=()
for name in camera policy bridge; do "$NODE" "$OUT/$name" & pids+=($!); done
trap 'exit 1' TERM
trap 'kill -INT "${pids[@]}"; wait "${pids[@]}"; exit 0' INT
wait
"""


@pytest.mark.skipif(shutil.which('tini') is None, reason='tini is not installed (apt install tini)')
@pytest.mark.parametrize('signal_name', ['SIGINT', 'SIGTERM'])
def test_a_stop_signal_to_pid_1_stops_every_node_before_the_container_ends(fake_ros, tmp_path, signal_name):
    """The image's ENTRYPOINT (tini, then rover-entrypoint) with a launch that behaves like
    ros2 launch. When PID 1 ends the container ends and kills what is left (done here by
    hand), so every node must have received the signal and finished stopping by then."""
    from test_docker_dockerfile import image_entrypoint
    tini, *options, _ = image_entrypoint()
    (tmp_path / 'bin' / 'ros2').write_text('#!/bin/sh\nexec "$FAKE_LAUNCH_SCRIPT"\n')  # see fake_ros
    node, launch, out = tmp_path / 'node', tmp_path / 'launch', tmp_path / 'out'
    node.write_text(FAKE_NODE.format(python=sys.executable))
    launch.write_text(FAKE_LAUNCH)
    for script in (node, launch):
        script.chmod(0o755)
    out.mkdir()
    env = {**fake_ros, 'FAKE_LAUNCH_SCRIPT': str(launch), 'NODE': str(node), 'OUT': str(out)}
    command = [shutil.which(Path(tini).name), *options, 'bash', str(DOCKER / 'rover-entrypoint.sh')]
    log = (tmp_path / 'output.log').open('w')  # a file: orphaned nodes would hold a pipe open
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(list(out.glob('*.pid'))) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(out.glob('*.pid'))) == 3, 'the fake nodes did not start'
        os.kill(proc.pid, getattr(signal, signal_name))
        assert proc.wait(timeout=20) == 0, (tmp_path / 'output.log').read_text()  # launch's exit code
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # what a container's end does to processes still running
            os.killpg(int((out / 'launch.pgid').read_text()), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
        log.close()
    got = {name: (out / name).read_text() if (out / name).exists() else None
           for name in ('camera', 'policy', 'bridge')}
    assert got == dict.fromkeys(got, 'SIGINT'), got  # launch's orderly path, whatever the signal


# ---------------------------------------------------------------- pi_checklist.sh

def checklist_function(call: str, stdin: str = '') -> subprocess.CompletedProcess:
    script = f'source "{DOCKER / "pi_checklist.sh"}"; {call}'
    return subprocess.run(['bash', '-c', script], input=stdin, capture_output=True, text=True, timeout=30)


V4L2_FORMATS = textwrap.dedent('''\
    ioctl: VIDIOC_ENUM_FMT
    \tType: Video Capture

    \t[0]: 'MJPG' (Motion-JPEG, compressed)
    \t\tSize: Discrete 1920x1080
    \t\t\tInterval: Discrete 0.033s (30.000 fps)
    \t\tSize: Discrete 640x360
    \t\t\tInterval: Discrete 0.033s (30.000 fps)
    \t\t\tInterval: Discrete 0.067s (15.000 fps)
    \t[1]: 'YUYV' (YUYV 4:2:2)
    \t\tSize: Discrete 640x480
    \t\t\tInterval: Discrete 0.033s (30.000 fps)
    \t\tSize: Discrete 640x360
    \t\t\tInterval: Discrete 0.100s (10.000 fps)
    ''')


def test_checklist_finds_the_camera_mode_in_v4l2_output():
    assert checklist_function('v4l2_has_mode 640 360 30', V4L2_FORMATS).returncode == 0
    assert checklist_function('v4l2_has_mode 640 480 30', V4L2_FORMATS).returncode == 0
    slow = V4L2_FORMATS.replace('0.033s (30.000 fps)\n\t\t\tInterval: Discrete 0.067s', '0.050s (20.000 fps)\n\t\t\tInterval: Discrete 0.067s')
    assert checklist_function('v4l2_has_mode 640 360 30', slow).returncode == 1   # only 20 and 10 fps
    assert checklist_function('v4l2_has_mode 1280 720 30', V4L2_FORMATS).returncode == 1
    stepwise = "\t[0]: 'YUYV'\n\t\tSize: Stepwise 32x32 - 1280x720 with step 2/2\n\t\t\tInterval: Stepwise 0.033s - 1.000s with step 0.000s (1.000-30.000 fps)\n"
    assert checklist_function('v4l2_has_mode 640 360 30', stepwise).returncode == 0
    assert checklist_function('v4l2_has_mode 640 360 60', stepwise).returncode == 1


def test_checklist_reads_ros2_and_bench_output():
    hz = ('average rate: 29.871\n\tmin: 0.031s max: 0.036s std dev: 0.00102s window: 31\n'
          'average rate: 30.004\n\tmin: 0.032s max: 0.035s std dev: 0.00051s window: 62\n')
    assert checklist_function('hz_rate', hz).stdout.strip() == '30.004'
    assert checklist_function('hz_rate', 'WARNING: topic [/rover/cmd] does not appear to be published yet\n').returncode == 1
    line = ('bench inference: backend=cpu_int8 image=640x360 chunk=100 iterations=400 threads=4 '
            'mean_ms=151.20 p50_ms=149.80 p95_ms=160.10 p99_ms=171.33 fps=6.6 preprocess_p50_ms=1.90\n')
    assert checklist_function('bench_value p99_ms', line).stdout.strip() == '171.33'
    assert checklist_function('bench_value mean_ms', line).stdout.strip() == '151.20'
    assert checklist_function('bench_value p9', line).returncode == 1
    assert checklist_function('v4l2_stream_fps', '<<<<<<<<<<<<<<<<<<<<<<<<<<<<< 29.97 fps\r<<<<<<<<<< 30.00 fps, dropped buffers: 0\n').stdout.strip() == '30.00'
    assert checklist_function('v4l2_stream_fps', 'VIDIOC_STREAMON returned -1 (Device or resource busy)\n').returncode == 1


def test_checklist_sizes_the_benchmark_to_about_a_minute():
    sizes = {mean: checklist_function(f'bench_iterations {mean} 60').stdout.strip()
             for mean in ('150.0', '5', '10000', '0')}
    assert sizes == {'150.0': '400', '5': '1800', '10000': '20', '0': '20'}
    assert checklist_function('in_range 30.004 29 31').returncode == 0
    assert checklist_function('in_range 28.2 29 31').returncode == 1
    assert checklist_function('in_range "" 29 31').returncode == 1


FAKE_ROS2 = '''#!/bin/sh
case "$1 $2" in
    "node list") echo /camera; echo /policy; echo /bridge ;;
    "topic echo") printf 'header:\\n  frame_id: camera\\nheight: 360\\nwidth: 640\\nencoding: bgr8\\n---\\n' ;;
    "topic hz")
        case "$*" in
            *camera/image_raw*) printf 'average rate: 29.950\\n\\tmin: 0.030s max: 0.037s\\n' ;;
            *) printf 'average rate: %s\\n\\tmin: 0.032s max: 0.035s\\n' "${FAKE_CMD_RATE:-30.001}" ;;
        esac ;;
    "run rover_policy")
        [ "$3" = latency_benchmark ] || exit 99
        echo "$*" >> "$FAKE_LOG"
        echo "bench inference: backend=cpu_int8 image=640x360 chunk=100 iterations=1 threads=4 mean_ms=150.00 p50_ms=149.00 p95_ms=160.00 p99_ms=171.33 fps=6.7" ;;
esac
'''
FAKE_PYTHON = '''#!/bin/sh
case "$*" in
    *DiagnosticArray*) echo "level=0 bridge: link up handshake=ok firmware=1"; exit 0 ;;
    *manifest.json*) echo 1667 ;;
    *) exit 99 ;;
esac
'''


def test_checklist_runs_every_check_against_fake_tools(fake_ros, tmp_path):
    """Native mode end to end: fake ros2/python3/v4l2-ctl, /dev/null standing in for both devices."""
    bin_dir = Path(fake_ros['ROS_SETUP']).parent / 'bin'
    for name, text in (('ros2', FAKE_ROS2), ('python3', FAKE_PYTHON),
                       ('v4l2-ctl', f"#!/bin/sh\ncat <<'EOF'\n{V4L2_FORMATS}EOF\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**fake_ros, 'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_LOG': str(tmp_path / 'bench.log'),
           'ROVER_ARDUINO_DEV': '/dev/null', 'ROVER_CAMERA_DEV': '/dev/null'}

    def run(*args, **extra):
        return subprocess.run(['bash', str(DOCKER / 'pi_checklist.sh'), '--native', '--env-file',
                               str(tmp_path / 'none.env'), *args], capture_output=True, text=True,
                              env={**env, **extra}, timeout=120)

    result = run()
    lines = {line.split(':')[0]: line for line in result.stdout.splitlines() if line[:4] in ('PASS', 'FAIL', 'SKIP')}
    for name in ('arduino device', 'camera device', 'camera 640x360@30', 'camera image', 'camera rate',
                 'rover/cmd rate', 'arduino handshake', 'benchmark'):
        assert f'PASS {name}' in lines, result.stdout + result.stderr
    assert 'SKIP camera capture' in lines            # the running stack holds the camera
    assert 'rover/cmd at 30.001 Hz' in lines['PASS rover/cmd rate']
    assert 'p99 171.33 ms <= 1667 ms' in lines['PASS benchmark']
    # the probe (10 iterations) sizes the run: 60 s / 150 ms = 400 iterations
    runs = (tmp_path / 'bench.log').read_text().splitlines()
    assert len(runs) == 2 and '--iterations 10' in runs[0] and '--iterations 400' in runs[1]
    assert '--model-dir /opt/rover/models/current --backend cpu_int8 --threads 4' in runs[1]
    assert re.search(r'^checklist: \d+ passed, \d+ failed, 1 skipped$', result.stdout, re.M)

    slow = run('--no-bench', FAKE_CMD_RATE='24.500')
    assert "FAIL rover/cmd rate: /rover/cmd: expected ~30 Hz, got '24.500'" in slow.stdout
    assert slow.returncode == 1 and 'SKIP benchmark: --no-bench' in slow.stdout


def test_checklist_help_and_unknown_options():
    script = str(DOCKER / 'pi_checklist.sh')
    result = subprocess.run(['bash', script, '--help'], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and 'PASS / FAIL / SKIP' in result.stdout
    result = subprocess.run(['bash', script, '--bogus'], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and 'unknown option --bogus' in result.stderr


# ---------------------------------------------------------------- install_host.sh

def install_host(root, *args):
    user = subprocess.run(['id', '-un'], capture_output=True, text=True, check=True).stdout.strip()
    return subprocess.run(['bash', str(DOCKER / 'install_host.sh'), '--root', str(root), '--user', user, *args],
                          capture_output=True, text=True, timeout=60)


def env_file(root) -> dict:
    text = (root / 'etc/rover/rover.env').read_text()
    return dict(line.split('=', 1) for line in text.splitlines() if line and not line.startswith('#'))


@pytest.mark.skipif(not all(subprocess.run(['getent', 'group', g], capture_output=True).returncode == 0
                            for g in ('dialout', 'video')), reason='no dialout/video groups on this machine')
def test_install_host_writes_rules_env_and_units(tmp_path):
    result = install_host(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'etc/udev/rules.d/99-rover.rules').read_text() == (DOCKER / '99-rover.rules').read_text()
    assert (tmp_path / 'etc/systemd/system/rover.service').read_text() == \
        (DOCKER / 'systemd/rover.service').read_text()
    for folder in ('models', 'bags', 'logs', 'hailo_pkgs'):
        assert (tmp_path / 'opt/rover' / folder).is_dir()
    settings = env_file(tmp_path)
    assert settings['ROVER_REPO'] == str(REPO) and settings['ROVER_SERVICE'] == 'rover'
    assert settings['ROVER_UID'] == str(os.getuid())
    dialout = subprocess.run(['getent', 'group', 'dialout'], capture_output=True, text=True).stdout.split(':')[2]
    assert settings['DIALOUT_GID'] == dialout
    assert 'skipped (--root): udevadm control --reload-rules' in result.stdout

    # a second run keeps the user's edits ...
    text = (tmp_path / 'etc/rover/rover.env').read_text().replace('ROS_DOMAIN_ID=0', 'ROS_DOMAIN_ID=7')
    (tmp_path / 'etc/rover/rover.env').write_text(text)
    assert install_host(tmp_path, '--hailo').returncode == 0
    assert env_file(tmp_path)['ROS_DOMAIN_ID'] == '7' and env_file(tmp_path)['ROVER_SERVICE'] == 'rover'
    # ... unless told to rewrite it
    assert install_host(tmp_path, '--hailo', '--force-env').returncode == 0
    settings = env_file(tmp_path)
    assert settings['ROS_DOMAIN_ID'] == '0'
    assert settings['ROVER_SERVICE'] == 'rover-hailo' and settings['COMPOSE_PROFILES'] == 'hailo'

    result = install_host(tmp_path, '--native')
    assert result.returncode == 0
    assert (tmp_path / 'etc/systemd/system/rover-native@.service').is_file()
    assert 'rover-native@' in result.stdout


def test_install_host_rejects_unknown_options(tmp_path):
    result = install_host(tmp_path, '--frobnicate')
    assert result.returncode == 1 and 'unknown option --frobnicate' in result.stderr

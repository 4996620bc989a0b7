"""docker/systemd units: restart policy and exit codes, stop signals and timeouts agree
with compose.yaml and the entrypoint.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import re
from pathlib import Path

import pytest

from test_docker_compose import compose, seconds  # noqa: F401 - the compose fixture

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'


# ---------------------------------------------------------------- systemd units

def parse_unit(path: Path) -> dict:
    sections, current, pending = {}, None, ''
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in '#;'):
            continue
        if line.endswith('\\'):
            pending += line[:-1] + ' '
            continue
        line, pending = pending + line, ''
        if line.startswith('['):
            assert line.endswith(']'), line
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and '=' in line, f'{path.name}: {line!r}'
        key, _, value = line.partition('=')
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNITS = ('rover.service', 'rover-native@.service')


@pytest.mark.parametrize('name', UNITS)
def test_systemd_unit_restarts_on_failure_and_stops_with_sigint(name, compose):
    unit = parse_unit(DOCKER / 'systemd' / name)
    assert set(unit) == {'Unit', 'Service', 'Install'}
    service = unit['Service']
    assert len(service['ExecStart']) == 1 and service['ExecStart'][0].startswith('/')
    assert service['Restart'] == ['on-failure']
    assert service['KillSignal'] == ['SIGINT']
    timeout = float(service['TimeoutStopSec'][0])
    # ros2 launch: SIGTERM after 5 s, SIGKILL after 5 more; compose: stop_grace_period
    grace = max(seconds(s['stop_grace_period']) for s in compose['services'].values())
    assert timeout > max(10, grace)
    assert unit['Install']['WantedBy'] == ['multi-user.target']
    known = set(re.findall(r'^(\w+)=', (DOCKER / 'rover.env.example').read_text(), re.M))
    for value in service.get('Environment', []):
        known |= {pair.split('=')[0] for pair in value.split()}
    used = set(re.findall(r'\$\{(\w+)\}', ' '.join(service['ExecStart'] + service.get('ExecStop', []))))
    assert used <= known, used - known


def test_docker_unit_runs_compose_without_building_or_pulling():
    service = parse_unit(DOCKER / 'systemd' / 'rover.service')['Service']
    start = service['ExecStart'][0].split()
    assert start[:2] == ['/usr/bin/docker', 'compose']
    assert '${ROVER_REPO}/docker/compose.yaml' in start and 'up' in start
    assert '--no-build' in start and start[start.index('--pull') + 1] == 'never'
    assert start[-1] == '${ROVER_SERVICE}'
    assert 'stop' in service['ExecStop'][0].split()
    unit = parse_unit(DOCKER / 'systemd' / 'rover.service')['Unit']
    assert 'docker.service' in ' '.join(unit['Requires'] + unit['After'])


def test_native_unit_runs_the_entrypoint_as_the_instance_user():
    service = parse_unit(DOCKER / 'systemd' / 'rover-native@.service')['Service']
    assert service['User'] == ['%i']
    assert service['ExecStart'][0].endswith('/docker/rover-entrypoint.sh')
    assert '78' in service['RestartPreventExitStatus'][0].split()




def exit_codes_of_the_entrypoint() -> set[int]:
    """The exit codes rover-entrypoint.sh chooses itself: die's default and explicit `exit N`."""
    script = (DOCKER / 'rover-entrypoint.sh').read_text()
    codes = {int(c) for c in re.findall(r'\bexit "?\$\{2:-(\d+)\}"?', script)}
    codes |= {int(c) for c in re.findall(r'\|\| exit (\d+)', script)}
    codes |= {int(c) for c in re.findall(r'\bdie "[^"]*" (\d+)', script)}
    return codes


@pytest.mark.parametrize('name', UNITS)
def test_units_do_not_restart_what_a_restart_cannot_fix(name):
    """Configuration errors exit 2 everywhere (nodes, launch file, entrypoint); 78 is the
    HailoRT mismatch. A unit restarting those every 5 s would only fill the journal."""
    from rover_common.node_main import EXIT_CONFIG_ERROR
    service = parse_unit(DOCKER / 'systemd' / name)['Service']
    prevented = {int(code) for code in ' '.join(service['RestartPreventExitStatus']).split()}
    assert exit_codes_of_the_entrypoint() == {2, 78}
    assert {EXIT_CONFIG_ERROR, 78} <= prevented, prevented


def test_docker_unit_sees_the_container_exit_code():
    """Without --exit-code-from `docker compose up` exits 0 when the container stops, so
    systemd could not tell a configuration error from a clean stop."""
    start = parse_unit(DOCKER / 'systemd' / 'rover.service')['Service']['ExecStart'][0].split()
    assert start[start.index('--exit-code-from') + 1] == '${ROVER_SERVICE}' == start[-1]


@pytest.mark.parametrize('path', sorted(p.relative_to(REPO).as_posix() for p in DOCKER.rglob('*')
                                        if p.is_file() and p.suffix in ('.sh', '.service', '.yaml', '')))
def test_every_non_terminal_launch_is_noninteractive(path):
    """ros2 launch without --noninteractive does not pass SIGINT to its nodes."""
    for number, line in enumerate((REPO / path).read_text(errors='replace').splitlines(), 1):
        code = line.split('#', 1)[0]
        if re.search(r'\bros2 launch\b', code) and '--show-args' not in code:
            assert 'ros2 launch --noninteractive' in code, f'{path}:{number}: {line.strip()}'

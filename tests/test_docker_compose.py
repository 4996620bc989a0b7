"""docker/compose.yaml: services, devices, build targets, volumes and variables agree with
the Dockerfile, config/ and docker/rover.env.example; stop signals reach every node.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import ast
import re
from pathlib import Path

import pytest
import yaml

from test_docker_dockerfile import effective_user, instructions_of, stage, stages_of, substitute

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'


# ---------------------------------------------------------------- compose.yaml

def interpolate(value, environment=None):
    """Compose's ${VAR:-default} with an empty environment: the defaults."""
    if isinstance(value, str):
        return substitute(value, environment or {})
    if isinstance(value, list):
        return [interpolate(v, environment) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, environment) for k, v in value.items()}
    return value


@pytest.fixture(scope='module')
def compose():
    return interpolate(yaml.safe_load((DOCKER / 'compose.yaml').read_text()))


def seconds(duration: str) -> float:
    units = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600}
    total = 0.0
    for number, unit in re.findall(r'(\d+(?:\.\d+)?)(ms|s|m|h)', duration):
        total += float(number) * units[unit]
    assert total > 0, duration
    return total


def record_root_default() -> str:
    tree = ast.parse((REPO / 'src/rover/rover/graph.py').read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'record_command')
    names = [a.arg for a in function.args.args]
    defaults = dict(zip(names[len(names) - len(function.args.defaults):], function.args.defaults))
    return ast.literal_eval(defaults['root'])


def test_compose_services_devices_and_runtime_options(compose):
    services = compose['services']
    assert set(services) == {'rover', 'rover-hailo'}
    assert 'profiles' not in services['rover'] and 'hailo' in services['rover-hailo']['profiles']
    expected_devices = {'rover': {'/dev/rover_camera', '/dev/rover_arduino'},
                        'rover-hailo': {'/dev/rover_camera', '/dev/rover_arduino', '/dev/hailo0'}}
    for name, service in services.items():
        assert service['network_mode'] == 'host' and service['ipc'] == 'host'
        # systemd restarts it, except configuration errors (2) and a HailoRT mismatch (78);
        # Docker cannot skip exit codes; the image has tini as PID 1 already
        assert service['restart'] == 'no' and not service.get('init', False)
        assert service['stop_signal'] == 'SIGINT' and seconds(service['stop_grace_period']) >= 10
        assert service['platform'] == 'linux/arm64'
        host_paths = {d.split(':')[0] for d in service['devices']}
        container_paths = {d.split(':')[1] for d in service['devices']}
        assert host_paths == container_paths == expected_devices[name]
        assert 'ROS_DOMAIN_ID' in service['environment']
        assert all(str(g).isdigit() for g in service['group_add'])
        assert 'serial_port:=/dev/rover_arduino' in service['command']
        assert 'camera_source:=/dev/rover_camera' in service['command']
    assert 'backend:=hailo' in services['rover-hailo']['command']


def test_compose_builds_existing_targets_with_declared_args(compose):
    stages = stages_of(DOCKER / 'Dockerfile')
    for name, target in (('rover', 'runtime'), ('rover-hailo', 'hailo')):
        build = compose['services'][name]['build']
        assert (DOCKER / build['context']).resolve() == REPO
        assert (REPO / build['dockerfile']) == DOCKER / 'Dockerfile'
        assert build['target'] == target
        declared = {ins.rest.split('=')[0] for ins in instructions_of(stages, target, 'ARG')}
        assert set(build.get('args', {})) <= declared
    contexts = compose['services']['rover-hailo']['build']['additional_contexts']
    assert set(contexts) == {'hailo_pkgs'} and stage(stages, 'hailo_pkgs').base == 'scratch'


def test_compose_volumes_match_config_and_record_path(compose):
    config = yaml.safe_load((REPO / 'config/rover.yaml').read_text())
    model_dir = config['/**/policy']['ros__parameters']['model_dir']
    home = '/home/rover'
    for service in compose['services'].values():
        targets = {v.split(':')[1]: v.split(':')[0] for v in service['volumes']}
        assert any(model_dir.startswith(target + '/') for target in targets), model_dir
        bags = record_root_default().replace('~', home, 1)
        assert bags in targets, f'record:=true writes {bags}; no volume there'
    # the image's user is the one whose home that is
    stages = stages_of(DOCKER / 'Dockerfile')
    assert effective_user(stages, 'runtime') == 'rover'
    assert any(f'mkdir -p /opt/rover/models {home}/rover_bags' in ins.args
               for ins in instructions_of(stages, 'runtime', 'RUN'))


def test_compose_variables_are_documented_in_the_env_example():
    text = '\n'.join(line.split('#')[0] for line in (DOCKER / 'compose.yaml').read_text().splitlines())
    used = set(re.findall(r'\$\{(\w+)', text))
    documented = set(re.findall(r'^(\w+)=', (DOCKER / 'rover.env.example').read_text(), re.M))
    assert used and used <= documented, used - documented



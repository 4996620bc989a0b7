"""Checks of the deployment files in docker/ (no Docker engine runs here).

Static: the Dockerfiles parse, copy only files that exist and survive their
.dockerignore, pin their base image, keep PyTorch out of the car's image and run
as a non-root user; compose.yaml, the udev rules and the systemd units agree
with each other and with config/ and launch/. Functional: the entrypoint, the
HailoRT version check, the checklist's parsers and the host install script run
here against fakes.
"""
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'
DOCKERFILES = ('Dockerfile', 'Dockerfile.quantize')
RUNTIME_STAGES = ('runtime', 'hailo')      # what runs on the car
KNOWN_INSTRUCTIONS = {'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY',
                      'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL',
                      'HEALTHCHECK', 'SHELL'}


# ---------------------------------------------------------------- Dockerfile parsing

@dataclass
class Instruction:
    line: int
    keyword: str
    args: str
    flags: dict = field(default_factory=dict)   # leading --name=value options
    rest: str = ''                              # args without the flags


@dataclass
class Stage:
    index: int
    base: str          # image reference after ARG substitution, or a stage name
    name: str
    instructions: list


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped, as Docker reads them."""
    instructions, pending, start = [], '', 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith('#'):
            continue                      # comments (and parser directives), also inside continuations
        if not pending and not stripped:
            continue
        if not pending:
            start = number
        continued = stripped.endswith('\\')
        pending += (stripped[:-1].rstrip() if continued else stripped) + ' '
        if continued:
            continue
        keyword, _, args = pending.strip().partition(' ')
        assert keyword.upper() in KNOWN_INSTRUCTIONS, f'line {start}: unknown instruction {keyword!r}'
        assert keyword == keyword.upper(), f'line {start}: write instructions in upper case ({keyword})'
        assert not re.search(r'<<-?["\']?[A-Za-z]', args) or keyword not in ('RUN', 'COPY'), \
            f'line {start}: heredocs are not used here (this parser would misread them)'
        flags, rest = {}, args.strip()
        while rest.startswith('--'):
            token, _, rest = rest.partition(' ')
            name, _, value = token[2:].partition('=')
            flags.setdefault(name, []).append(value)
            rest = rest.strip()
        instructions.append(Instruction(start, keyword, args.strip(), flags, rest))
        pending = ''
    assert not pending, 'the file ends inside a line continuation'
    return instructions


def substitute(text: str, variables: dict) -> str:
    def value(match):
        name, default = match.group(1) or match.group(3), match.group(2)
        return variables.get(name) or (default or '')
    return re.sub(r'\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)', value, text)


def stages_of(path: Path) -> list[Stage]:
    instructions = parse_dockerfile(path.read_text())
    global_args, stages = {}, []
    for ins in instructions:
        if ins.keyword == 'ARG' and not stages:
            name, _, default = ins.rest.partition('=')
            global_args[name] = default.strip('"')
        elif ins.keyword == 'FROM':
            words = ins.rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == 'AS' else ''
            assert len(words) in (1, 3), f'{path.name}:{ins.line}: FROM image [AS name]'
            stages.append(Stage(len(stages), substitute(words[0], global_args), name, []))
        else:
            assert stages, f'{path.name}:{ins.line}: {ins.keyword} before the first FROM'
            stages[-1].instructions.append(ins)
    return stages


def stage(stages: list[Stage], name: str) -> Stage:
    matches = [s for s in stages if s.name == name]
    assert matches, f'no stage {name!r}'
    return matches[0]


def chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    names = {s.name: s for s in stages}
    result = [stage(stages, name)]
    while result[0].base in names:
        result.insert(0, names[result[0].base])
    return result


def instructions_of(stages, name, keyword=None):
    return [ins for s in chain(stages, name) for ins in s.instructions
            if keyword is None or ins.keyword == keyword]


# ---------------------------------------------------------------- .dockerignore

def dockerignore_rules(dockerfile: Path) -> list[tuple[bool, re.Pattern]]:
    """(exclude, pattern) from <Dockerfile>.dockerignore, which BuildKit prefers to the context's."""
    rules = []
    for line in (dockerfile.parent / f'{dockerfile.name}.dockerignore').read_text().splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        negate = line.startswith('!')
        pattern = line[1:] if negate else line
        pattern = pattern.strip('/')
        regex = ''
        i = 0
        while i < len(pattern):
            if pattern.startswith('**', i):
                regex += '.*'
                i += 2
                if pattern.startswith('/', i):
                    regex += '/?'
                    i += 1
                continue
            char = pattern[i]
            regex += '[^/]*' if char == '*' else '[^/]' if char == '?' else re.escape(char)
            i += 1
        rules.append((not negate, re.compile(f'^{regex}$')))
    return rules


def ignored(relative: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.strip('/').split('/')
    prefixes = ['/'.join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for exclude, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = exclude
    return excluded


# ---------------------------------------------------------------- Dockerfile tests

@pytest.mark.parametrize('name', DOCKERFILES)
def test_dockerfile_parses_with_valid_forms(name):
    stages = stages_of(DOCKER / name)
    assert stages
    for s in stages:
        for ins in s.instructions:
            if ins.keyword in ('CMD', 'ENTRYPOINT', 'SHELL') and ins.rest.startswith('['):
                value = json.loads(ins.rest)
                assert isinstance(value, list) and all(isinstance(v, str) for v in value), ins
            if ins.keyword == 'SHELL':
                assert ins.rest.startswith('['), 'SHELL takes the JSON form'
            if ins.keyword == 'STOPSIGNAL':
                assert re.fullmatch(r'SIG[A-Z0-9]+', ins.rest), ins
    names = [s.name for s in stages if s.name]
    assert len(names) == len(set(names)), 'stage names repeat'


def test_parser_joins_continuations_and_drops_comments():
    parsed = parse_dockerfile('FROM a:1 AS x\n# c\nRUN one \\\n  # inside\n  && two\nCOPY --from=x --chown=1 /a /b\n')
    assert [(i.keyword, i.line) for i in parsed] == [('FROM', 1), ('RUN', 3), ('COPY', 6)]
    assert parsed[1].args == 'one && two'
    assert parsed[2].flags == {'from': ['x'], 'chown': ['1']} and parsed[2].rest == '/a /b'
    with pytest.raises(AssertionError):
        parse_dockerfile('FROM a:1\nRUN x \\\n')
    with pytest.raises(AssertionError):
        parse_dockerfile('FROM a:1\nFETCH x\n')


@pytest.mark.parametrize('name', DOCKERFILES)
def test_base_images_are_pinned_to_an_exact_tag(name):
    stages = stages_of(DOCKER / name)
    seen = set()
    for s in stages:
        if s.base in seen or s.base == 'scratch':
            seen.add(s.name)
            continue
        reference = s.base.split('@', 1)[0]
        repository, _, tag = reference.rpartition(':') if ':' in reference.split('/')[-1] else (reference, '', '')
        assert repository and tag, f'{name}: FROM {s.base} has no tag'
        assert tag != 'latest', f'{name}: FROM {s.base} uses latest'
        if '@' in s.base:
            assert re.fullmatch(r'sha256:[0-9a-f]{64}', s.base.split('@', 1)[1]), s.base
        seen.add(s.name)
    # one base image for every Dockerfile, so a digest pin is made in one way everywhere
    assert stages[0].base == stages_of(DOCKER / 'Dockerfile')[0].base


@pytest.mark.parametrize('name', DOCKERFILES)
def test_copy_sources_exist_in_the_repo_and_in_the_build_context(name):
    dockerfile = DOCKER / name
    rules = dockerignore_rules(dockerfile)
    stage_names = {s.name for s in stages_of(dockerfile)}
    checked = 0
    for s in stages_of(dockerfile):
        for ins in s.instructions:
            mounts = [m for m in ins.flags.get('mount', []) if 'from=' in m]
            for mount in mounts:
                source = dict(kv.split('=', 1) for kv in mount.split(',') if '=' in kv)['from']
                assert source in stage_names, f'{name}:{ins.line}: mount from unknown stage {source}'
            if ins.keyword not in ('COPY', 'ADD'):
                continue
            if 'from' in ins.flags:
                assert ins.flags['from'][0] in stage_names, f'{name}:{ins.line}: unknown stage'
                continue
            *sources, _destination = ins.rest.split()
            assert sources, f'{name}:{ins.line}: COPY needs a source and a destination'
            for source in sources:
                matches = [source] if source == '.' else [
                    str(p.relative_to(REPO)) for p in REPO.glob(source)]
                assert matches and all((REPO / m).exists() for m in matches), \
                    f'{name}:{ins.line}: {source} is not in the repository'
                for match in matches:
                    if match != '.':
                        assert not ignored(match, rules), \
                            f'{name}:{ins.line}: {match} is excluded by {name}.dockerignore'
                checked += 1
    assert checked


def test_build_context_keeps_the_workspace_and_drops_the_bulk():
    rules = dockerignore_rules(DOCKER / 'Dockerfile')
    packages = [p.parent for p in REPO.glob('src/*/package.xml')]
    assert packages
    for package in packages:
        for path in package.rglob('*'):
            relative = str(path.relative_to(REPO))
            if path.is_file() and '/test/' not in relative + '/' and '__pycache__' not in relative:
                assert not ignored(relative, rules), f'{relative} would be missing from the image build'
    for needed in ('config/rover.yaml', 'config/hailo.yaml', 'launch/bringup.launch.py'):
        assert not ignored(needed, rules), needed
    for bulk in ('.venv/lib/x.py', 'build/rover/x', 'install/setup.bash', 'log/latest', '.git/HEAD',
                 'tests/test_docker.py', 'docker/Dockerfile', 'src/rover/test/test_graph.py',
                 'src/rover/rover/__pycache__/graph.cpython-312.pyc'):
        assert ignored(bulk, rules), f'{bulk} would be sent to the builder'


def test_dockerignore_matcher_follows_docker_semantics():
    rules = [(True, re.compile('^[^/]*$')), (False, re.compile('^src$')), (True, re.compile('^src/[^/]*/test$'))]
    assert ignored('README.md', rules)
    assert not ignored('src/a/setup.py', rules)
    assert ignored('src/a/test/test_x.py', rules)
    assert not ignored('src/a/testing.py', rules)


def test_runtime_image_installs_no_torch():
    stages = stages_of(DOCKER / 'Dockerfile')
    for name in RUNTIME_STAGES:
        for ins in instructions_of(stages, name, 'RUN'):
            for command in re.split(r'&&|;|\|\|', ins.args):
                words = command.split()
                if 'pip' in ' '.join(words[:2]) and 'install' in words:
                    assert not any(re.match(r'torch\b', w) for w in words), f'{name}: {command}'
                    for index, word in enumerate(words):
                        if word in ('-r', '--requirement'):
                            copied = [c for c in instructions_of(stages, name, 'COPY')
                                      if c.rest.split()[-1] == words[index + 1]]
                            assert copied, f'{words[index + 1]} is not copied into {name}'
                            requirements = REPO / copied[0].rest.split()[0]
                            listed = [line.split('#')[0].strip() for line in requirements.read_text().splitlines()]
                            assert not any(re.match(r'torch\b', line) for line in listed), requirements
                if 'apt-get' in words and 'install' in words:
                    assert not any('torch' in w for w in words), command
        # the image build itself asserts that `import torch` fails
        assert any('import torch' in ins.args and 'exit 1' in ins.args
                   for ins in instructions_of(stages, name, 'RUN'))
    build = stage(stages, 'build')
    colcon = [ins.args for ins in build.instructions if 'colcon build' in ins.args]
    assert colcon and '--packages-skip rover_quantize' in colcon[0]
    assert any('rosdep install' in ins.args for ins in build.instructions)
    skip_keys = [ins.rest for ins in instructions_of(stages, 'runtime', 'ARG') if ins.rest.startswith('ROSDEP_SKIP_KEYS=')]
    assert skip_keys and 'python3-torch' in skip_keys[0]
    assert 'torch' not in (DOCKER / 'requirements-pi.txt').read_text().split('No PyTorch')[1]


def test_workspace_path_is_the_same_from_build_to_entrypoint():
    stages = stages_of(DOCKER / 'Dockerfile')
    colcon = next(ins.args for ins in stage(stages, 'build').instructions if 'colcon build' in ins.args)
    install_base = re.search(r'--install-base (\S+)', colcon).group(1)
    copied = [ins.rest.split() for ins in instructions_of(stages, 'runtime', 'COPY') if ins.flags.get('from') == ['build']]
    assert copied == [[install_base, install_base]], 'setup files are generated for the install base'
    rosdep = next(ins.args for ins in instructions_of(stages, 'runtime', 'RUN') if 'rosdep install' in ins.args)
    # colcon's isolated layout puts package.xml under <base>/<pkg>/share/<pkg>/: crawl the whole base
    assert re.search(rf'--from-paths {re.escape(install_base)} ', rosdep)
    assert '--dependency-types exec' in rosdep
    env = ' '.join(ins.rest for ins in instructions_of(stages, 'runtime', 'ENV'))
    assert f'ROVER_WS={install_base}' in env
    assert f'-f {install_base}/setup.bash' in (DOCKER / 'rover-entrypoint.sh').read_text()


def effective_user(stages, name) -> str:
    users = instructions_of(stages, name, 'USER')
    return users[-1].rest if users else 'root'


@pytest.mark.parametrize('dockerfile,name', [('Dockerfile', 'runtime'), ('Dockerfile', 'hailo'),
                                             ('Dockerfile.quantize', 'quantize')])
def test_images_run_as_a_non_root_user(dockerfile, name):
    stages = stages_of(DOCKER / dockerfile)
    user = effective_user(stages, name)
    assert user not in ('root', '0', '') and not user.startswith('0:'), f'{name} runs as {user}'
    created = [ins.args for ins in instructions_of(stages, name, 'RUN') if re.search(rf'useradd .*\b{user}\b', ins.args)]
    assert created, f'user {user} is never created in {name}'
    if dockerfile == 'Dockerfile':
        assert re.search(r'--groups dialout,video\b', created[0]), 'the rover user needs dialout and video'


def test_runtime_entrypoint_launches_the_rover():
    stages = stages_of(DOCKER / 'Dockerfile')
    for name in RUNTIME_STAGES:
        entrypoint = instructions_of(stages, name, 'ENTRYPOINT')[-1]
        program = json.loads(entrypoint.rest)[0]
        copies = [c.rest.split() for c in instructions_of(stages, name, 'COPY') if 'from' not in c.flags]
        sources = [src for *srcs, dst in copies for src in srcs if dst == program]
        assert sources == ['docker/rover-entrypoint.sh']
        assert instructions_of(stages, name, 'STOPSIGNAL')[-1].rest == 'SIGINT'
    script = (DOCKER / 'rover-entrypoint.sh').read_text()
    assert 'exec ros2 launch rover bringup.launch.py' in script
    assert '/opt/ros/${ROS_DISTRO}/setup.bash' in script and '${ROVER_WS}/setup.bash' in script
    hailo_env = [ins.rest for ins in instructions_of(stages, 'hailo', 'ENV')]
    assert 'ROVER_BACKEND=hailo' in hailo_env


def test_quantize_image_has_cpu_torch_from_the_pinned_requirement():
    stages = stages_of(DOCKER / 'Dockerfile.quantize')
    runs = ' '.join(ins.args for ins in instructions_of(stages, 'quantize', 'RUN'))
    assert '-r /tmp/requirements/requirements-torch.txt' in runs
    assert 'https://download.pytorch.org/whl/cpu' in runs and 'TARGETARCH' in runs
    assert 'torch.version.cuda is None' in runs
    assert (DOCKER / 'requirements-torch.txt').read_text().split().count('torch==2.13.0') == 1
    names = [line.split('#')[0].strip() for line in (DOCKER / 'requirements-quantize.txt').read_text().splitlines()]
    names = [name for name in names if name]
    assert names and not any('torch' in name.lower() for name in names)
    constraints = (DOCKER / 'constraints-dev.txt').read_text()
    for name in names:
        if name:
            assert re.search(rf'^{re.escape(name)}==', constraints, re.M | re.I), f'{name} is not pinned'


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
        assert service['restart'] == 'unless-stopped'
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


# ---------------------------------------------------------------- udev rules

UDEV_MATCH = {'==', '!='}
UDEV_ASSIGN = {'=', '+=', '-=', ':='}
UDEV_KEY = re.compile(r'(ACTION|DEVPATH|KERNEL|KERNELS|NAME|SYMLINK|SUBSYSTEM|SUBSYSTEMS|DRIVER|DRIVERS|'
                      r'ATTR|ATTRS|SYSCTL|ENV|CONST|TAG|TAGS|TEST|PROGRAM|RESULT|OWNER|GROUP|MODE|LABEL|'
                      r'GOTO|IMPORT|OPTIONS|RUN|SECLABEL)(\{[^}]+\})?$')
UDEV_TOKEN = re.compile(r'\s*([A-Z]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse_udev_rules(text: str) -> list[list[tuple[str, str, str]]]:
    rules, pending = [], ''
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith('#')):
            continue
        if line.endswith('\\'):
            pending += line[:-1] + ' '
            continue
        line, pending = pending + line, ''
        tokens, position = [], 0
        while position < len(line):
            match = UDEV_TOKEN.match(line, position)
            assert match, f'line {number}: cannot parse {line[position:]!r}'
            key, operator, value = match.group(1), match.group(2), match.group(3)
            assert UDEV_KEY.match(key), f'line {number}: unknown key {key}'
            base = key.split('{')[0]
            if base in ('SUBSYSTEM', 'SUBSYSTEMS', 'KERNEL', 'KERNELS', 'DRIVERS', 'ATTRS', 'ACTION', 'DEVPATH'):
                assert operator in UDEV_MATCH, f'line {number}: {key} only matches'
            if base in ('SYMLINK', 'GROUP', 'MODE', 'OWNER', 'RUN'):
                assert operator in UDEV_ASSIGN, f'line {number}: {key}{operator} does not assign'
            if base == 'MODE':
                assert re.fullmatch(r'0[0-7]{3}', value), f'line {number}: MODE {value}'
            tokens.append((key, operator, value))
            position = match.end()
            if match.group(4) == '':
                break
        assert position >= len(line.rstrip()), f'line {number}: trailing text'
        rules.append(tokens)
    return rules


@dataclass
class Device:
    subsystem: str
    kernel: str
    attrs: dict            # ATTR{...} of the device itself
    parents: list          # [{'KERNELS': .., 'SUBSYSTEMS': .., 'DRIVERS': .., 'ATTRS': {...}}], nearest first


def udev_apply(rules, device: Device) -> dict:
    """What the rules do to one device: its symlinks, group and mode (udev's matching, simplified)."""
    def matches(pattern, value):
        return value is not None and any(fnmatch.fnmatchcase(value, p) for p in pattern.split('|'))

    result = {'symlinks': set(), 'group': None, 'mode': None}
    for rule in rules:
        own = {'SUBSYSTEM': device.subsystem, 'KERNEL': device.kernel}
        parent_keys, ok = [], True
        for key, operator, value in rule:
            if operator not in UDEV_MATCH:
                continue
            base, _, attr = key.partition('{')
            attr = attr.rstrip('}')
            if base in ('SUBSYSTEMS', 'KERNELS', 'DRIVERS', 'ATTRS'):
                parent_keys.append((base, attr, operator, value))
                continue
            actual = device.attrs.get(attr) if base == 'ATTR' else own.get(base)
            ok &= matches(value, actual) == (operator == '==')
        if ok and parent_keys:
            # every "S" key must match on one and the same device up the chain (the device itself included)
            chain_ = [{'KERNELS': device.kernel, 'SUBSYSTEMS': device.subsystem, 'DRIVERS': None,
                       'ATTRS': device.attrs}] + device.parents
            ok = any(all(matches(value, (node['ATTRS'].get(attr) if base == 'ATTRS' else node.get(base)))
                         == (operator == '==') for base, attr, operator, value in parent_keys)
                     for node in chain_)
        if not ok:
            continue
        for key, operator, value in rule:
            if key == 'SYMLINK' and operator in ('+=', '=', ':='):
                result['symlinks'] |= set(value.split())
            elif key == 'GROUP':
                result['group'] = value
            elif key == 'MODE':
                result['mode'] = value
    return result


def usb_tty(kernel, vendor, product, driver):
    return Device('tty', kernel, {}, [
        {'KERNELS': '1-1.2:1.0', 'SUBSYSTEMS': 'usb', 'DRIVERS': driver, 'ATTRS': {}},
        {'KERNELS': '1-1.2', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'usb',
         'ATTRS': {'idVendor': vendor, 'idProduct': product, 'serial': '7573530303035'}}])


def uvc_node(kernel, index):
    return Device('video4linux', kernel, {'index': str(index), 'name': 'HD USB Camera'}, [
        {'KERNELS': '3-1:1.0', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'uvcvideo', 'ATTRS': {}},
        {'KERNELS': '3-1', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'usb', 'ATTRS': {'idVendor': '32e4', 'idProduct': '9230'}}])


@pytest.fixture(scope='module')
def udev_rules():
    return parse_udev_rules((DOCKER / '99-rover.rules').read_text())


@pytest.mark.parametrize('device,symlink,group', [
    (usb_tty('ttyACM0', '2341', '0043', 'cdc_acm'), 'rover_arduino', 'dialout'),     # Uno R3
    (usb_tty('ttyUSB0', '1a86', '7523', 'ch341'), 'rover_arduino', 'dialout'),       # Nano clone
    (usb_tty('ttyUSB0', '0403', '6001', 'ftdi_sio'), 'rover_arduino', 'dialout'),    # FTDI
    (usb_tty('ttyUSB1', '10c4', 'ea60', 'cp210x'), None, None),                      # a GPS, say
    (Device('tty', 'ttyAMA0', {}, [{'KERNELS': '107d001000.serial', 'SUBSYSTEMS': 'amba',
                                    'DRIVERS': 'uart-pl011', 'ATTRS': {}}]), None, None),
    (uvc_node('video0', 0), 'rover_camera', 'video'),
    (uvc_node('video1', 1), None, None),                                             # UVC metadata node
    (Device('video4linux', 'video20', {'index': '0'}, [{'KERNELS': '1000880000.pisp_be', 'SUBSYSTEMS': 'platform',
                                                        'DRIVERS': 'pispbe', 'ATTRS': {}}]), None, None),
    (Device('hailo_chardev', 'hailo0', {}, [{'KERNELS': '0001:01:00.0', 'SUBSYSTEMS': 'pci',
                                              'DRIVERS': 'hailo', 'ATTRS': {}}]), None, 'video'),
])
def test_udev_rules_name_the_rover_devices_and_nothing_else(udev_rules, device, symlink, group):
    result = udev_apply(udev_rules, device)
    assert result['symlinks'] == ({symlink} if symlink else set())
    assert result['group'] == group
    if group:
        assert result['mode'] == '0660'


def test_udev_parser_rejects_malformed_lines():
    parse_udev_rules('SUBSYSTEM=="tty", SYMLINK+="x"\n')
    for bad in ('SUBSYSTEM="tty"', 'SUBSYSTEM=="tty" SYMLINK+="x"', 'FOO=="x"',
                'SUBSYSTEM=="tty", MODE="660"', 'SUBSYSTEM=="tty", SYMLINK+=x'):
        with pytest.raises(AssertionError):
            parse_udev_rules(bad + '\n')


def test_configs_use_the_udev_names(udev_rules, compose):
    created = {'/dev/' + value for rule in udev_rules for key, op, value in rule if key == 'SYMLINK'}
    assert created == {'/dev/rover_arduino', '/dev/rover_camera'}
    config = yaml.safe_load((REPO / 'config/rover.yaml').read_text())
    assert config['/**/bridge']['ros__parameters']['port'] in created
    for service in compose['services'].values():
        hosts = {d.split(':')[0] for d in service['devices']} - {'/dev/hailo0'}
        assert hosts <= created


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


# ---------------------------------------------------------------- check_hailort.py

def run_check(tmp_path, *args, library=None, sysfs='4.20.0', env_version=None, device='/dev/null',
              module_source=None):
    fake = tmp_path / 'site'
    if library is not None or module_source is not None:
        (fake / 'hailo_platform').mkdir(parents=True, exist_ok=True)
        (fake / 'hailo_platform' / '__init__.py').write_text(
            module_source if module_source is not None else f'__version__ = "{library}"\n')
    sysfs_file = tmp_path / 'version'
    if sysfs is not None:
        sysfs_file.write_text(sysfs + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'HAILORT_HOST_VERSION')}
    env['PYTHONPATH'] = str(fake)
    if env_version is not None:
        env['HAILORT_HOST_VERSION'] = env_version
    return subprocess.run([sys.executable, str(DOCKER / 'check_hailort.py'), '--device', device,
                           '--sysfs-version', str(sysfs_file), *args],
                          capture_output=True, text=True, env=env, timeout=30)


def test_hailort_check_passes_when_library_matches_driver(tmp_path):
    result = run_check(tmp_path, '--print', library='4.20.0', sysfs='4.20.0')
    assert result.returncode == 0, result.stderr
    assert 'HailoRT 4.20.0' in result.stdout and 'match' in result.stdout


def test_hailort_check_refuses_a_mismatch_with_both_versions(tmp_path):
    result = run_check(tmp_path, library='4.23.0', sysfs='4.20.0')
    assert result.returncode == 78
    assert 'mismatch' in result.stderr and '4.20.0' in result.stderr and '4.23.0' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, 'one clear line, no traceback'


def test_hailort_check_uses_the_env_version_when_sysfs_is_unreadable(tmp_path):
    assert run_check(tmp_path, library='4.21.0', sysfs=None, env_version='4.21.0').returncode == 0
    result = run_check(tmp_path, library='4.21.0', sysfs=None, env_version='hailort 4.20.0-1')
    assert result.returncode == 78 and '4.20.0' in result.stderr
    result = run_check(tmp_path, library='4.21.0', sysfs=None)
    assert result.returncode == 78 and 'unknown' in result.stderr and 'modinfo' in result.stderr


def test_hailort_check_refuses_without_a_usable_device(tmp_path):
    result = run_check(tmp_path, library='4.20.0', device=str(tmp_path / 'hailo0'))
    assert result.returncode == 78 and 'does not exist' in result.stderr
    regular = tmp_path / 'not_a_device'
    regular.write_text('')
    result = run_check(tmp_path, library='4.20.0', device=str(regular))
    assert result.returncode == 78 and 'not a character device' in result.stderr


def test_hailort_check_reports_a_library_that_does_not_load(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 78 and 'does not load' in result.stderr and 'hailo_platform' in result.stderr
    result = run_check(tmp_path, module_source='raise ImportError("libhailort.so.4.20.0: cannot open shared object file")\n')
    assert result.returncode == 78 and 'libhailort.so.4.20.0' in result.stderr
    assert 'Traceback' not in result.stderr


def test_hailort_version_parsing():
    sys.path.insert(0, str(DOCKER))
    try:
        import check_hailort
    finally:
        sys.path.remove(str(DOCKER))
    assert check_hailort.parse_version('HailoRT-CLI version 4.20.0') == (4, 20, 0)
    assert check_hailort.parse_version('v4.23.0\n') == (4, 23, 0)
    assert check_hailort.parse_version('4.18.0-1') == (4, 18, 0)
    assert check_hailort.parse_version('4.20') is None


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
    assert words[:4] == ['ros2', 'launch', 'rover', 'bringup.launch.py']
    return words[4:]


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
    result = entrypoint(fake_ros, 'backend:=cpu_int8', 'oops')
    assert result.returncode == 2 and "'oops' is not a launch argument" in result.stderr
    result = entrypoint(fake_ros, ROS_SETUP=str(tmp_path / 'none.bash'))
    assert result.returncode == 1 and 'no ROS 2' in result.stderr
    result = entrypoint(fake_ros, ROVER_WS=str(tmp_path / 'none'))
    assert result.returncode == 1 and 'no workspace' in result.stderr


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
esac
'''
FAKE_PYTHON = '''#!/bin/sh
case "$*" in
    *DiagnosticArray*) echo "level=0 bridge: link up handshake=ok firmware=1"; exit 0 ;;
    *manifest.json*) echo 1667 ;;
    *rover_policy.policy_node*--benchmark*)
        echo "$*" >> "$FAKE_LOG"
        echo "bench inference: backend=cpu_int8 image=640x360 chunk=100 iterations=1 threads=4 mean_ms=150.00 p50_ms=149.00 p95_ms=160.00 p99_ms=171.33 fps=6.7" ;;
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

"""Dockerfiles and their .dockerignore files: they parse, copy only files that exist and
survive the ignore rules, pin their base image, keep PyTorch out of the car's image, run as a
non-root user, and start the rover through tini and the entrypoint.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


def image_entrypoint(name: str = 'runtime') -> list[str]:
    return json.loads(instructions_of(stages_of(DOCKER / 'Dockerfile'), name, 'ENTRYPOINT')[-1].rest)


def test_runtime_entrypoint_launches_the_rover_under_tini():
    stages = stages_of(DOCKER / 'Dockerfile')
    for name in RUNTIME_STAGES:
        entrypoint = instructions_of(stages, name, 'ENTRYPOINT')[-1]
        # tini as PID 1 reaps and forwards signals (tests/test_docker_scripts.py runs it)
        tini, *options, program = json.loads(entrypoint.rest)
        assert tini == '/usr/bin/tini' and options == ['--'], entrypoint.rest
        installs = ' '.join(ins.args for ins in instructions_of(stages, name, 'RUN') if 'apt-get install' in ins.args)
        assert re.search(r'\btini\b', installs), 'tini is not installed'
        copies = [c.rest.split() for c in instructions_of(stages, name, 'COPY') if 'from' not in c.flags]
        sources = [src for *srcs, dst in copies for src in srcs if dst == program]
        assert sources == ['docker/rover-entrypoint.sh']
        assert instructions_of(stages, name, 'STOPSIGNAL')[-1].rest == 'SIGINT'
    script = (DOCKER / 'rover-entrypoint.sh').read_text()
    assert 'ros2 launch --noninteractive rover bringup.launch.py "${launch_args[@]}" &' in script
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



"""Which nodes the rover runs, with which parameters: the one description
shared by the launch files (launch_ros, on the Pi) and by `make demo` (plain
processes, anywhere). Launch files only translate it into launch actions.
"""
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

from rover_policy.backends import BACKENDS  # the policy's own list: one definition

MODES = ('manual', 'assisted', 'autonomous')   # rover_arbiter.arbiter.MODES (checked by a test)
TELEOPS = ('none', 'joy')
# The board behind the sim's link (rover_sim.run_link.ARDUINOS, checked by a test): the Python
# twin of the firmware, or the firmware itself on an emulated ATmega328P (simavr).
ARDUINOS = ('twin', 'firmware')
# What a training set and a post-mortem need: the camera, what the car did, the
# command applied and who produced it, the human's and the policy's own commands,
# the mode, the e-stop, episode markers and diagnostics. No raw images (size).
RECORD_TOPICS = ('camera/image_raw/compressed', 'camera/camera_info', 'rover/state', 'rover/cmd',
                 'rover/cmd_source', 'teleop/cmd', 'policy/cmd', 'rover/mode', 'rover/estop',
                 'rover/episode', '/diagnostics')


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    module: str | None                            # `python -m` form; None: not ours (C++ nodes)
    params_files: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # applied after the files
    respawn: bool = False
    remappings: dict = field(default_factory=dict)


def config_dir() -> Path:
    """share/rover/config when installed, else the repository's config/."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory('rover')) / 'config'
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[3] / 'config'


def control_rate_hz() -> float:
    """The rate at which commands reach the car: the arbiter's and the bridge's (config/rover.yaml,
    checked equal by the tests). The policy runs at its model's rate (the manifest's)."""
    import yaml
    with open(config_dir() / 'rover.yaml') as f:
        return float(yaml.safe_load(f)['/**/arbiter']['ros__parameters']['rate_hz'])


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'not a boolean: {value!r}')


def rover_nodes(*, backend: str = '', model_dir: str = '', serial_port: str = '',
                camera_source: str = '', autonomy='', mode: str = '', teleop: str = 'none',
                sim: bool = False, namespace: str = '', arduino: str = '') -> list[NodeSpec]:
    """The node graph; empty arguments keep the YAML files' values.

    `autonomy` true starts in autonomous mode unless `mode` names another; the
    starting mode is otherwise config/rover.yaml's, manual. `arduino` (sim only) picks
    the board behind the sim's link: twin (default) or firmware (emulated, simavr).
    """
    if backend and backend not in BACKENDS:
        raise ValueError(f'backend {backend!r} is not one of {", ".join(BACKENDS)}')
    if mode and mode not in MODES:
        raise ValueError(f'mode {mode!r} is not one of {", ".join(MODES)}')
    if (teleop or 'none') not in TELEOPS:
        raise ValueError(f'teleop {teleop!r} is not one of {", ".join(TELEOPS)}')
    if arduino and arduino not in ARDUINOS:
        raise ValueError(f'arduino {arduino!r} is not one of {", ".join(ARDUINOS)}')
    if arduino not in ('', 'twin') and not sim:  # a real car has its real board
        raise ValueError(f'arduino {arduino!r} needs the simulated rover (sim)')
    if autonomy != '' and _parse_bool(autonomy) and not mode:  # an explicit mode wins
        mode = 'autonomous'
    cfg = config_dir()
    files = [str(cfg / 'rover.yaml')]
    if backend == 'hailo':
        files.append(str(cfg / 'hailo.yaml'))
    if sim:
        files.append(str(cfg / 'sim.yaml'))

    policy = {}
    if backend:
        policy['backend'] = backend
    if model_dir:
        policy['model_dir'] = os.path.expanduser(model_dir)
    bridge = {'port': serial_port} if serial_port else {}
    arbiter = {'mode': mode} if mode else {}

    nodes = []
    if sim:
        # the simulated world stands in for the camera and the Arduino at once; its
        # pty link is this run's own, so two sims never open each other's board
        from rover_sim.run_link import run_link_path
        link = serial_port or run_link_path(namespace)
        # a latch of its own too: an e-stop left in one sim run must not latch the next
        bridge = {'port': link, 'estop_state_file': f'{link}.estop'}
        sim_params = {'serial_link': link, **({'arduino': arduino} if arduino else {})}
        nodes.append(NodeSpec('rover_sim', 'sim_node', 'sim', 'rover_sim.sim_node', files, sim_params))
    else:
        camera = {'source': camera_source} if camera_source else {}
        nodes.append(NodeSpec('rover_camera', 'camera_node', 'camera', 'rover_camera.camera_node',
                              files, camera, respawn=True))
    # If the policy or the arbiter dies, the bridge's cmd_timeout puts the car in
    # neutral; neither is respawned blindly: a crash loop would hide the reason,
    # and a respawned arbiter must not come back in autonomous mode by itself.
    nodes.append(NodeSpec('rover_policy', 'policy_node', 'policy', 'rover_policy.policy_node',
                          files, policy))
    nodes.append(NodeSpec('rover_arbiter', 'arbiter_node', 'arbiter', 'rover_arbiter.arbiter_node',
                          files, arbiter))
    # The bridge restarts with its e-stop latch (a state file), so a respawn never clears it.
    nodes.append(NodeSpec('rover_bridge', 'bridge_node', 'bridge', 'rover_bridge.bridge_node',
                          files, bridge, respawn=True))
    if teleop == 'joy':
        joy_files = [str(cfg / 'teleop_joy.yaml')]
        nodes.append(NodeSpec('joy', 'joy_node', 'joy', None, joy_files, respawn=True))
        nodes.append(NodeSpec('teleop_twist_joy', 'teleop_node', 'teleop_twist_joy', None, joy_files,
                              respawn=True, remappings={'cmd_vel': 'teleop/cmd'}))
    return nodes


def record_command(root: str = '~/rover_bags', now: datetime.datetime | None = None,
                   namespace: str = '') -> list[str]:
    """`ros2 bag record` of what calibration and debugging need, MCAP, dated folder."""
    stamp = (now or datetime.datetime.now()).strftime('%Y-%m-%d_%H-%M-%S')
    out = os.path.join(os.path.expanduser(root), f'rover_{stamp}')
    ns = namespace.strip('/')
    topics = [t if t.startswith('/') or not ns else f'/{ns}/{t}' for t in RECORD_TOPICS]
    return ['ros2', 'bag', 'record', '--storage', 'mcap', '--output', out, *topics]

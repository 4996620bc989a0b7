"""Which nodes the rover runs, with which parameters: the one description
shared by the launch files (launch_ros, on the Pi) and by `make demo` (plain
processes, anywhere). Launch files only translate it into launch actions.
"""
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ('cpu_int8', 'cpu_fp32', 'hailo')
RECORD_TOPICS = ('camera/image_raw/compressed', 'rover/state', 'rover/cmd', '/diagnostics')


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    module: str                                   # `python -m` form of the executable
    params_files: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # applied after the files
    respawn: bool = False


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
                camera_source: str = '', autonomy='', sim: bool = False) -> list[NodeSpec]:
    """The node graph; empty arguments keep the YAML files' values."""
    if backend and backend not in BACKENDS:
        raise ValueError(f'backend {backend!r} is not one of {", ".join(BACKENDS)}')
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
    if autonomy != '':
        policy['autonomy'] = _parse_bool(autonomy)
    bridge = {'port': serial_port} if serial_port else {}

    nodes = []
    if sim:
        # the simulated world stands in for the camera and the Arduino at once
        nodes.append(NodeSpec('rover_sim', 'sim_node', 'sim', 'rover_sim.sim_node', files))
    else:
        camera = {'source': camera_source} if camera_source else {}
        nodes.append(NodeSpec('rover_camera', 'camera_node', 'camera', 'rover_camera.camera_node',
                              files, camera, respawn=True))
    # If the policy dies, the bridge's cmd_timeout puts the car in neutral, so
    # it is not respawned blindly: a crash loop would hide the reason.
    nodes.append(NodeSpec('rover_policy', 'policy_node', 'policy', 'rover_policy.policy_node',
                          files, policy))
    nodes.append(NodeSpec('rover_bridge', 'bridge_node', 'bridge', 'rover_bridge.bridge_node',
                          files, bridge, respawn=True))
    return nodes


def record_command(root: str = '~/rover_bags', now: datetime.datetime | None = None,
                   namespace: str = '') -> list[str]:
    """`ros2 bag record` of what calibration and debugging need, MCAP, dated folder."""
    stamp = (now or datetime.datetime.now()).strftime('%Y-%m-%d_%H-%M-%S')
    out = os.path.join(os.path.expanduser(root), f'rover_{stamp}')
    ns = namespace.strip('/')
    topics = [t if t.startswith('/') or not ns else f'/{ns}/{t}' for t in RECORD_TOPICS]
    return ['ros2', 'bag', 'record', '--storage', 'mcap', '--output', out, *topics]

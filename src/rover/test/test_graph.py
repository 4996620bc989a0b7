"""The node graph the launch files and the demo share, checked without launch_ros."""
import datetime
import importlib.util
from pathlib import Path

import pytest
import yaml

from rover.graph import RECORD_TOPICS, config_dir, control_rate_hz, record_command, rover_nodes

REPO = Path(__file__).resolve().parents[3]


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def test_config_files_exist_and_use_namespace_wildcards():
    for name in ('rover.yaml', 'sim.yaml', 'hailo.yaml'):
        data = load(config_dir() / name)
        assert data, name
        for key, section in data.items():
            assert key.startswith('/**/'), f'{name}: {key} would not match under a namespace'
            assert set(section) == {'ros__parameters'}


def test_pi_graph_defaults():
    nodes = rover_nodes()
    assert [n.name for n in nodes] == ['camera', 'policy', 'arbiter', 'bridge']
    assert [n.module for n in nodes] == [
        'rover_camera.camera_node', 'rover_policy.policy_node', 'rover_arbiter.arbiter_node',
        'rover_bridge.bridge_node']
    for node in nodes:
        assert node.params_files == [str(config_dir() / 'rover.yaml')]
        assert node.overrides == {}
    respawn = {n.name: n.respawn for n in nodes}
    assert respawn == {'camera': True, 'policy': False, 'arbiter': False, 'bridge': True}
    # nothing drives at start: the arbiter starts in manual, where only a human command moves the car
    cfg = load(config_dir() / 'rover.yaml')
    assert cfg['/**/arbiter']['ros__parameters']['mode'] == 'manual'
    assert 'autonomy' not in cfg['/**/policy']['ros__parameters']


def test_pi_config_is_30_hz_640x360_with_4_threads():
    cfg = load(config_dir() / 'rover.yaml')
    cam = cfg['/**/camera']['ros__parameters']
    assert (cam['width'], cam['height'], cam['fps']) == (640, 360, 30.0)
    pol = cfg['/**/policy']['ros__parameters']
    assert pol['threads'] == 4 and pol['backend'] == 'cpu_int8'
    # one control rate: the policy runs at its model's (manifest) rate, commands reach the car at
    # the arbiter's, which is the bridge's
    assert 'control_rate_hz' not in pol
    assert cfg['/**/bridge']['ros__parameters']['rate_hz'] == cfg['/**/arbiter']['ros__parameters']['rate_hz']
    assert control_rate_hz() == 30.0


def test_launch_arguments_become_overrides():
    nodes = {n.name: n for n in rover_nodes(
        backend='cpu_fp32', model_dir='~/models/a', serial_port='/dev/ttyACM1',
        camera_source='gst:libcamerasrc ! appsink', autonomy='true')}
    assert nodes['policy'].overrides['backend'] == 'cpu_fp32'
    assert nodes['policy'].overrides['model_dir'] == str(Path('~/models/a').expanduser())
    assert nodes['arbiter'].overrides == {'mode': 'autonomous'}
    assert nodes['bridge'].overrides == {'port': '/dev/ttyACM1'}
    assert nodes['camera'].overrides == {'source': 'gst:libcamerasrc ! appsink'}
    by_name = lambda **kw: {n.name: n for n in rover_nodes(**kw)}
    assert by_name(autonomy='false')['arbiter'].overrides == {}
    assert by_name(mode='assisted', autonomy='true')['arbiter'].overrides == {'mode': 'assisted'}


def test_teleop_joy_adds_the_gamepad_nodes_remapped_to_teleop_cmd():
    nodes = {n.name: n for n in rover_nodes(teleop='joy')}
    assert (nodes['joy'].package, nodes['joy'].executable) == ('joy', 'joy_node')
    teleop = nodes['teleop_twist_joy']
    assert (teleop.package, teleop.executable) == ('teleop_twist_joy', 'teleop_node')
    assert teleop.remappings == {'cmd_vel': 'teleop/cmd'}
    cfg = load(config_dir() / 'teleop_joy.yaml')
    params = cfg['/**/teleop_twist_joy']['ros__parameters']
    assert params['publish_stamped_twist'] is True and params['require_enable_button'] is True
    # normalized commands: full stick is full lock / full (turbo) throttle, nothing beyond
    assert params['scale_angular']['yaw'] == 1.0 and params['scale_linear_turbo']['x'] == 1.0
    assert 0 < params['scale_linear']['x'] <= 1.0
    assert 'joy' not in {n.name for n in rover_nodes()}


def test_graph_modes_are_the_arbiters():
    from rover.graph import MODES
    from rover_arbiter.arbiter import MODES as ARBITER_MODES
    assert MODES == ARBITER_MODES


def test_hailo_and_sim_layer_their_files_over_the_pi_config():
    hailo = rover_nodes(backend='hailo')[1]
    assert [Path(p).name for p in hailo.params_files] == ['rover.yaml', 'hailo.yaml']
    sim = rover_nodes(sim=True)
    assert [n.name for n in sim] == ['sim', 'policy', 'arbiter', 'bridge']
    assert [Path(p).name for p in sim[0].params_files] == ['rover.yaml', 'sim.yaml']
    cfg = load(config_dir() / 'sim.yaml')
    # the bridge in the sim opens the virtual Arduino's pty link: this run's own, never a shared path
    by_name = {n.name: n for n in sim}
    link = by_name['sim'].overrides['serial_link']
    assert link != '/tmp/rover_sim_arduino'
    assert by_name['bridge'].overrides == {'port': link, 'estop_state_file': f'{link}.estop'}
    other = {n.name: n for n in rover_nodes(sim=True, namespace='car2')}
    assert other['sim'].overrides['serial_link'] != link
    assert cfg['/**/sim']['ros__parameters']['serial_link'] == ''


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='backend .*tpu.* not one of cpu_int8, cpu_fp32, hailo'):
        rover_nodes(backend='tpu')
    with pytest.raises(ValueError, match='not a boolean'):
        rover_nodes(autonomy='maybe')
    with pytest.raises(ValueError, match='mode .*fast.* not one of manual, assisted, autonomous'):
        rover_nodes(mode='fast')
    with pytest.raises(ValueError, match='teleop .*wheel.* not one of none, joy'):
        rover_nodes(teleop='wheel')


def test_record_command_dated_mcap_with_namespace():
    cmd = record_command(root='/bags', now=datetime.datetime(2026, 5, 4, 3, 2, 1), namespace='car1')
    assert cmd[:6] == ['ros2', 'bag', 'record', '--storage', 'mcap', '--output']
    assert cmd[6] == '/bags/rover_2026-05-04_03-02-01'
    assert cmd[7:10] == ['/car1/camera/image_raw/compressed', '/car1/camera/camera_info', '/car1/rover/state']
    for topic in ('rover/cmd', 'teleop/cmd', 'policy/cmd', 'rover/mode', 'rover/estop', 'rover/episode'):
        assert f'/car1/{topic}' in cmd
    assert cmd[-1] == '/diagnostics'
    assert record_command(root='/b')[7:] == list(RECORD_TOPICS)


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='launch_ros is not installed (PyPI set-up); rover.graph is tested above')
def test_launch_descriptions_build():  # pragma: no cover - runs on a full ROS 2 install
    from launch import LaunchContext, LaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    for name in ('bringup.launch.py', 'sim.launch.py'):
        source = PythonLaunchDescriptionSource(str(REPO / 'launch' / name))
        description = source.get_launch_description(LaunchContext())
        assert isinstance(description, LaunchDescription)
        args = {a.name for a in description.get_launch_arguments()}
        assert {'backend', 'model_dir', 'namespace', 'autonomy', 'mode', 'record'} <= args


def test_rqt_perspective_shows_camera_commands_state_and_diagnostics():
    import ast
    import json
    data = json.loads((config_dir() / 'rover.perspective').read_text())
    manager = data['groups']['pluginmanager']
    running = ast.literal_eval(manager['keys']['running-plugins']['repr'])
    assert set(running) == {'rqt_image_view/ImageView', 'rqt_plot/Plot', 'rqt_runtime_monitor/RuntimeMonitor'}
    settings = lambda group: {k: ast.literal_eval(v['repr'])
                              for k, v in manager['groups'][group]['groups']['plugin']['keys'].items()}
    # the compressed view: the raw image is 20 MB/s over WiFi
    assert settings('plugin__rqt_image_view__ImageView__1')['topic'] == '/camera/image_raw/compressed'
    topics = settings('plugin__rqt_plot__Plot__1')['topics']
    for topic in ('/rover/cmd', '/rover/state'):  # steering is angular.z, throttle linear.x (README.md, Topics)
        assert f'{topic}/twist/angular/z' in topics and f'{topic}/twist/linear/x' in topics

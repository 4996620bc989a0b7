"""The rover on a Raspberry Pi 5: camera + ACT policy + Arduino bridge at 30 Hz.

    ros2 launch rover bringup.launch.py backend:=cpu_int8 autonomy:=true
    ros2 launch rover bringup.launch.py backend:=hailo record:=true

Which nodes run and with which parameters comes from rover.graph (tested
without launch_ros); this file only turns that into launch actions.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, GroupAction, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from rover.graph import BACKENDS, record_command, rover_nodes

ARGUMENTS = [
    ('backend', 'cpu_int8', f'Inference backend: {" | ".join(BACKENDS)}.'),
    ('model_dir', '', 'Model directory made by rover-quantize (empty: config/rover.yaml).'),
    ('serial_port', '', 'Arduino serial port, e.g. /dev/serial/by-id/... (empty: config).'),
    ('camera_source', '', 'Camera source: /dev/video0, device:0, gst:<pipeline>, file:... (empty: config).'),
    ('namespace', '', 'Namespace for every node and topic (one car per namespace).'),
    ('autonomy', 'false', 'Start with the policy driving (true) or holding neutral (false).'),
    ('record', 'false', 'Record camera/image_raw/compressed, rover/state, rover/cmd, /diagnostics to MCAP.'),
    ('sim', 'false', 'Run against the simulated rover instead of the hardware.'),
]


def _nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)
    specs = rover_nodes(backend=arg('backend'), model_dir=arg('model_dir'),
                        serial_port=arg('serial_port'), camera_source=arg('camera_source'),
                        autonomy=arg('autonomy'), sim=arg('sim').lower() == 'true')
    actions = [PushRosNamespace(arg('namespace'))] if arg('namespace') else []
    for spec in specs:
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            parameters=[*spec.params_files, spec.overrides], output='screen',
            respawn=spec.respawn, respawn_delay=2.0, emulate_tty=True))
    recorder = ExecuteProcess(cmd=record_command(namespace=arg('namespace')), output='screen',
                              condition=IfCondition(LaunchConfiguration('record')))
    return [GroupAction(actions), recorder]


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in ARGUMENTS],
        OpaqueFunction(function=_nodes),
    ])

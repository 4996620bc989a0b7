"""The rover on a Raspberry Pi 5: camera + ACT policy + command arbiter + Arduino bridge at 30 Hz.

    ros2 launch rover bringup.launch.py teleop:=joy record:=true     # drive by hand, record
    ros2 launch rover bringup.launch.py mode:=assisted teleop:=joy   # the policy steers, you throttle
    ros2 launch rover bringup.launch.py backend:=hailo autonomy:=true

Which nodes run and with which parameters comes from rover.graph (tested
without launch_ros); this file only turns that into launch actions. A bad
argument (`backend:=foo`, `autonomy:=maybe`) is a configuration error: one
line and exit code 2 before any node starts, as every rover node does. A node
that exits with a configuration error (code 2: a missing model, a bad
parameter) is not respawned into a loop: the whole launch shuts down in order
(every other node sends its neutral) with an error line naming the node.
"""
import sys

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, GroupAction, LogInfo,
                            OpaqueFunction, RegisterEventHandler)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from rover.graph import ARDUINOS, BACKENDS, MODES, TELEOPS, record_command, rover_nodes

EXIT_CONFIG_ERROR = 2
ARGUMENTS = [
    ('backend', 'cpu_int8', f'Inference backend: {" | ".join(BACKENDS)}.'),
    ('model_dir', '', 'Model directory made by rover-quantize (empty: config/rover.yaml).'),
    ('serial_port', '', 'Arduino serial port, e.g. /dev/serial/by-id/... (empty: config).'),
    ('camera_source', '', 'Camera source: /dev/video0, device:0, gst:<pipeline>, file:... (empty: config).'),
    ('namespace', '', 'Namespace for every node and topic (one car per namespace).'),
    ('mode', '', f'Starting driving mode: {" | ".join(MODES)} (empty: config, manual).'),
    ('autonomy', 'false', 'true: start in autonomous mode (same as mode:=autonomous).'),
    ('teleop', 'none', f'Human input started here: {" | ".join(TELEOPS)} (joy: joy + teleop_twist_joy, '
                       'config/teleop_joy.yaml); a keyboard runs in its own terminal, see the README.'),
    ('record', 'false', 'Record camera, state, commands, mode, e-stop, episodes and /diagnostics to MCAP.'),
    ('sim', 'false', 'Run against the simulated rover instead of the hardware.'),
    ('arduino', '', f'With sim: the board behind its link, {" | ".join(ARDUINOS)} (empty: twin).'),
]


def _nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)
    try:
        specs = rover_nodes(backend=arg('backend'), model_dir=arg('model_dir'),
                            serial_port=arg('serial_port'), camera_source=arg('camera_source'),
                            autonomy=arg('autonomy'), mode=arg('mode'), teleop=arg('teleop'),
                            sim=arg('sim').lower() == 'true', namespace=arg('namespace'),
                            arduino=arg('arduino'))
    except ValueError as exc:
        # SystemExit, unlike an exception, is not turned into exit code 1 by launch
        print(f'[ERROR] [rover.launch]: bad launch argument: {exc}', file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    actions = [PushRosNamespace(arg('namespace'))] if arg('namespace') else []
    for spec in specs:
        node = Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            parameters=[*spec.params_files, spec.overrides], output='screen',
            remappings=list(spec.remappings.items()),
            respawn=spec.respawn, respawn_delay=2.0, emulate_tty=True)
        actions += [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_stop_on_config_error))]
    recorder = ExecuteProcess(cmd=record_command(namespace=arg('namespace')), output='screen',
                              condition=IfCondition(LaunchConfiguration('record')))
    return [GroupAction(actions), recorder]


def _stop_on_config_error(event, _context):
    if event.returncode != EXIT_CONFIG_ERROR:
        return None  # a crash: respawn (camera, bridge) or the bridge's timeout -> neutral
    reason = f'{event.action.name} exited with a configuration error (code 2); see its log line above'
    return [LogInfo(msg=f'[ERROR] rover: {reason}: stopping every node'),
            EmitEvent(event=Shutdown(reason=reason))]


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in ARGUMENTS],
        OpaqueFunction(function=_nodes),
    ])

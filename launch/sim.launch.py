"""The same graph as bringup.launch.py against the simulated rover: a virtual
Arduino on a pseudo-terminal driving a vehicle model, and a synthetic camera
rendering the track from the vehicle's pose (config/sim.yaml on top of
config/rover.yaml).

    ros2 launch rover sim.launch.py model_dir:=build/demo_model
    ros2 launch rover sim.launch.py model_dir:=build/demo_model arduino:=firmware   # the .elf on simavr
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration

PASSED_ON = [
    ('backend', 'cpu_int8', 'Inference backend: cpu_int8 | cpu_fp32 | hailo.'),
    ('model_dir', '', 'Model directory made by rover-quantize (empty: config).'),
    ('namespace', '', 'Namespace for every node and topic.'),
    ('autonomy', 'true', 'Start in autonomous mode (false: manual, drive with teleop/cmd).'),
    ('mode', '', 'Starting driving mode: manual | assisted | autonomous (overrides autonomy).'),
    ('record', 'false', 'Record the run to MCAP for calibration.'),
    ('arduino', EnvironmentVariable('ARDUINO', default_value='twin'),
     'The board behind the link: twin (Python twin) | firmware (the .elf on simavr); default $ARDUINO.'),
]


def generate_launch_description():
    bringup = os.path.join(os.path.dirname(__file__), 'bringup.launch.py')
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in PASSED_ON],
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(bringup),
            launch_arguments={**{name: LaunchConfiguration(name) for name, _, _ in PASSED_ON},
                              'sim': 'true'}.items()),
    ])

"""Launch avatar_node alone: `ros2 launch avatar_node avatar_node.launch.py playback:=true`."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('playback', default_value='false', description='play the speech on this machine'),
        DeclareLaunchArgument('fps', default_value='20.0', description='avatar image rate in Hz'),
        Node(package='avatar_node', executable='avatar_node', name='avatar_node', output='screen',
             parameters=[{'playback': ParameterValue(LaunchConfiguration('playback'), value_type=bool),
                          'fps': ParameterValue(LaunchConfiguration('fps'), value_type=float)}]),
    ])

"""Launch emotion_node with its default parameters: `ros2 launch emotion_node emotion_node.launch.py`."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    params = os.path.join(get_package_share_directory('emotion_node'), 'config', 'emotion_node.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='image', description='camera image topic'),
        Node(package='emotion_node', executable='emotion_node', name='emotion_node', output='screen',
             parameters=[params], remappings=[('image', LaunchConfiguration('image'))]),
    ])

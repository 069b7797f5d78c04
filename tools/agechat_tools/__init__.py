"""agechat's workspace tools (not ROS packages).

The launch-file runner, the rosbag player and recorder, the demo bag generator and the demo
report. They stand in for `ros2 launch` and `ros2 bag` where those are not installed, and work on
any bag and on our launch file.
"""

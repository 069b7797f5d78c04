"""ROS-side helpers shared by every agechat node.

All message conversion code of the graph lives here (one module per concern), so that node
packages keep only wiring and their pure cores never see a ROS message:

- :mod:`agechat_ros.time`    builtin_interfaces/Time <-> integer nanoseconds
- :mod:`agechat_ros.image`   sensor_msgs/Image and CompressedImage <-> numpy BGR arrays
- :mod:`agechat_ros.audio`   audio_common_msgs AudioData/AudioInfo <-> float32 samples
- :mod:`agechat_ros.params`  declare + validate node parameters, refuse bad ones at start
- :mod:`agechat_ros.health`  count and throttle-log dropped messages, publish /diagnostics

Conversion functions raise :class:`ConversionError` with a message that says what was wrong with
the input; nodes hand it to :class:`agechat_ros.health.NodeHealth.drop`.
"""


class ConversionError(ValueError):
    """A message could not be converted; the text says why (suitable for a log line)."""


class DeviceUnavailable(RuntimeError):
    """A device a node drives (microphone, camera, speaker) cannot be used; the text says why.

    Like an invalid parameter it stops the node's start with one line that names the fix
    (:data:`agechat_ros.node.STARTUP_ERRORS`); the node fails alone, the graph keeps running.
    """

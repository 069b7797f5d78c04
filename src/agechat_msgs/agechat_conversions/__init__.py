"""Conversions between ROS messages and plain Python/numpy values, for every agechat node.

All message conversion code of the graph lives in this package (one module per concern) so that
node packages keep only wiring, and their pure cores never see a ROS message:

- :mod:`agechat_conversions.time`   builtin_interfaces/Time <-> integer nanoseconds
- :mod:`agechat_conversions.image`  sensor_msgs/Image and CompressedImage <-> numpy BGR arrays
- :mod:`agechat_conversions.audio`  audio_common_msgs AudioData/AudioInfo <-> float32 samples

Functions raise :class:`ConversionError` with a message that says what was wrong with the input;
nodes catch it, count the drop and log it throttled.
"""


class ConversionError(ValueError):
    """A message could not be converted; the text says why (suitable for a log line)."""

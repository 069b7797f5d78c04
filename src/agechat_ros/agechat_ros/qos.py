"""The QoS profiles of agechat's topics, in one place so that publishers and subscribers match."""

from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Camera frames: best effort, keep only the newest (never process a backlog). A best-effort
#: subscription matches both reliable and best-effort camera drivers.
LATEST_FRAME = QoSProfile(
    depth=1,
    history=QoSHistoryPolicy.KEEP_LAST,
    reliability=QoSReliabilityPolicy.BEST_EFFORT,
    durability=QoSDurabilityPolicy.VOLATILE,
)

#: Sensor streams in general (ROS' standard sensor-data profile).
SENSOR_DATA = qos_profile_sensor_data

#: Microphone / TTS audio chunks: reliable, with room for 20 s of 20 ms chunks, so that no audio is
#: lost while a consumer is busy (e.g. a long recogniser call holding the GIL) or a bag is replayed
#: faster than real time.
AUDIO_STREAM = QoSProfile(
    depth=1000, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE
)

#: Events (utterances, age estimates, emotions, replies, avatar state): reliable, small queue.
EVENTS = QoSProfile(
    depth=10, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE
)

#: State that late joiners must see at once (AudioInfo, SpeechState): reliable, transient local.
LATCHED = QoSProfile(
    depth=1,
    history=QoSHistoryPolicy.KEEP_LAST,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)

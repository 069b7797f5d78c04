"""Conversions for emotion_node: face-emotion results <-> agechat_msgs/FaceEmotion."""

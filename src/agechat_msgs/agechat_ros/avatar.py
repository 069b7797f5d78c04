"""Conversions for avatar_node: avatar/speech state <-> agechat_msgs AvatarState/SpeechState."""

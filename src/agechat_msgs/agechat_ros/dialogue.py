"""Conversions for dialogue_node: replies and chat requests <-> agechat_msgs DialogueReply/Chat."""

"""Conversions for age_node: utterances and age estimates <-> agechat_msgs Utterance/AgeEstimate."""

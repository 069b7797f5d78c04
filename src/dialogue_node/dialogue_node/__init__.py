"""agechat dialogue_node: age- and emotion-conditioned Korean replies."""

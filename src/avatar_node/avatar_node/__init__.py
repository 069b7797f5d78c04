"""avatar_node: Korean TTS in the listener's register and two avatars (user mirror, agent)."""

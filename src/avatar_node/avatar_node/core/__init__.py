"""Pure core of avatar_node (no rclpy): text, TTS, speech pacing, expressions, rendering."""

"""Pure core of emotion_node (no rclpy): model, fast inference, face detection, smoothing, training."""

"""Pure core of emotion_node (no rclpy).

The model, fast inference, face detection, smoothing and training.
"""

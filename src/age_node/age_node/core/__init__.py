"""Pure core of age_node (no rclpy).

Segmentation, speech recognition, the age model, its training and speech synthesis.
"""

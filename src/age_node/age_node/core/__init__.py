"""Pure core of age_node (no rclpy): segmentation, speech recognition, age model, training, synthesis."""

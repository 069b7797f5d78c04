"""Pure core of dialogue_node (no rclpy): corpus, tokenizer, prompts, model, training, evaluation."""

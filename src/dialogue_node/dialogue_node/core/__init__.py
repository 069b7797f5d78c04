"""Pure core of dialogue_node (no rclpy).

Corpus, tokenizer, prompts, model, training and evaluation.
"""

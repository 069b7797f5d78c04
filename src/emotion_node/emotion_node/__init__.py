"""emotion_node: facial emotion (FER2013 mini-Xception) of the primary face in camera frames."""

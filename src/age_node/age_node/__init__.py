"""age_node: live microphone audio -> utterances (Korean transcript) + the speaker's age group."""

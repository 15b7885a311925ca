"""The conversation: what the agent says and how it decides, testable with text alone."""

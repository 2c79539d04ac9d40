"""multimodal attacks."""

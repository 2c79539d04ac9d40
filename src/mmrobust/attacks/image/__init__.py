"""image attacks."""

"""text attacks."""

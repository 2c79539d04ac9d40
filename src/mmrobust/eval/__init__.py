"""Evaluation: zero-shot classifier, evaluation loops, sanity checks and reports."""

"""Benchmarks of accuracy: the target fine-tuned on each method's picks and scored on held-out problems."""

"""Benchmarks of speed: seconds and peak memory of features, envs and selection."""

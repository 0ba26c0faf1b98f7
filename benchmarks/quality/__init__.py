"""Benchmarks of quality: what the picks (and the proxy's signals) are worth before the target is trained."""

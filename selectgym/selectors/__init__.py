"""Selectors: one module per method, looked up by name in ``SELECTORS``."""

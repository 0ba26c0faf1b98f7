"""selectgym: pick the training data worth training an LLM on, and learn how to pick it."""

import logging

from selectgym.errors import SelectgymError

__version__ = "0.1.0"
__all__ = ["SelectgymError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())

"""One exception type for mistakes a user can fix; the CLI prints it as a single line."""


class SelectgymError(Exception):
    """Bad input or configuration. The message says what is wrong and how to fix it."""

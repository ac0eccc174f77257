"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class UsageError(Exception):
    """Bad input from the user (a file, a key, a value): one line, no traceback."""

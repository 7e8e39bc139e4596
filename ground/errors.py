"""The one user-facing error type: the CLI prints its message on one line and exits with 2."""


class BenchError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""

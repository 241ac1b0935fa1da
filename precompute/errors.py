"""Errors about the user's input: the CLI prints the message as one line, no traceback."""


class InputError(Exception):
    """Bad input data or arguments; the message names the file, row or field."""

"""Errors about the user's input: the CLI prints the message as one line, no traceback."""

import re


class InputError(Exception):
    """Bad input data or arguments; the message names the file, row or field."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA out-of-memory error (by name: this module does not import torch) or a
    RuntimeError / MemoryError that says it ran out of memory."""
    return (type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError)
            or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()))


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` (ANSI colours removed, 200 characters at most),
    for wrapping a library's exception into an InputError."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")

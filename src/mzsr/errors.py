"""The project's error types: every refusal of bad input is an :class:`MzsrError`, so callers (the CLI, tests)
can tell a clean refusal from a bug. Each message is one line naming the file or option and the problem."""
from __future__ import annotations


class MzsrError(ValueError):
    """Bad input refused by mzsr; the message names the file or option and the problem."""


class ImageError(MzsrError):
    """An image that cannot be used; the message names the file and the problem."""


class KernelError(MzsrError):
    """A kernel that cannot be used; the message names its source and the problem."""


class ModelError(MzsrError):
    """An unknown model name or an unreadable weights file or card; the message says which."""


class InputError(MzsrError):
    """An image array passed to the API that cannot be used (dtype, range, shape)."""


class OptionError(MzsrError):
    """An option value out of its range or of the wrong type; the message names the option."""


def describe(e: BaseException) -> str:
    """A foreign exception in one line for our messages: its type and the first line of its text."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__

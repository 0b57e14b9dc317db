"""Turning an exception from a library (transformers, datasets, the Hub client, diffusers) into a one-line message.

Every user-facing error of TheWorld is one line; these two helpers are how a wrapped library error is shortened.
"""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first line of the error's message (library errors often continue with hints or tracebacks), or its type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def single_line(error: BaseException) -> str:
    """The whole message with its line breaks and runs of spaces collapsed, or the error's type when it is empty."""
    return " ".join(str(error).split()) or type(error).__name__

"""Errors of the data layer. Each message says what was expected, what was found and what to do.

Room: `data/`.
"""

from __future__ import annotations


class UnknownBenchmarkError(KeyError):
    """A benchmark key that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class ColumnNotFoundError(ValueError):
    """A source lacks the image, label or id column its configuration names."""


class LabelError(ValueError):
    """Labels that do not fit the class list (ids out of range, unknown or inconsistent class names)."""


class ClassListMismatchError(LabelError):
    """A registered source whose classes are not the benchmark's (a rewritten repository, another revision)."""


class SplitNotFoundError(ValueError):
    """A split that the source does not provide."""


class UnreadableImageError(OSError):
    """An image file or blob that PIL cannot decode."""


class SelectionMismatchError(ValueError):
    """A few-shot selection record that does not fit the dataset it is applied to."""

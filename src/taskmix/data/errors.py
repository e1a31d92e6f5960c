"""Errors that name where bad input came from, and a report of what was skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class TaskmixError(Exception):
    """Base class for errors a user can act on (bad data, bad config)."""


class RecordError(TaskmixError):
    """A malformed record: names the file, the line (1-based) and the field."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.where = where
        self.field = field
        self.reason = message
        parts = [p for p in (where, f"field {field!r}" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class CheckpointError(TaskmixError):
    """A checkpoint is missing, truncated, corrupted, or of another model or vocabulary."""


class ConfigError(TaskmixError):
    """A bad config: names the file, the key and what was expected."""


@dataclass
class ErrorReport:
    """Counts of records skipped (``on_error: skip``) or truncated, by reason; never silent."""

    skipped: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first few messages, for the report

    def skip(self, error: RecordError) -> None:
        self.skipped[error.reason] += 1
        if len(self.examples) < 20:
            self.examples.append(str(error))

    def as_dict(self) -> dict:
        return {
            "skipped": dict(self.skipped),
            "truncated": dict(self.truncated),
            "dropped": dict(self.dropped),
            "examples": list(self.examples),
        }

    def total_skipped(self) -> int:
        return sum(self.skipped.values())


class UnknownNameError(TaskmixError, KeyError):
    """No task, mixture, objective... of that name (a KeyError that prints without quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

"""Every error type a user can act on, in one place: each names where the bad input came from."""

from __future__ import annotations


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


class UnknownNameError(TaskmixError, KeyError):
    """No task, mixture, objective... of that name (a KeyError that prints without quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EmptyTaskError(TaskmixError, ValueError):
    """A task chosen by a stream has no examples in its shard: sampling it would loop forever."""

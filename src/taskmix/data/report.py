"""A report of what the data pipeline skipped, truncated or dropped: nothing is lost silently."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from taskmix.errors import RecordError

_KINDS = ("skipped", "truncated", "dropped")


@dataclass
class ErrorReport:
    """Counts of records skipped (``on_error: skip``), truncated or dropped, by reason.

    Nothing is lost silently, and the counts travel with checkpoints: ``state_dict`` /
    ``load_state_dict`` save and restore them (in place, so holders of the object see the
    restored counts), ``summary`` gives the totals a trainer logs.
    """

    MAX_EXAMPLES: ClassVar[int] = 20

    skipped: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first few messages, for the report

    def skip(self, error: RecordError) -> None:
        self.skipped[error.reason] += 1
        self._remember(str(error))

    def drop(self, reason: str, *, where: str | None = None) -> None:
        """Count a record that was deliberately left out (not an error), under ``reason``."""
        self.dropped[reason] += 1
        self._remember(f"{where}: dropped: {reason}" if where else f"dropped: {reason}")

    def _remember(self, message: str) -> None:
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append(message)

    def as_dict(self) -> dict[str, Any]:
        """Every count by reason plus the first messages; JSON-serialisable."""
        return {
            "skipped": dict(self.skipped),
            "truncated": dict(self.truncated),
            "dropped": dict(self.dropped),
            "examples": list(self.examples),
        }

    def summary(self) -> dict[str, int]:
        """Totals per kind, e.g. ``{"skipped": 2, "truncated": 17, "dropped": 0}``, for logs."""
        return {kind: sum(getattr(self, kind).values()) for kind in _KINDS}

    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def state_dict(self) -> dict[str, Any]:
        """What ``load_state_dict`` restores: the same as ``as_dict``."""
        return self.as_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the counts with saved ones, in place; a malformed state changes nothing."""
        counts = {kind: Counter(_check_counts(state, kind)) for kind in _KINDS}
        examples = state.get("examples", []) if isinstance(state, Mapping) else None
        if not isinstance(examples, list) or not all(isinstance(m, str) for m in examples):
            raise ValueError(
                f"error report state: 'examples' must be a list of strings: {state!r:.200}"
            )
        for kind, counter in counts.items():
            target = getattr(self, kind)
            target.clear()
            target.update(counter)
        self.examples[:] = examples[: self.MAX_EXAMPLES]


def _check_counts(state: Any, kind: str) -> dict[str, int]:
    value = state.get(kind) if isinstance(state, Mapping) else None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for k, n in value.items()
    ):
        raise ValueError(
            f"error report state: {kind!r} must map reasons to counts >= 0, got {value!r:.200}"
        )
    return dict(value)

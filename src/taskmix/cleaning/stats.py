"""What cleaning removed, rule by rule; the counts always add up (``check``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CleanStats:
    """Pages and lines in and out, and per rule how many lines and whole pages it removed.

    A removed page's remaining lines are counted against the rule that removed it, so
    ``pages_in = pages_out + sum(pages_removed)`` and ``lines_in = lines_out + sum(lines_removed)``.
    """

    pages_in: int = 0
    pages_out: int = 0
    lines_in: int = 0
    lines_out: int = 0
    pages_removed: Counter = field(default_factory=Counter)
    lines_removed: Counter = field(default_factory=Counter)
    lines_modified: Counter = field(default_factory=Counter)
    details: Counter = field(default_factory=Counter)

    def remove_page(self, rule: str, n_lines: int) -> None:
        self.pages_removed[rule] += 1
        self.lines_removed[rule] += n_lines

    def add(self, other: CleanStats) -> None:
        """Sum another shard's counts of the same stage into these."""
        self.pages_in += other.pages_in
        self.pages_out += other.pages_out
        self.lines_in += other.lines_in
        self.lines_out += other.lines_out
        for name in ("pages_removed", "lines_removed", "lines_modified", "details"):
            getattr(self, name).update(getattr(other, name))

    @classmethod
    def chain(cls, first: CleanStats, second: CleanStats) -> CleanStats:
        """Stats of two stages run one after the other (the second reads the first's output)."""
        out = cls(first.pages_in, second.pages_out, first.lines_in, second.lines_out)
        for part in (first, second):
            for name in ("pages_removed", "lines_removed", "lines_modified", "details"):
                getattr(out, name).update(getattr(part, name))
        return out

    def problems(self) -> list[str]:
        """Ways the counts fail to add up (empty when they are consistent)."""
        found = []
        removed_pages = sum(self.pages_removed.values())
        removed_lines = sum(self.lines_removed.values())
        if self.pages_in != self.pages_out + removed_pages:
            found.append(
                f"pages: {self.pages_in} in != {self.pages_out} out + {removed_pages} removed"
            )
        if self.lines_in != self.lines_out + removed_lines:
            found.append(
                f"lines: {self.lines_in} in != {self.lines_out} out + {removed_lines} removed"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        rules = sorted(set(self.pages_removed) | set(self.lines_removed) | set(self.lines_modified))
        return {
            "pages_in": self.pages_in,
            "pages_out": self.pages_out,
            "lines_in": self.lines_in,
            "lines_out": self.lines_out,
            "rules": {
                r: {
                    "pages_removed": self.pages_removed[r],
                    "lines_removed": self.lines_removed[r],
                    "lines_modified": self.lines_modified[r],
                }
                for r in rules
            },
            "details": dict(sorted(self.details.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanStats:
        out = cls(data["pages_in"], data["pages_out"], data["lines_in"], data["lines_out"])
        for rule, counts in data["rules"].items():
            for name in ("pages_removed", "lines_removed", "lines_modified"):
                if counts[name]:
                    getattr(out, name)[rule] = counts[name]
        out.details.update(data.get("details", {}))
        return out

    def table(self) -> str:
        """A plain-text table for the terminal."""
        rows = [("rule", "pages removed", "lines removed", "lines edited")]
        for rule, c in self.as_dict()["rules"].items():
            rows.append(
                (rule, str(c["pages_removed"]), str(c["lines_removed"]), str(c["lines_modified"]))
            )
        rows.append(("(in)", str(self.pages_in), str(self.lines_in), ""))
        rows.append(("(out)", str(self.pages_out), str(self.lines_out), ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 2, "-" * len(lines[0]))
        return "\n".join(lines)

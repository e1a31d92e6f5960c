"""Small pages for cleaning tests."""

from __future__ import annotations

import json
from pathlib import Path

GOOD = [
    "The quick brown fox jumps over the lazy dog near the river.",
    "Many people came to see the show and they enjoyed it a lot.",
    "The children played games while their parents talked about the news.",
    "Everyone agreed that it had been a wonderful afternoon for all of them.",
    "Later that evening the family walked home along the quiet street.",
    "They promised each other to come back to the park next summer.",
]


def page(*extra: str, good: int = 6) -> str:
    """Six good lines (six sentences) plus ``extra`` lines."""
    return "\n".join(GOOD[:good] + list(extra))


def write_jsonl(path: Path, records: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((json.dumps(r) if isinstance(r, dict) else r) + "\n")
    return path


def read_texts(folder: Path) -> list[str]:
    texts = []
    for part in sorted(folder.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in part.read_text().splitlines()]
    return texts

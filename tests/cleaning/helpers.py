"""Small pages for cleaning tests."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from taskmix.cleaning import pipeline

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


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def numbered_page(i: int, good: int = 6) -> str:
    """A page that passes the rules and shares no sentence with another number's page."""
    return "\n".join(f"{line[:-1]} on day {i}." for line in GOOD[:good])


def warc_bytes(texts: list[str], gz: bool = False) -> tuple[bytes, list[int]]:
    """A WARC of ``conversion`` records (text/plain) and each record's start offset."""
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gz)
    offsets = []
    for i, text in enumerate(texts):
        offsets.append(buf.tell())
        rec = writer.create_warc_record(
            f"http://site{i}.com/",
            "conversion",
            payload=io.BytesIO(text.encode()),
            warc_headers_dict={"Content-Type": "text/plain"},
        )
        writer.write_record(rec)
    return buf.getvalue(), offsets


def crash_stage1_on(monkeypatch, shard: int, calls: list[int] | None = None):
    """Make the pipeline's stage 1 raise on ``shard`` (appending each shard it starts to
    ``calls``); returns the real ``run_stage1`` to restore."""
    real = pipeline.run_stage1

    def crash(job):
        if calls is not None:
            calls.append(job.shard)
        if job.shard == shard:
            raise RuntimeError("simulated crash")
        return real(job)

    monkeypatch.setattr(pipeline, "run_stage1", crash)
    return real

"""Cleaning speed: our ``paper`` page rules vs datatrove's C4QualityFilter, and all-core speed-up.

    .venv/bin/python bench/cleaning.py [--docs 3000] [--workers N]

Both sides run the same rules (terminal punctuation with the ellipsis rule, >= 3 words per line,
>= 5 sentences, javascript, lorem ipsum, curly brace; no citations/policy/long-word rules) with
the same sentence splitter, in one process, on the same synthetic web-like pages. Language id,
bad words and dedup are off (C4QualityFilter has none of them). Then the whole pipeline
(``clean_corpus``, JSONL in/out) with 1 worker vs all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from taskmix.cleaning.io import RawDoc
from taskmix.cleaning.pipeline import clean_corpus, clean_raw
from taskmix.cleaning.presets import get_preset
from taskmix.cleaning.rules import build_rules
from taskmix.cleaning.sentences import get_splitter
from taskmix.cleaning.stats import CleanStats

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "they",
    "this",
    "which",
    "people",
    "city",
    "river",
    "market",
    "school",
    "music",
    "history",
    "water",
    "light",
    "world",
    "story",
    "house",
    "family",
    "garden",
]
BOILERPLATE = [
    "Home | About | Contact",
    "Menu",
    "Read more...",
    "Please enable JavaScript to view the comments powered by Disqus.",
    "Share this:",
    "Copyright 2019 All rights reserved",
    "Posted in News",
    "var config = {id: 42};",
]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice([".", ".", ".", "?", "!"])


def make_page(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(4, 20)):
        if rng.random() < 0.35:
            lines.append(rng.choice(BOILERPLATE))
        else:
            lines.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 3))))
    if rng.random() < 0.02:
        lines.append("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    return "\n".join(lines)


def bench_ours(pages: list[str], cfg) -> tuple[float, int]:
    stats = CleanStats()
    rules = build_rules(cfg, stats)
    start = time.perf_counter()
    kept = sum(clean_raw(RawDoc(p, None, "bench"), rules, cfg, stats) is not None for p in pages)
    return time.perf_counter() - start, kept


def bench_datatrove(pages: list[str], splitter) -> tuple[float, int] | None:
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import C4QualityFilter
        from datatrove.utils.word_tokenizers import WordTokenizer
    except ImportError:
        return None

    class SameSplitter(WordTokenizer):
        """Gives datatrove the sentence splitter our pipeline uses (no NLTK data here)."""

        def word_tokenize(self, text):
            return text.split()

        def sent_tokenize(self, text):
            return [text[a:b] for a, b in splitter(text)]

        def span_tokenize(self, text):
            return splitter(text)

    filt = C4QualityFilter(
        remove_citations=False,
        filter_policy=False,
        max_word_length=-1,
        min_words_per_line=3,
        min_num_sentences=5,
        language=SameSplitter(),
    )
    docs = [Document(text=p, id=str(i)) for i, p in enumerate(pages)]
    start = time.perf_counter()
    kept = sum(1 for _ in filt.run(iter(docs)))
    return time.perf_counter() - start, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--splitter", default="punkt", choices=["punkt", "regex"])
    args = parser.parse_args()

    rng = random.Random(0)
    pages = [make_page(rng) for _ in range(args.docs)]
    cfg = get_preset("paper", langdetect=False, dedup="none", sentence_splitter=args.splitter)
    splitter = get_splitter(args.splitter)
    bench_ours(pages[:50], cfg)  # warm-up (imports, caches)

    ours_s, ours_kept = bench_ours(pages, cfg)
    print(f"docs: {len(pages)}  sentence splitter: {args.splitter}")
    print(
        f"taskmix paper preset, 1 process : {len(pages) / ours_s:9.0f} docs/s  (kept {ours_kept})"
    )
    dt = bench_datatrove(pages, splitter)
    if dt is None:
        print("datatrove not installed: skipped C4QualityFilter")
    else:
        dt_s, dt_kept = dt
        print(
            f"datatrove C4QualityFilter, 1 proc: {len(pages) / dt_s:9.0f} docs/s  (kept {dt_kept})"
        )
        print(f"ratio taskmix / datatrove        : {dt_s / ours_s:9.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        with open(src, "w") as f:
            for p in pages:
                f.write(json.dumps({"text": p}) + "\n")
        times = {}
        for workers in sorted({1, args.workers}):
            start = time.perf_counter()
            clean_corpus([src], Path(tmp) / f"out{workers}", cfg, workers=workers, shards=workers)
            times[workers] = time.perf_counter() - start
            print(
                f"clean_corpus, {workers} worker(s)      : {len(pages) / times[workers]:9.0f} docs/s"
            )
        if args.workers > 1:
            print(
                f"speed-up with {args.workers} workers          : {times[1] / times[args.workers]:9.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

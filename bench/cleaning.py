"""Cleaning speed: our ``paper`` page rules vs datatrove's C4QualityFilter, and all-core speed-up.

    .venv/bin/python bench/cleaning.py [--docs 3000] [--workers N] [--splitter punkt|regex]

Both sides run the same rules (terminal punctuation with the ellipsis rule, >= 3 words per line,
>= 5 sentences, javascript, lorem ipsum, curly brace; no citations/policy/long-word rules) with
the same sentence splitter, in one process, on the same synthetic web-like pages. Language id,
bad words and dedup are off (C4QualityFilter has none of them). datatrove also ends sentences
at ``'``: our ``end_marks`` is set to datatrove's ``END_PUNCTUATION`` so the configs match. The
bench checks that both keep the same documents with the same text and exits 1 if not. Then the
whole pipeline (``clean_corpus``, JSONL in/out) with 1 worker vs all cores.
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
        elif rng.random() < 0.05:  # ends in ', an end mark for datatrove only by default
            lines.append(f"They called the {rng.choice(WORDS)} '{rng.choice(WORDS)}'")
        else:
            lines.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 3))))
    if rng.random() < 0.02:
        lines.append("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    return "\n".join(lines)


Kept = dict[int, str]  # document index -> cleaned text


def bench_ours(pages: list[str], cfg) -> tuple[float, Kept]:
    stats = CleanStats()
    rules = build_rules(cfg, stats)
    start = time.perf_counter()
    out = [clean_raw(RawDoc(p, None, "bench"), rules, cfg, stats) for p in pages]
    elapsed = time.perf_counter() - start
    return elapsed, {i: page.text for i, page in enumerate(out) if page is not None}


def datatrove_end_marks() -> str | None:
    try:
        from datatrove.pipeline.filters.c4_filters import END_PUNCTUATION
    except ImportError:
        return None
    return "".join(END_PUNCTUATION)


def bench_datatrove(pages: list[str], splitter) -> tuple[float, Kept] | None:
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
    kept = list(filt.run(iter(docs)))
    elapsed = time.perf_counter() - start
    return elapsed, {int(doc.id): doc.text for doc in kept}


def differences(ours: Kept, theirs: Kept, pages: list[str]) -> list[str]:
    """Why the two sides disagree (empty when they keep the same documents, same text)."""
    found = []
    for i in sorted(set(ours) ^ set(theirs)):
        side = "taskmix" if i in ours else "datatrove"
        found.append(f"doc {i} kept only by {side}:\n{pages[i]}")
    for i in sorted(set(ours) & set(theirs)):
        if ours[i] != theirs[i]:
            found.append(f"doc {i} cleaned differently:\n{ours[i]!r}\n{theirs[i]!r}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--splitter", default="punkt", choices=["punkt", "regex"])
    args = parser.parse_args()

    rng = random.Random(0)
    pages = [make_page(rng) for _ in range(args.docs)]
    marks = datatrove_end_marks()
    cfg = get_preset(
        "paper",
        langdetect=False,
        dedup="none",
        sentence_splitter=args.splitter,
        **({"end_marks": marks} if marks else {}),
    )
    splitter = get_splitter(args.splitter)
    bench_ours(pages[:50], cfg)  # warm-up (imports, caches)

    ours_s, ours_kept = bench_ours(pages, cfg)
    print(f"docs: {len(pages)}  sentence splitter: {args.splitter}  end marks: {cfg.end_marks}")
    print(
        f"taskmix paper preset, 1 process  : {len(pages) / ours_s:9.0f} docs/s"
        f"  (kept {len(ours_kept)})"
    )
    dt = bench_datatrove(pages, splitter)
    if dt is None:
        print("datatrove not installed: skipped C4QualityFilter")
    else:
        dt_s, dt_kept = dt
        print(
            f"datatrove C4QualityFilter, 1 proc: {len(pages) / dt_s:9.0f} docs/s"
            f"  (kept {len(dt_kept)})"
        )
        print(f"ratio taskmix / datatrove speed  : {dt_s / ours_s:9.2f}x")
        diff = differences(ours_kept, dt_kept, pages)
        if diff:
            print(f"FAIL: taskmix and datatrove disagree on {len(diff)} document(s); first:")
            print(diff[0])
            return 1
        print(f"same documents kept              :      yes ({len(ours_kept)} of {len(pages)})")

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
                f"clean_corpus, {workers:2d} worker(s)      : "
                f"{len(pages) / times[workers]:9.0f} docs/s  ({times[workers]:.2f} s)"
            )
        speedup = times[1] / times[args.workers]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"all-core speed-up, 1 -> {args.workers} workers: {speedup:9.2f}x"
            f"  (os.cpu_count() = {os.cpu_count()}, 1-min load average {load:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

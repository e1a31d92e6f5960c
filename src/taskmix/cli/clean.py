"""``taskmix clean``: C4-style cleaning of a corpus (SPEC §3)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from taskmix.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean",
        help="clean a web corpus with the C4 rules",
        description="Clean JSONL / text / WARC-WET / Parquet inputs with the C4 rules "
        "(presets: paper, tfds; any threshold with --set KEY=VALUE); "
        "writes part files, stats.json and _SUCCESS to OUT. See docs/cleaning.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders")
    p.add_argument("--out", required=True, help="output folder (new, or one to --resume)")
    p.add_argument("--preset", help="paper (default) or tfds")
    p.add_argument(
        "--config",
        help="a YAML file of cleaning options (CleanConfig fields, and preset:); the flags "
        "below and --set override it",
    )
    p.add_argument("--stats", help="also write the JSON report here")
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    p.add_argument("--shards", type=int, help="number of shards (default: --workers)")
    p.add_argument("--bad-words", help="bad-words file, one per line (e.g. LDNOOBW 'en')")
    p.add_argument("--no-langdetect", action="store_true", help="skip English detection")
    p.add_argument("--minhash", action="store_true", help="also drop near-duplicate pages")
    p.add_argument("--domains", help="RealNews-like: keep only pages from these domains (file)")
    p.add_argument("--urls", help="WebText-like: keep only pages with these URLs (file)")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "parquet"], help="output format")
    p.add_argument(
        "--text-mode",
        default="block",
        choices=["block", "file"],
        help="plain text inputs: a document per blank-line-separated block, or per file",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any CleanConfig field of the preset, e.g. --set min_sentences=3 "
        "--set max_word_length=none (repeatable; applied after the other flags)",
    )
    p.add_argument("--resume", action="store_true", help="continue a crashed run in OUT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from taskmix.cleaning.io import write_json_atomic
    from taskmix.cleaning.pipeline import clean_corpus
    from taskmix.cleaning.presets import get_preset, load_clean_config, parse_overrides

    preset, overrides = load_clean_config(args.config) if args.config else (None, {})
    if args.minhash:
        overrides["minhash"] = True
    if args.no_langdetect:
        overrides["langdetect"] = False
    if args.bad_words:
        overrides["bad_words_file"] = args.bad_words
    if args.domains:
        overrides["domain_allowlist_file"] = args.domains
    if args.urls:
        overrides["url_list_file"] = args.urls
    overrides.update(parse_overrides(args.set))
    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive count, got {args.workers}")
    cfg = get_preset(args.preset or preset or "paper", **overrides)
    stats = clean_corpus(
        args.inputs,
        args.out,
        cfg,
        workers=args.workers,
        shards=args.shards,
        fmt=args.format,
        text_mode=args.text_mode,
        resume=args.resume,
    )
    if args.stats:
        write_json_atomic(Path(args.stats), stats.as_dict())
    if cfg.bad_words_file is None:
        print("note: no --bad-words file given: the bad-words rule was off")
    print(stats.table())
    return 0

"""``taskmix demo``: the whole path on the embedded default data in about ten CPU minutes."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="tokenizer, pre-training, fine-tuning and evaluation on the default data",
        description=(
            "Trains a tokenizer, pre-trains a CPU-sized T5 on span corruption mixed with the "
            "default multi-task mixture, fine-tunes it on a held-out task, evaluates every task "
            "and writes DIR/report.json and DIR/learning_curves.png."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)"
    )
    parser.add_argument(
        "--size",
        choices=["full", "quick"],
        default="full",
        help="quick: a few steps, to check the path works",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from taskmix.recipes.demo import run_demo

    run_demo(args.out, size=args.size, seed=args.seed, progress=not args.no_progress)
    return 0

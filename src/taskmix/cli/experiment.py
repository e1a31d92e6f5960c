"""``taskmix experiment NAME``: a grid of runs (T5's and ExT5's studies) as one command."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from taskmix.recipes.experiments import EXPERIMENTS

    listing = "\n".join(f"  {name:<20} {cls.description}" for name, cls in EXPERIMENTS.items())
    parser = subparsers.add_parser(
        "experiment",
        help="run one of T5's or ExT5's experiments (a grid of runs) and print its table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Trains an experiment's runs (each a normal run folder under DIR/runs), resuming an "
            "interrupted experiment by finishing its unfinished runs only, then writes "
            "DIR/results.json, DIR/results.md and PNG plots and prints the table.\n\n"
            f"experiments:\n{listing}"
        ),
    )
    parser.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help="the experiment")
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        help="optional YAML settings: budget, families, seed, evals, grid, base",
    )
    parser.add_argument("--out", type=Path, help="experiment folder (default: experiments/NAME)")
    parser.add_argument("--budget", type=int, help="training steps of one arm")
    parser.add_argument(
        "--families",
        type=lambda text: [item for item in text.split(",") if item],
        help="comma-separated families or task names to use (default: the experiment's)",
    )
    parser.add_argument("--seed", type=int, help="seed of every run (default: 0)")
    parser.add_argument(
        "--workers", type=int, default=1, help="runs trained at once (the cores are shared)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="write the configs and print each run's `taskmix train` command, stage by stage, "
        "for a scheduler (run the experiment again afterwards to collect the table)",
    )
    parser.add_argument("--no-plots", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from taskmix.recipes.experiments import get_experiment
    from taskmix.recipes.experiments.runner import run_experiment, settings_for

    if args.workers < 1:
        raise SystemExit("taskmix experiment: error: --workers must be at least 1")
    experiment = get_experiment(args.name)
    settings = settings_for(
        experiment, args.config, budget=args.budget, families=args.families, seed=args.seed
    )
    out = args.out or Path("experiments") / args.name
    result = run_experiment(
        args.name,
        out,
        settings,
        workers=args.workers,
        dry_run=args.dry_run,
        plots=not args.no_plots,
    )
    if args.dry_run:
        print("\n".join(result))
    return 0

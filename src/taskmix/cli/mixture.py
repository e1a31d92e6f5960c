"""``taskmix mixture show``: a mixture's tasks, example counts and sampling rates."""

from __future__ import annotations

import argparse
import json

from taskmix.cli.task_files import add_task_files_option, load_cli_tasks
from taskmix.data.registry import MixtureRegistry
from taskmix.errors import ConfigError
from taskmix.tables import print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mixture", help="inspect mixtures and their rates")
    commands = parser.add_subparsers(dest="mixture_command", metavar="ACTION", required=True)
    show = commands.add_parser("show", help="tasks, example counts and rates of a mixture")
    show.add_argument("name", nargs="?", default="default", help="mixture name (default: default)")
    show.add_argument("--cap", type=int, help="override the examples-proportional cap K")
    show.add_argument("--temperature", type=float, help="override the temperature T")
    show.add_argument(
        "--strategy",
        choices=["proportional", "temperature", "equal", "explicit"],
        help="override the rate strategy",
    )
    show.add_argument("--split", default="train")
    show.add_argument("--json", action="store_true")
    add_task_files_option(show)
    show.set_defaults(func=show_mixture)

    list_parser = commands.add_parser("list", help="registered mixtures")
    add_task_files_option(list_parser)
    list_parser.set_defaults(func=list_mixtures)


def show_mixture(args: argparse.Namespace) -> int:
    load_cli_tasks(args)
    mixture = MixtureRegistry.get(args.name)
    if args.cap is not None or args.temperature is not None or args.strategy is not None:
        try:
            mixture = mixture.with_rates(
                strategy=args.strategy, cap=args.cap, temperature=args.temperature
            )
        except ValueError as err:
            raise ConfigError(f"mixture {args.name!r}: {err}") from None
    entries = mixture.describe(args.split)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    rows = [[e["task"], e["family"], e["num_examples"], e["rate"]] for e in entries]
    print(
        f"mixture {mixture.name}: strategy={mixture.strategy} cap={mixture.cap} "
        f"temperature={mixture.temperature}"
    )
    print_table(["task", "family", "examples", "rate"], rows)
    total = sum(e["num_examples"] for e in entries)
    print(
        f"{len(entries)} tasks, {total} {args.split} examples, rates sum to "
        f"{sum(e['rate'] for e in entries):.6f}"
    )
    return 0


def list_mixtures(args: argparse.Namespace) -> int:
    load_cli_tasks(args)
    for name in MixtureRegistry.names():
        print(name)
    return 0

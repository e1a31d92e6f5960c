"""The ``taskmix`` command. Each command group lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version

from taskmix.errors import TaskmixError
from taskmix.training.allocator import use_huge_pages

# Modules of taskmix.cli, each with ``register(subparsers)`` adding its commands.
COMMAND_MODULES = [
    "tasks",
    "mixture",
    "tokenizer",
    "objectives",
    "clean",
    "train",
    "experiment",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskmix", description="Multi-task text-to-text transfer learning."
    )
    parser.add_argument("--version", action="version", version=f"taskmix {version('taskmix')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"taskmix.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"taskmix.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_huge_pages()  # before any command imports torch (taskmix.training.allocator)
    args = build_parser().parse_args(argv)
    try:
        before_torch = getattr(args, "before_torch", None)
        if before_torch is not None:  # e.g. train: its config's cpu.huge_pages
            before_torch(args)
        return int(args.func(args) or 0)
    except TaskmixError as err:
        print(f"taskmix: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

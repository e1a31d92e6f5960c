"""``taskmix tasks list|show``: what tasks exist, their families and split sizes, and examples."""

from __future__ import annotations

import argparse
import json

from taskmix.cli.task_files import add_task_files_option, load_cli_tasks
from taskmix.data.registry import TaskRegistry
from taskmix.tables import print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list and inspect registered tasks")
    commands = parser.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    list_parser = commands.add_parser("list", help="every task with its family and split sizes")
    list_parser.add_argument("--json", action="store_true", help="machine-readable output")
    list_parser.add_argument("--family", help="only tasks of this family")
    add_task_files_option(list_parser)
    list_parser.set_defaults(func=list_tasks)

    show = commands.add_parser("show", help="a task's details and its first examples")
    show.add_argument("name")
    show.add_argument("-n", type=int, default=3, help="number of examples (default 3)")
    show.add_argument("--split", default="train")
    show.add_argument("--json", action="store_true")
    add_task_files_option(show)
    show.set_defaults(func=show_task)


def ordered_splits(names: set[str]) -> list[str]:
    """train, validation, test first, then any other split alphabetically."""
    known = [s for s in ("train", "validation", "test") if s in names]
    return known + sorted(names - set(known))


def task_summary(task) -> dict:
    return {
        "name": task.name,
        "family": task.family,
        "splits": {split: task.num_input_examples(split) for split in task.splits},
        "metrics": list(task.metric_names),
        "description": task.description,
    }


def list_tasks(args: argparse.Namespace) -> int:
    load_cli_tasks(args)
    tasks = [t for t in TaskRegistry if args.family is None or t.family == args.family]
    entries = [task_summary(t) for t in tasks]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    splits = ordered_splits({s for e in entries for s in e["splits"]})
    rows = [
        [e["name"], e["family"], *[e["splits"].get(s, "-") for s in splits], ",".join(e["metrics"])]
        for e in entries
    ]
    print_table(["task", "family", *splits, "metrics"], rows)
    print(f"{len(entries)} tasks")
    return 0


def show_task(args: argparse.Namespace) -> int:
    load_cli_tasks(args)
    task = TaskRegistry.get(args.name)
    summary = task_summary(task)
    examples = []
    for i, ex in enumerate(task.get_dataset(args.split, pretokenized=True)):
        if i >= args.n:
            break
        examples.append({"inputs": ex.get("inputs"), "targets": ex.get("targets")})
    if args.json:
        print(json.dumps({**summary, "examples": examples}, indent=2))
        return 0
    print(f"{task.name}  (family: {task.family})")
    if task.description:
        print(f"  {task.description}")
    print("  splits: " + ", ".join(f"{s}={n}" for s, n in summary["splits"].items()))
    print(f"  metrics: {', '.join(summary['metrics']) or '-'}")
    for ex in examples:
        print(f"\n  inputs:  {ex['inputs']}\n  targets: {ex['targets']}")
    return 0

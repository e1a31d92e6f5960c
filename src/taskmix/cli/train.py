"""``taskmix train|eval|predict``: one command for pre-training, multi-task training and fine-tuning."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskmix.cli.task_files import add_task_files_option, load_cli_tasks
from taskmix.tables import print_table

ACCEPT_HELP = (
    "use the run's task files and data files even if they changed since it was trained "
    "(otherwise a clear error names what changed)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train (or resume) a run from a YAML config")
    train.add_argument("config", type=Path, help="YAML config (see examples/)")
    train.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set steps=100 --set data.batch_size=8",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_files_option(train)
    train.add_argument("--accept-changed-tasks", action="store_true", help=ACCEPT_HELP)
    train.set_defaults(func=run_train, before_torch=huge_pages_from_config)

    evaluate = subparsers.add_parser("eval", help="score a run's checkpoint on tasks")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--split", default="validation")
    add_task_files_option(evaluate, names="tasks to score (default: the run's eval tasks)")
    evaluate.add_argument(
        "--checkpoint",
        default="last",
        help="last; best (average score), best:TASK or best:TASK/METRIC; or a step number",
    )
    evaluate.add_argument("--max-examples", type=int, default=None)
    evaluate.add_argument(
        "--rank-classification",
        action="store_true",
        help="score every label instead of decoding (classification tasks; default: the "
        "run's eval.rank_classification)",
    )
    evaluate.add_argument(
        "--ensemble",
        nargs="+",
        type=Path,
        default=[],
        help="more run folders averaged with this one (logits when decoding, option "
        "log-likelihoods with --rank-classification)",
    )
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--accept-changed-tasks", action="store_true", help=ACCEPT_HELP)
    evaluate.set_defaults(func=run_eval)

    predict = subparsers.add_parser("predict", help="decode inputs with a run's model")
    predict.add_argument("run_dir", type=Path)
    predict.add_argument("texts", nargs="*", help="input texts (or use --file or --task)")
    predict.add_argument("--file", type=Path, help="one input per line ('-' for stdin)")
    predict.add_argument(
        "--task",
        help="predict the first -n examples of this task's --split (inputs, "
        "prediction and target per example)",
    )
    predict.add_argument("--split", default="validation", help="with --task (default validation)")
    predict.add_argument("-n", type=int, default=10, help="with --task: examples (default 10)")
    predict.add_argument("--checkpoint", default="last")
    predict.add_argument("--max-length", type=int, default=64)
    add_task_files_option(predict)
    predict.add_argument("--accept-changed-tasks", action="store_true", help=ACCEPT_HELP)
    predict.set_defaults(func=run_predict)


def huge_pages_from_config(args: argparse.Namespace) -> None:
    """``cpu.huge_pages``: torch reads ``THP_MEM_ALLOC_ENABLE`` once, at its first allocation,
    so the command sets it from the config before anything imports torch (reading the config
    does not)."""
    from taskmix.training.allocator import use_huge_pages
    from taskmix.training.config import load_config

    use_huge_pages(load_config(args.config, args.overrides, task_files=args.tasks).cpu.huge_pages)


def run_train(args: argparse.Namespace) -> int:
    from taskmix.evaluation import task_evaluator
    from taskmix.training.config import load_config
    from taskmix.training.trainer import train

    config = load_config(args.config, args.overrides, task_files=args.tasks)
    run_dir = args.out or Path("runs") / args.config.stem
    state = train(
        config,
        run_dir,
        progress=not args.no_progress,
        evaluate=task_evaluator(config),
        accept_changed_tasks=args.accept_changed_tasks,
    )
    print(f"run folder: {run_dir} (step {state.step}; report: {run_dir / 'report.json'})")
    if state.history:
        _print_results(state.history[-1]["results"])
    return 0


def _print_results(results: dict[str, dict[str, float]]) -> None:
    rows = [
        [task, metric, value]
        for task, metrics in results.items()
        for metric, value in metrics.items()
    ]
    print_table(["task", "metric", "score"], rows)


def run_eval(args: argparse.Namespace) -> int:
    from taskmix.errors import TaskmixError
    from taskmix.evaluation.evaluator import evaluate_tasks
    from taskmix.training.identity import short, vocabulary_fingerprint
    from taskmix.training.plan import resolve_mixture
    from taskmix.training.runs import load_run

    accept = args.accept_changed_tasks
    model, vocabulary, config = load_run(args.run_dir, args.checkpoint, accept_changed_tasks=accept)
    names, _ = load_cli_tasks(args)
    models = [model]
    for other in args.ensemble:
        member, member_vocabulary, _ = load_run(other, args.checkpoint, accept_changed_tasks=accept)
        mine, theirs = vocabulary_fingerprint(vocabulary), vocabulary_fingerprint(member_vocabulary)
        if mine != theirs:
            raise TaskmixError(
                f"--ensemble: {other} uses another vocabulary ({short(theirs)}) than "
                f"{args.run_dir} ({short(mine)}); an ensemble averages over one vocabulary"
            )
        models.append(member)
    tasks = names or config.eval.tasks
    if not tasks:
        tasks = [t.name for t in resolve_mixture(config).tasks if t.metric_names]
    results = evaluate_tasks(
        models if len(models) > 1 else model,
        tasks,
        vocabulary=vocabulary if config.vocabulary != "default" else None,
        split=args.split,
        max_examples=args.max_examples or config.eval.max_examples,
        batch_size=config.eval.batch_size,
        max_decode_length=config.eval.max_decode_length,
        input_length=config.data.input_length,
        rank_classification=args.rank_classification or config.eval.rank_classification,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_results(results)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from taskmix.data.registry import TaskRegistry
    from taskmix.evaluation.evaluator import eval_examples, predict_texts
    from taskmix.training.runs import load_run

    texts = list(args.texts)
    if args.file:
        lines = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        texts += [line for line in lines.splitlines() if line.strip()]
    if not texts and not args.task:
        print("taskmix: error: give input texts, --file or --task", file=sys.stderr)
        return 2
    model, vocabulary, config = load_run(
        args.run_dir, args.checkpoint, accept_changed_tasks=args.accept_changed_tasks
    )
    load_cli_tasks(args)
    examples = [{"inputs": vocabulary.encode(t) + [vocabulary.eos_id]} for t in texts]
    task_examples = []
    if args.task:
        own_vocabulary = vocabulary if config.vocabulary != "default" else None
        task = TaskRegistry.get(args.task)
        _, task_examples = eval_examples(task, args.split, args.n, own_vocabulary)
    predictions = predict_texts(
        model,
        examples + task_examples,
        vocabulary,
        max_decode_length=args.max_length,
        input_length=config.data.input_length,
    )
    for prediction in predictions[: len(examples)]:
        print(prediction)
    for example, prediction in zip(task_examples, predictions[len(examples) :], strict=True):
        print(f"inputs:     {example['inputs_pretokenized']}")
        print(f"prediction: {prediction}")
        print(f"target:     {example['targets_pretokenized']}\n")
    return 0

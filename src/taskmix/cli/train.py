"""``taskmix train|eval|predict``: one command for pre-training, multi-task training and fine-tuning."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskmix.cli.table import print_table


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
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser("eval", help="score a run's checkpoint on tasks")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--tasks", nargs="+", help="task names (default: the run's eval tasks)")
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
    evaluate.set_defaults(func=run_eval)

    predict = subparsers.add_parser("predict", help="decode inputs with a run's model")
    predict.add_argument("run_dir", type=Path)
    predict.add_argument("texts", nargs="*", help="input texts (or use --file)")
    predict.add_argument("--file", type=Path, help="one input per line ('-' for stdin)")
    predict.add_argument("--checkpoint", default="last")
    predict.add_argument("--max-length", type=int, default=64)
    predict.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from taskmix.training.config import load_config
    from taskmix.training.trainer import train

    config = load_config(args.config, args.overrides)
    run_dir = args.out or Path("runs") / args.config.stem
    state = train(config, run_dir, progress=not args.no_progress)
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
    from taskmix.training.plan import resolve_mixture, short, vocabulary_fingerprint
    from taskmix.training.runs import load_run

    model, vocabulary, config = load_run(args.run_dir, args.checkpoint)
    models = [model]
    for other in args.ensemble:
        member, member_vocabulary, _ = load_run(other, args.checkpoint)
        mine, theirs = vocabulary_fingerprint(vocabulary), vocabulary_fingerprint(member_vocabulary)
        if mine != theirs:
            raise TaskmixError(
                f"--ensemble: {other} uses another vocabulary ({short(theirs)}) than "
                f"{args.run_dir} ({short(mine)}); an ensemble averages over one vocabulary"
            )
        models.append(member)
    tasks = args.tasks or config.eval.tasks
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
    from taskmix.evaluation.evaluator import predict_texts
    from taskmix.training.runs import load_run

    texts = list(args.texts)
    if args.file:
        lines = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        texts += [line for line in lines.splitlines() if line.strip()]
    if not texts:
        print("taskmix: error: give input texts or --file", file=sys.stderr)
        return 2
    model, vocabulary, config = load_run(args.run_dir, args.checkpoint)
    examples = [{"inputs": vocabulary.encode(t) + [vocabulary.eos_id]} for t in texts]
    predictions = predict_texts(
        model,
        examples,
        vocabulary,
        max_decode_length=args.max_length,
        input_length=config.data.input_length,
    )
    for prediction in predictions:
        print(prediction)
    return 0

"""``taskmix tokenizer train|encode``: train a SentencePiece model on files or tasks; inspect ids."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from taskmix.cli.task_files import add_task_files_option, load_cli_tasks
from taskmix.data.registry import TaskRegistry
from taskmix.data.task import Task
from taskmix.data.tokenizer import (
    MODEL_TYPES,
    SentencePieceVocabulary,
    load_vocabulary,
    train_sentencepiece,
)
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import RecordError, TaskmixError

TEXT_FIELDS = ("inputs", "targets")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokenizer", help="train and inspect tokenizers")
    commands = parser.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    train = commands.add_parser(
        "train",
        help="train a SentencePiece model (T5 layout: pad 0, eos 1, unk 2, 100 sentinels on top)",
    )
    train.add_argument(
        "--input",
        nargs="+",
        default=[],
        metavar="FILE",
        help="UTF-8 text files, one sentence a line",
    )
    add_task_files_option(train, names="tasks whose train split to read")
    train.add_argument(
        "--vocab-size", type=int, required=True, help="sentencepiece pieces, without sentinels"
    )
    train.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.model/.vocab")
    train.add_argument("--model-type", choices=MODEL_TYPES, default="unigram")
    train.add_argument(
        "--max-sentences", type=int, default=1_000_000, help="sample size (0 = all; default 1M)"
    )
    train.add_argument("--character-coverage", type=float, default=1.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--num-threads", type=int, default=4)
    train.set_defaults(func=train_command)

    encode = commands.add_parser("encode", help="show the ids and pieces of a text")
    encode.add_argument("model", help="'byte', a .model file or a Hugging Face tokenizer folder")
    encode.add_argument("text")
    encode.add_argument("--json", action="store_true", help="machine-readable output")
    encode.set_defaults(func=encode_command)


def file_lines(paths: Sequence[str]) -> Iterator[str]:
    """Lines of each file, decoded strictly so a bad byte is reported with its file and line."""
    for name in paths:
        path = Path(name)
        try:
            handle = path.open("rb")
        except OSError as err:
            raise TaskmixError(f"cannot read {path}: {err.strerror or err}") from None
        with handle:
            for lineno, raw in enumerate(handle, 1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise RecordError(
                        f"not UTF-8 (byte {err.start})", where=f"{path}:{lineno}"
                    ) from None


def resolve_tasks(names: Sequence[str]) -> list[Task]:
    """Look every task up before training, so a typo fails before any text is read."""
    tasks = []
    for name in names:
        try:
            task = TaskRegistry.get(name)
        except KeyError as err:
            raise TaskmixError(f"{err.args[0]} (see taskmix tasks list)") from None
        if "train" not in task.splits:
            raise TaskmixError(f"task {name!r} has no train split (splits: {list(task.splits)})")
        tasks.append(task)
    return tasks


def task_texts(tasks: Sequence[Task]) -> Iterator[str]:
    """The ``inputs`` and ``targets`` strings of each task's train split, before tokenization."""
    for task in tasks:
        for example in task.get_dataset("train", pretokenized=True):
            for field in TEXT_FIELDS:
                text = example.get(field)
                if isinstance(text, str):
                    yield text


def train_command(args: argparse.Namespace) -> int:
    if not args.input and not args.tasks:
        raise TaskmixError("give --input FILE... and/or --tasks NAME|FILE... to train on")
    names, files = load_cli_tasks(args)
    if files and not names:  # task files alone: every task they define
        names = [name for file in files for name in file.tasks]
    missing = [name for name in args.input if not Path(name).is_file()]
    if missing:
        raise TaskmixError(f"input file not found: {', '.join(missing)}")
    tasks = resolve_tasks(names)
    texts = itertools.chain(file_lines(args.input), task_texts(tasks))
    path = train_sentencepiece(
        texts,
        args.out,
        args.vocab_size,
        model_type=args.model_type,
        character_coverage=args.character_coverage,
        seed=args.seed,
        max_sentences=args.max_sentences,
        num_threads=args.num_threads,
    )
    vocab = SentencePieceVocabulary(path)
    note = "" if vocab.base_vocab_size >= args.vocab_size else " (corpus too small for more)"
    print(
        f"trained {args.model_type} model: {vocab.base_vocab_size} pieces{note} + "
        f"{vocab.num_extra_ids} sentinels = vocabulary size {vocab.vocab_size}"
    )
    print(f"wrote {path}")
    return 0


def pieces_of(vocab: Vocabulary, ids: Sequence[int]) -> list[str]:
    """The token string of each id (vocabularies without ``id_to_piece`` decode ids one by one)."""
    id_to_piece = getattr(vocab, "id_to_piece", None)
    if id_to_piece is not None:
        return [id_to_piece(i) for i in ids]
    return [vocab.decode([i]) for i in ids]


def encode_command(args: argparse.Namespace) -> int:
    vocab = load_vocabulary(args.model)
    ids = vocab.encode(args.text)
    pieces = pieces_of(vocab, ids)
    if args.json:
        print(json.dumps({"ids": ids, "pieces": pieces, "decoded": vocab.decode(ids)}))
        return 0
    print(f"{len(ids)} tokens (vocabulary size {vocab.vocab_size})")
    for token_id, piece in zip(ids, pieces, strict=True):
        print(f"{token_id}\t{piece}")
    print(f"decoded: {vocab.decode(ids)}")
    return 0

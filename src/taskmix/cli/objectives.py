"""``taskmix objectives show``: what each pre-training objective makes of a sentence."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from taskmix.data.task import stable_seed
from taskmix.data.vocabulary import ByteVocabulary, Vocabulary
from taskmix.errors import ConfigError
from taskmix.yamlconf import parse_assignment, parse_scalar

DEFAULT_TEXT = (
    "Thank you for inviting me to your party last week . The food was great , the music was "
    "loud and everyone we met was friendly . We hope to see you again soon and to return the "
    "favour next summer ."
)


class WordVocabulary(Vocabulary):
    """Whitespace words of the given texts as tokens: one token per word makes corruption legible."""

    OFFSET = 3

    def __init__(self, texts: Sequence[str], num_extra_ids: int = 100):
        super().__init__(num_extra_ids)
        self.words: list[str] = []
        self._ids: dict[str, int] = {}
        for text in texts:
            for word in text.split():
                if word not in self._ids:
                    self._ids[word] = self.OFFSET + len(self.words)
                    self.words.append(word)

    @property
    def base_vocab_size(self) -> int:
        return self.OFFSET + len(self.words)

    def _encode(self, text: str) -> list[int]:
        return [self._ids.get(word, self.unk_id) for word in text.split()]

    def _decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i - self.OFFSET] for i in ids if i >= self.OFFSET)


def render(ids: Sequence[int] | None, vocabulary: Vocabulary) -> str:
    """Decode ids, sentinels shown as ``<extra_id_i>``; words are separated by spaces."""
    if ids is None:
        return "(none: decoder-only)"
    text = vocabulary.decode(list(ids))
    if isinstance(vocabulary, WordVocabulary):
        text = text.replace("<extra_id_", " <extra_id_").replace(">", "> ").strip()
        text = " ".join(text.split())
    return text


def _parse_params(pairs: Sequence[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        key, value = parse_assignment(pair, flag="--param", example="noise_density=0.3")
        params[key] = parse_scalar(value.strip())
    return params


def show(args: argparse.Namespace) -> int:
    from taskmix.objectives import OBJECTIVES, get_objective

    names = [args.objective] if args.objective else list(OBJECTIVES)
    params = _parse_params(args.param)
    if params and not args.objective:
        raise ConfigError("--param needs --objective (parameters differ between objectives)")
    vocabulary: Vocabulary = (
        ByteVocabulary() if args.vocab == "bytes" else WordVocabulary([args.text])
    )
    tokens = np.asarray(vocabulary.encode(args.text), dtype=np.int32)
    if tokens.size == 0:
        raise ConfigError("--text: expected some text, got an empty string")
    objectives = {name: get_objective(name, **params) for name in names}
    print(f"text   : {render(tokens, vocabulary)}  ({tokens.size} tokens, {args.vocab})")
    for name, objective in objectives.items():
        rng = np.random.default_rng(stable_seed(args.seed, name))
        inputs, targets = objective.apply(tokens[None, :], vocabulary, rng)
        print(f"\n{name}  {objective!r}")
        print(f"  inputs : {render(inputs.rows()[0] if inputs is not None else None, vocabulary)}")
        print(f"  targets: {render(targets.rows()[0], vocabulary)}")
    print("\n(EOS is appended to inputs and targets after the objective in a task.)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "objectives", help="unsupervised pre-training objectives (span corruption, ...)"
    )
    commands = parser.add_subparsers(dest="objectives_command", metavar="COMMAND", required=True)
    show_parser = commands.add_parser(
        "show", help="print the inputs and targets each objective makes of a sentence"
    )
    show_parser.add_argument("--text", default=DEFAULT_TEXT, help="the sentence to corrupt")
    show_parser.add_argument("--objective", help="only this objective (default: all of them)")
    show_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    show_parser.add_argument(
        "--vocab",
        choices=("words", "bytes"),
        default="words",
        help="tokens: whitespace words (default, most readable) or UTF-8 bytes",
    )
    show_parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="objective parameter, e.g. noise_density=0.5 (repeatable; needs --objective)",
    )
    show_parser.set_defaults(func=show)

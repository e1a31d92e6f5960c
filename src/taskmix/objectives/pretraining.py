"""Objectives by name, and a whole pre-training task built from a text source."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from taskmix.data.task import (
    Example,
    Feature,
    PreprocessContext,
    Preprocessor,
    Source,
    Task,
    append_eos,
    tokenize_no_eos,
)
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError, RecordError
from taskmix.objectives.base import Objective
from taskmix.objectives.chunking import reduce_concat_tokens, select_random_chunk, split_tokens
from taskmix.objectives.denoising import (
    bert_style,
    deshuffling,
    drop_tokens,
    lm,
    mass_style,
    prefix_lm,
)
from taskmix.objectives.span_corruption import (
    SpanCorruption,
    iid_denoising,
    replace_spans,
    span_corruption,
)

#: Objective factories by the name configs use. Each returns an ``Objective`` preprocessor.
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "span_corruption": span_corruption,
    "replace_spans": replace_spans,
    "iid_denoising": iid_denoising,
    "drop_tokens": drop_tokens,
    "bert_style": bert_style,
    "mass_style": mass_style,
    "deshuffling": deshuffling,
    "prefix_lm": prefix_lm,
    "lm": lm,
}


def get_objective(name: str, **params: Any) -> Objective:
    """Build the objective ``name`` with ``params``; unknown names or parameters are config errors."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}")
    factory = OBJECTIVES[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"objective {name!r}: unknown parameter(s) {unknown}; expected some of {list(accepted)}"
        )
    return factory(**params)


def rekey(mapping: dict[str, str]) -> Preprocessor:
    """New example ``{new: record[old]}`` for each pair; a missing field is a ``RecordError``."""

    def rekey(examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
        for ex in examples:
            missing = [old for old in mapping.values() if old not in ex]
            if missing:
                ctx.handle(
                    RecordError("field is missing", where=ex.get("_where"), field=missing[0])
                )
                continue
            out = {new: ex[old] for new, old in mapping.items()}
            if "_where" in ex:
                out["_where"] = ex["_where"]
            yield out

    return rekey


def make_pretraining_task(
    name: str,
    source: Source,
    vocabulary: Vocabulary,
    objective: str | Objective = "span_corruption",
    *,
    input_length: int = 512,
    target_length: int | None = None,
    text_key: str = "text",
    merge_examples: bool = True,
    concat_batch_size: int = 128,
    max_document_tokens: int = 65536,
    **params: Any,
) -> Task:
    """A task that turns raw text into (inputs, targets) with an unsupervised objective.

    Chain (T5's): rekey ``text_key`` -> targets, ``tokenize_no_eos``, ``select_random_chunk``,
    ``reduce_concat_tokens`` (if ``merge_examples``), ``split_tokens`` to the objective's raw
    length, the objective, ``append_eos``. For span corruption the raw length comes from
    ``random_spans_helper`` so inputs are exactly ``input_length`` (with EOS) and targets
    exactly the helper's targets length; ``target_length`` defaults to that.
    ``metadata["sequence_length"]`` records the lengths a trainer should use.
    """
    if isinstance(objective, Objective):
        if params:
            raise ConfigError("pass objective parameters to the objective, not with an instance")
        obj = objective
    else:
        if objective == "span_corruption" or objective == "replace_spans":
            params.setdefault("input_length", input_length)
        obj = get_objective(objective, **params)
    if isinstance(obj, SpanCorruption) and obj.mean_noise_span_length is not None:
        helper_targets = obj.lengths({"inputs": input_length})[1]
        target_length = helper_targets if target_length is None else target_length
    elif target_length is None:
        target_length = input_length
    sequence_length = {"inputs": input_length, "targets": target_length}
    raw_length = obj.raw_length(sequence_length)
    if raw_length < 1:
        raise ConfigError(
            f"task {name!r}: input_length {input_length} / target_length {target_length} leave "
            f"no room for tokens with objective {obj.name}"
        )
    obj.check(vocabulary, sequence_length)

    steps: list[Preprocessor] = [
        rekey({"targets": text_key}),
        tokenize_no_eos,
        select_random_chunk(max_document_tokens),
    ]
    if merge_examples:
        steps.append(reduce_concat_tokens(concat_batch_size))
    steps += [split_tokens(raw_length), obj, append_eos]

    features = {"targets": Feature(vocabulary)}
    if obj.has_inputs:
        features = {"inputs": Feature(vocabulary), **features}
    return Task(
        name=name,
        source=source,
        preprocessors=steps,
        output_features=features,
        family="pretraining",
        description=f"unsupervised pre-training with {obj!r}",
        metadata={
            "objective": obj.name,
            "objective_params": obj.params(),
            "sequence_length": sequence_length,
            "raw_length": raw_length,
        },
    )

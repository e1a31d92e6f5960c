"""Unsupervised pre-training objectives (T5 §3.3): span corruption and the alternatives it beat.

Every objective is a preprocessor ``(examples, ctx) -> examples`` that reads ``targets`` token ids
(no EOS) and writes ``inputs``/``targets``; it corrupts a whole batch of chunks at once with NumPy.
Build one by name with ``get_objective("span_corruption", noise_density=0.15)``, or a full
pre-training task from raw text with ``make_pretraining_task``.
"""

from taskmix.objectives.base import Objective
from taskmix.objectives.chunking import reduce_concat_tokens, select_random_chunk, split_tokens
from taskmix.objectives.denoising import (
    BertStyle,
    Deshuffling,
    DropTokens,
    LanguageModel,
    PrefixLM,
    bert_style,
    deshuffling,
    drop_tokens,
    lm,
    mass_style,
    prefix_lm,
)
from taskmix.objectives.noise import (
    iid_noise_mask,
    random_prefix_noise_mask,
    random_segmentation,
    random_spans_helper,
    random_spans_noise_mask,
    span_counts,
)
from taskmix.objectives.pretraining import OBJECTIVES, get_objective, make_pretraining_task, rekey
from taskmix.objectives.span_corruption import (
    SpanCorruption,
    iid_denoising,
    replace_spans,
    span_corruption,
)
from taskmix.objectives.transforms import Ragged

__all__ = [
    "OBJECTIVES",
    "BertStyle",
    "Deshuffling",
    "DropTokens",
    "LanguageModel",
    "Objective",
    "PrefixLM",
    "Ragged",
    "SpanCorruption",
    "bert_style",
    "deshuffling",
    "drop_tokens",
    "get_objective",
    "iid_denoising",
    "iid_noise_mask",
    "lm",
    "make_pretraining_task",
    "mass_style",
    "prefix_lm",
    "random_prefix_noise_mask",
    "random_segmentation",
    "random_spans_helper",
    "random_spans_noise_mask",
    "reduce_concat_tokens",
    "rekey",
    "replace_spans",
    "select_random_chunk",
    "span_corruption",
    "span_counts",
    "split_tokens",
]

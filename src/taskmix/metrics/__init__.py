"""The metrics T5 reports (SPEC §1), all scaled ×100, computed with the field's libraries.

Every metric takes ``(targets, predictions)``: two equal-length lists of postprocessed values
(label words, floats, answer strings; a target may also be a list of reference answers for the
SQuAD metrics). A prediction that is no valid label simply counts as wrong.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MetricFn = Callable[[Sequence[Any], Sequence[Any]], float]
NEGATIVE_LABELS = {
    "0",
    "no",
    "false",
    "negative",
    "not_entailment",
    "unacceptable",
    "not_duplicate",
}


def _check(targets: Sequence[Any], predictions: Sequence[Any]) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    if not targets:
        raise ValueError("no examples to score")


def accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    _check(targets, predictions)
    return 100.0 * float(np.mean([t == p for t, p in zip(targets, predictions, strict=True)]))


def exact_match(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Whole-string equality after stripping whitespace (semantic parsing, translation-like)."""
    return accuracy([str(t).strip() for t in targets], [str(p).strip() for p in predictions])


def positive_label(targets: Sequence[Any]) -> Any:
    """The positive class of a binary task: 1/True, else the label that is not a usual negative."""
    labels = set(targets)
    if labels <= {0, 1}:
        return 1
    candidates = sorted(str(x) for x in labels if str(x).lower() not in NEGATIVE_LABELS)
    if len(candidates) != 1:
        raise ValueError(
            f"cannot tell the positive label of binary F1 among {sorted(map(str, labels))}"
        )
    return next(x for x in labels if str(x) == candidates[0])


def f1(targets: Sequence[Any], predictions: Sequence[Any], positive: Any | None = None) -> float:
    """Binary F1 of the positive class; any other prediction (including junk) is negative."""
    _check(targets, predictions)
    pos = positive_label(targets) if positive is None else positive
    tp = sum(t == pos and p == pos for t, p in zip(targets, predictions, strict=True))
    fp = sum(t != pos and p == pos for t, p in zip(targets, predictions, strict=True))
    fn = sum(t == pos and p != pos for t, p in zip(targets, predictions, strict=True))
    return 100.0 * (2 * tp / (2 * tp + fp + fn) if tp else 0.0)


def macro_f1(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Mean F1 over the classes present in the targets (junk predictions count as misses)."""
    from sklearn.metrics import f1_score

    _check(targets, predictions)
    labels = sorted({str(t) for t in targets})
    return 100.0 * float(
        f1_score(
            [str(t) for t in targets],
            [str(p) for p in predictions],
            labels=labels,
            average="macro",
            zero_division=0,
        )
    )


def mcc(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Matthews correlation (CoLA)."""
    from sklearn.metrics import matthews_corrcoef

    _check(targets, predictions)
    return 100.0 * float(
        matthews_corrcoef([str(t) for t in targets], [str(p) for p in predictions])
    )


def _correlation(fn, targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    _check(targets, predictions)
    t = np.asarray(targets, dtype=float)
    p = np.asarray(predictions, dtype=float)
    if len(t) < 2 or np.all(t == t[0]) or np.all(p == p[0]):
        return 0.0  # undefined for constant input; a constant predictor earns no credit
    value = float(fn(t, p)[0])
    return 100.0 * value if math.isfinite(value) else 0.0


def pearson(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    from scipy.stats import pearsonr

    return _correlation(pearsonr, targets, predictions)


def spearman(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    from scipy.stats import spearmanr

    return _correlation(spearmanr, targets, predictions)


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(reference: str, prediction: str) -> float:
    ref, pred = normalize_answer(reference).split(), normalize_answer(prediction).split()
    common = Counter(ref) & Counter(pred)
    overlap = sum(common.values())
    if not ref or not pred:
        return float(ref == pred)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def _references(target: Any) -> list[str]:
    return [str(t) for t in target] if isinstance(target, list | tuple) else [str(target)]


def squad_em(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    _check(targets, predictions)
    scores = [
        max(normalize_answer(r) == normalize_answer(p) for r in _references(t))
        for t, p in zip(targets, predictions, strict=True)
    ]
    return 100.0 * float(np.mean(scores))


def squad_f1(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    _check(targets, predictions)
    scores = [
        max(_token_f1(r, str(p)) for r in _references(t))
        for t, p in zip(targets, predictions, strict=True)
    ]
    return 100.0 * float(np.mean(scores))


def bleu(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Corpus BLEU with sacrebleu's defaults (13a tokenisation), as T5 reports."""
    import sacrebleu

    _check(targets, predictions)
    return float(
        sacrebleu.corpus_bleu([str(p) for p in predictions], [[str(t) for t in targets]]).score
    )


def _rouge(kind: str) -> MetricFn:
    def metric(targets: Sequence[Any], predictions: Sequence[Any]) -> float:
        from rouge_score import rouge_scorer

        _check(targets, predictions)
        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        scores = []
        for t, p in zip(targets, predictions, strict=True):
            if kind == "rougeLsum":  # summary-level LCS needs one sentence per line
                t, p = (re.sub(r"(?<=[.!?])\s+", "\n", str(x)) for x in (t, p))
            scores.append(scorer.score(str(t), str(p))[kind].fmeasure)
        # The plain mean (T5 reports the bootstrap median, which is random and nearly equal).
        return 100.0 * float(np.mean(scores))

    metric.__name__ = kind
    return metric


METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "exact_match": exact_match,
    "f1": f1,
    "macro_f1": macro_f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
    "squad_em": squad_em,
    "squad_f1": squad_f1,
    "bleu": bleu,
    "rouge1": _rouge("rouge1"),
    "rouge2": _rouge("rouge2"),
    "rougeLsum": _rouge("rougeLsum"),
}


def compute_metrics(
    names: Sequence[str],
    targets: Sequence[Any],
    predictions: Sequence[Any],
    *,
    positive_label: Any | None = None,
) -> dict[str, float]:
    """``{metric: score}``; ``positive_label`` names binary F1's positive class (else guessed)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {
        name: f1(targets, predictions, positive_label)
        if name == "f1"
        else METRICS[name](targets, predictions)
        for name in names
    }

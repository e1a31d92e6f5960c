"""Chance-level scores: what a trivial predictor gets on a task's test split (all x100, as T5).

The trivial predictor always outputs the most frequent training target (the majority class for
classification; ties go to the alphabetically first). A constant prediction has no correlation,
so Pearson/Spearman chance is 0, and so is MCC. BLEU uses sacrebleu (the ``eval``
extra; left out without it). ROUGE is computed here as rouge-score does without stemming
(lower-cased alphanumeric tokens; n-gram and LCS F-measure): importing rouge-score pulls in
NLTK, which would cost seconds on every generation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence


def most_frequent(targets: Sequence[str]) -> str:
    counts = Counter(targets)
    best = max(counts.values())
    return min(t for t, c in counts.items() if c == best)


def _squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    pred, ref = _squad_normalize(prediction).split(), _squad_normalize(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _rouge_tokens(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_f(metric: str, prediction: str, reference: str) -> float:
    """ROUGE-1/2/Lsum F-measure of one pair (Lsum = L here: targets are one sentence)."""
    pred, ref = _rouge_tokens(prediction), _rouge_tokens(reference)
    if metric == "rougeLsum":
        overlap, n_pred, n_ref = _lcs(pred, ref), len(pred), len(ref)
    else:
        n = int(metric[-1])
        p = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        overlap, n_pred, n_ref = sum((p & r).values()), sum(p.values()), sum(r.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def _f1_for(label: str, prediction: str, references: Sequence[str]) -> float:
    tp = sum(1 for r in references if r == label and prediction == label)
    fp = sum(1 for r in references if r != label and prediction == label)
    fn = sum(1 for r in references if r == label and prediction != label)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def chance_scores(
    metrics: Sequence[str],
    train_targets: Sequence[str],
    test_targets: Sequence[str],
    *,
    positive_label: str | None = None,
) -> dict[str, float]:
    """``{metric: score}`` of the constant most-frequent-target predictor on ``test_targets``."""
    guess = most_frequent(train_targets)
    refs = list(test_targets)
    n = len(refs)
    out: dict[str, float] = {}
    for metric in metrics:
        if metric in ("accuracy", "exact_match"):
            out[metric] = 100 * sum(r.strip() == guess.strip() for r in refs) / n
        elif metric == "f1":
            out[metric] = 100 * _f1_for(positive_label or guess, guess, refs)
        elif metric == "macro_f1":
            labels = sorted(set(refs) | {guess})
            out[metric] = 100 * sum(_f1_for(lab, guess, refs) for lab in labels) / len(labels)
        elif metric in ("mcc", "pearson", "spearman"):
            out[metric] = 0.0
        elif metric == "squad_em":
            out[metric] = (
                100 * sum(_squad_normalize(r) == _squad_normalize(guess) for r in refs) / n
            )
        elif metric == "squad_f1":
            out[metric] = 100 * sum(_token_f1(guess, r) for r in refs) / n
        elif metric == "bleu":
            try:
                import sacrebleu
            except ImportError:
                continue
            out[metric] = float(sacrebleu.corpus_bleu([guess] * n, [refs]).score)
        elif metric in ("rouge1", "rouge2", "rougeLsum"):
            out[metric] = 100 * sum(rouge_f(metric, guess, r) for r in refs) / n
        else:
            raise ValueError(f"no chance level defined for metric {metric!r}")
    return {k: round(v, 2) for k, v in out.items()}

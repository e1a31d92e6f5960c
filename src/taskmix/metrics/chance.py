"""Chance-level scores: what a trivial predictor gets on a task's test split (all x100, as T5).

The trivial predictor always outputs the most frequent training target (the majority class for
classification; ties go to the alphabetically first). It is scored with the same metrics as a
model (``taskmix.metrics``), so a constant prediction earns 0 Pearson/Spearman/MCC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def most_frequent(targets: Sequence[str]) -> str:
    counts = Counter(targets)
    best = max(counts.values())
    return min(t for t, c in counts.items() if c == best)


def chance_scores(
    metrics: Sequence[str],
    train_targets: Sequence[str],
    test_targets: Sequence[str],
    *,
    positive_label: str | None = None,
) -> dict[str, float]:
    """``{metric: score}`` of the constant most-frequent-target predictor on ``test_targets``."""
    from taskmix.metrics import compute_metrics

    guess = most_frequent(train_targets)
    scores = compute_metrics(
        metrics, list(test_targets), [guess] * len(test_targets), positive_label=positive_label
    )
    return {k: round(v, 2) for k, v in scores.items()}

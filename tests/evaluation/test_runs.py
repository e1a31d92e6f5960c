"""task_evaluator: the evaluation a training run's loop calls."""

from __future__ import annotations

from taskmix.training.config import parse_config
from tests.training.helpers import tiny
from tests.training.helpers import train_and_evaluate as train


def test_eval_rank_classification_reaches_the_evaluator(tmp_path, monkeypatch):
    import taskmix.evaluation.runs as runs

    calls = []

    def fake(models, tasks, **kwargs):
        calls.append(kwargs["rank_classification"])
        return {"topic": {"accuracy": 1.0}}

    monkeypatch.setattr(runs, "evaluate_tasks", fake)
    config = tiny(steps=1, eval={"rank_classification": True})
    train(parse_config(config), tmp_path / "run", progress=False)
    assert calls == [True]

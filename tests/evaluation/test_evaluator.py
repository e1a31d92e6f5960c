import pytest
import torch

from taskmix.data.task import Feature, Task, tokenize
from taskmix.data.vocabulary import ByteVocabulary
from taskmix.evaluation.evaluator import evaluate_task
from taskmix.models import build_model, preset
from tests.data.helpers import ListSource

LABELS = ["yes", "no"]


@pytest.fixture
def task():
    vocab = ByteVocabulary()
    records = [{"inputs": f"q{i}", "targets": LABELS[i % 2]} for i in range(6)]
    return Task(
        name="yes_no",
        source=ListSource({"validation": records}),
        preprocessors=[tokenize],
        output_features={"inputs": Feature(vocab), "targets": Feature(vocab)},
        metric_names=("accuracy", "f1"),
        metadata={"labels": LABELS, "positive_label": "yes"},
    )


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = preset(
        "tiny",
        version="1.1",
        vocab_size=384,
        d_model=16,
        d_ff=16,
        d_kv=8,
        num_heads=2,
        num_layers=1,
    )
    return build_model(config).eval()


def test_decoding_scores_every_example_and_returns_predictions(task, model):
    scores = evaluate_task(model, task, max_decode_length=4, return_predictions=True)
    assert set(scores) == {"accuracy", "f1", "_predictions"}
    assert len(scores["_predictions"]) == 6
    assert 0.0 <= scores["accuracy"] <= 100.0


def test_rank_classification_only_predicts_labels(task, model):
    scores = evaluate_task(model, task, rank_classification=True, return_predictions=True)
    predictions = {p["prediction"] for p in scores["_predictions"]}
    assert predictions <= set(LABELS)
    expected = 100 * sum(p["prediction"] == p["target"] for p in scores["_predictions"]) / 6
    assert scores["accuracy"] == pytest.approx(expected)


def test_an_ensemble_of_one_model_twice_equals_the_model(task, model):
    single = evaluate_task(model, task, max_decode_length=4, return_predictions=True)
    double = evaluate_task([model, model], task, max_decode_length=4, return_predictions=True)
    assert single["_predictions"] == double["_predictions"]


def test_rank_classification_of_an_ensemble_averages_the_option_scores(task, monkeypatch):
    """Model A prefers "yes" by 1 nat, model B prefers "no" by 5: the average picks "no"."""
    import taskmix.evaluation.evaluator as evaluator
    import taskmix.models.generate as generate
    from taskmix.evaluation.evaluator import rank_classify

    a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    fixed = {id(a): [0.0, -1.0], id(b): [-5.0, 0.0]}

    def score_options(model, inputs, options, **kwargs):
        row = fixed[id(model)]
        return generate.OptionScores(
            scores=[row] * len(inputs), best=[row.index(max(row))] * len(inputs)
        )

    monkeypatch.setattr(evaluator, "score_options", score_options)
    examples = [{"inputs": [5, 6, 1]}, {"inputs": [7, 1]}]
    vocab = ByteVocabulary()
    assert rank_classify(a, examples, vocab, LABELS) == ["yes", "yes"]
    assert rank_classify([a, b], examples, vocab, LABELS) == ["no", "no"]


def test_rank_classification_of_one_model_twice_equals_the_model(task, model):
    single = evaluate_task(model, task, rank_classification=True, return_predictions=True)
    double = evaluate_task([model, model], task, rank_classification=True, return_predictions=True)
    assert single["_predictions"] == double["_predictions"]

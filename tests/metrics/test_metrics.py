import pytest

from taskmix.metrics import METRICS, compute_metrics, normalize_answer


def test_accuracy_counts_junk_as_wrong():
    assert compute_metrics(
        ["accuracy"], ["yes", "no", "yes", "no"], ["yes", "no", "banana", "yes"]
    ) == {"accuracy": 50.0}


def test_binary_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    t = ["entailment", "not_entailment", "entailment", "entailment", "not_entailment"]
    p = ["entailment", "entailment", "junk", "entailment", "not_entailment"]
    ref = f1_score([x == "entailment" for x in t], [x == "entailment" for x in p])
    assert METRICS["f1"](t, p) == pytest.approx(100 * ref)


def test_mcc_and_macro_f1_range_and_perfect():
    t = ["acceptable", "unacceptable", "acceptable", "unacceptable"]
    assert METRICS["mcc"](t, t) == pytest.approx(100.0)
    assert METRICS["mcc"](t, t[::-1]) == pytest.approx(-100.0)
    assert METRICS["macro_f1"](["a", "b", "c"], ["a", "b", "x"]) == pytest.approx(100 * 2 / 3)


def test_correlations():
    t = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert METRICS["pearson"](t, [0.2, 1.1, 2.3, 2.9, 4.2]) > 99
    assert METRICS["spearman"](t, [5, 4, 3, 2, 1]) == pytest.approx(-100.0)
    assert METRICS["pearson"](t, [2.0] * 5) == 0.0  # constant predictions: no credit, no NaN


def test_squad_normalisation_and_max_over_references():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert METRICS["squad_em"]([["Paris", "the city of Paris"]], ["city of paris"]) == 100.0
    assert METRICS["squad_f1"](["red fox"], ["a red dog"]) == pytest.approx(50.0)


def test_bleu_and_rouge_behave():
    refs = ["the cat sat on the mat today", "a dog ran in the park"]
    assert METRICS["bleu"](refs, refs) == pytest.approx(100.0)
    assert METRICS["bleu"](refs, ["zzz qqq", "xxx yyy"]) < 5
    assert METRICS["rouge1"](refs, refs) == pytest.approx(100.0)
    assert 0 < METRICS["rouge2"](refs, ["the cat sat on a mat", "a dog ran"]) < 100
    assert METRICS["rougeLsum"](["One. Two."], ["One. Two."]) == pytest.approx(100.0)


def test_errors():
    with pytest.raises(KeyError, match="unknown metric"):
        compute_metrics(["nope"], ["a"], ["a"])
    with pytest.raises(ValueError, match="2 targets but 1"):
        compute_metrics(["accuracy"], ["a", "b"], ["a"])

import numpy as np
import pytest

from taskmix.data.formatting import require_text
from taskmix.data.report import ErrorReport
from taskmix.data.task import map_examples, stable_seed, tokenize, validate_name
from taskmix.data.vocabulary import ByteVocabulary
from taskmix.errors import RecordError

from .helpers import ListSource, make_task


def test_tokenize_appends_eos_and_keeps_text():
    task = make_task("t", 3)
    ex = next(task.get_dataset("train"))
    vocab = ByteVocabulary()
    assert ex["inputs"].dtype == np.int32
    assert ex["inputs"][-1] == vocab.eos_id
    assert vocab.decode(ex["inputs"]) == ex["inputs_pretokenized"] == "t train 0"


def test_seeded_pass_is_a_reproducible_permutation():
    task = make_task("t", 50)
    task.shuffle_buffer_size = 8
    first = [e["inputs_pretokenized"] for e in task.get_dataset("train", seed=3)]
    again = [e["inputs_pretokenized"] for e in task.get_dataset("train", seed=3)]
    other_epoch = [e["inputs_pretokenized"] for e in task.get_dataset("train", seed=3, epoch=1)]
    in_order = [e["inputs_pretokenized"] for e in task.get_dataset("train")]
    assert first == again
    assert sorted(first) == sorted(in_order) and first != in_order
    assert other_epoch != first


def test_shards_are_disjoint_and_complete():
    task = make_task("t", 23)
    shards = [
        [e["inputs_pretokenized"] for e in task.get_dataset("train", shard_index=r, num_shards=4)]
        for r in range(4)
    ]
    flat = [x for s in shards for x in s]
    assert len(flat) == len(set(flat)) == 23


def test_record_error_names_file_line_and_field_or_is_counted():
    def needs_question(ex):
        return {"inputs": require_text(ex, "question"), "targets": "x"}

    source = ListSource({"train": [{"question": "q"}, {"question": "  "}, {"other": 1}]})
    task = make_task("t", 1, preprocessors=[map_examples(needs_question), tokenize])
    task.source = source
    with pytest.raises(RecordError, match=r"mem/train:2: field 'question': empty"):
        list(task.get_dataset("train"))
    task.on_error = "skip"
    report = ErrorReport()
    kept = list(task.get_dataset("train", report=report))
    assert len(kept) == 1
    assert report.skipped == {"empty": 1, "missing": 1}


def test_pretokenized_stops_before_tokenize_and_with_vocabulary_swaps():
    task = make_task("t", 2)
    assert next(task.get_dataset("train", pretokenized=True))["inputs"] == "t train 0"

    class Shifted(ByteVocabulary):
        def _encode(self, text):
            return [5 for _ in text]

    swapped = task.with_vocabulary(Shifted())
    assert set(next(swapped.get_dataset("train"))["inputs"][:-1]) == {5}
    assert next(task.get_dataset("train"))["inputs"][0] != 5  # the original is untouched


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-x", "a b", "..", "x..y"])
def test_names_that_become_paths_are_validated(bad):
    with pytest.raises(ValueError):
        validate_name(bad)


def test_stable_seed_is_stable_and_distinct():
    assert stable_seed("a", 1) == stable_seed("a", 1)
    assert stable_seed("a", 1) != stable_seed("a", 2)
    assert stable_seed("x") == 2474749279504906390  # fixed across machines and Python runs


def test_an_example_dropped_by_map_examples_is_counted_with_its_reason_and_place():
    def keep_even(ex):
        return ex if int(ex["targets"][1:]) % 2 == 0 else None

    task = make_task("t", 5, preprocessors=[map_examples(keep_even), tokenize])
    report = ErrorReport()
    kept = [e["targets_pretokenized"] for e in task.get_dataset("train", report=report)]
    assert kept == ["t0", "t2", "t4"]
    assert report.dropped == {"keep_even returned None": 2}
    assert report.examples == [
        "mem/train:2: dropped: keep_even returned None",
        "mem/train:4: dropped: keep_even returned None",
    ]
    assert report.total_skipped() == 0  # a filter is not an error

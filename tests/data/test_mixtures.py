"""Mixtures: flattened nested rates, lazy names, endless seeded streams, resume, sharding."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import islice

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from taskmix.data.mixtures import Mixture, as_mixture
from taskmix.data.registry import MixtureRegistry, TaskRegistry
from taskmix.data.task import Feature, Source, Task, map_examples, tokenize
from taskmix.data.vocabulary import ByteVocabulary
from taskmix.errors import EmptyTaskError, RecordError

VOCAB = ByteVocabulary()


class ListSource(Source):
    """Records from in-memory lists, sharded by position as the ``Source`` contract says."""

    def __init__(self, records: dict[str, list[dict]]):
        self.records = records

    @property
    def splits(self):
        return list(self.records)

    def iter_records(self, split, ctx, *, shard_index=0, num_shards=1):
        self.check_split(split)
        for i, record in enumerate(self.records[split]):
            if i % num_shards == shard_index:
                yield {**record, "_where": f"memory:{i + 1}"}

    def num_records(self, split):
        return len(self.records[split])


def make_task(name: str, n: int, family: str = "other", splits=("train",)) -> Task:
    records = [{"inputs": f"{name} {i}", "targets": str(i)} for i in range(n)]
    return Task(
        name=name,
        source=ListSource({split: records for split in splits}),
        preprocessors=[tokenize],
        output_features={"inputs": Feature(VOCAB), "targets": Feature(VOCAB)},
        family=family,
        shuffle_buffer_size=6,
    )


def key(example: dict) -> tuple[str, str]:
    return example["_task"], example["inputs_pretokenized"]


@pytest.fixture
def registries(monkeypatch):
    """Empty task and mixture registries."""
    for registry in (TaskRegistry, MixtureRegistry):
        monkeypatch.setattr(registry, "_items", {})
    return TaskRegistry, MixtureRegistry


# --- rates of (nested) mixtures -------------------------------------------------------------


def test_flat_rates_describe_and_counts():
    mix = Mixture("m", [make_task("a", 100, "nli"), make_task("b", 300, "qa")], cap=200)
    assert [t.name for t in mix.tasks] == ["a", "b"]
    assert mix.num_examples() == {"a": 100, "b": 300}
    assert mix.rates() == pytest.approx({"a": 1 / 3, "b": 2 / 3})
    rows = mix.describe()
    assert rows == [
        {"task": "a", "family": "nli", "num_examples": 100, "rate": pytest.approx(1 / 3)},
        {"task": "b", "family": "qa", "num_examples": 300, "rate": pytest.approx(2 / 3)},
    ]
    json.dumps(rows)


def test_nested_mixture_counts_as_one_component_with_summed_examples():
    a, b, c = make_task("a", 100), make_task("b", 300), make_task("c", 600)
    inner = Mixture("inner", [a, b])
    outer = Mixture("outer", [inner, c])
    # inner weighs 100 + 300 = 400 against c's 600, then splits 1:3 by its own rates.
    assert outer.rates() == pytest.approx({"a": 0.1, "b": 0.3, "c": 0.6})
    # The parent's strategy applies to the sub-mixture's count; the child's inside it.
    tempered = Mixture("tempered", [inner, c], strategy="temperature", temperature=2.0)
    w_inner, w_c = 400**0.5, 600**0.5
    share = w_inner / (w_inner + w_c)
    assert tempered.rates() == pytest.approx({"a": share * 0.25, "b": share * 0.75, "c": 1 - share})
    equal_inner = Mixture("equal_inner", [a, b], strategy="equal")
    weighted = Mixture("weighted", [(equal_inner, 1.0), (c, 3.0)], strategy="explicit")
    assert weighted.rates() == pytest.approx({"a": 0.125, "b": 0.125, "c": 0.75})


def test_task_reached_twice_gets_the_sum_and_deep_nesting_flattens():
    a, b = make_task("a", 100), make_task("b", 100)
    inner = Mixture("inner", [a, b])
    outer = Mixture("outer", [(inner, 1.0), (a, 1.0)], strategy="explicit")
    assert outer.rates() == pytest.approx({"a": 0.75, "b": 0.25})
    assert [t.name for t in outer.tasks] == ["a", "b"]
    deepest = Mixture("l3", [Mixture("l2", [Mixture("l1", [a])]), b])
    assert deepest.rates() == pytest.approx({"a": 0.5, "b": 0.5})


def test_zero_weight_submixture_keeps_its_tasks_at_rate_zero():
    inner = Mixture("inner", [make_task("a", 10), make_task("b", 10)])
    outer = Mixture("outer", [(inner, 0.0), (make_task("c", 5), 1.0)], strategy="explicit")
    assert outer.rates() == {"a": 0.0, "b": 0.0, "c": 1.0}


def test_names_resolve_lazily_and_cycles_are_reported(registries):
    tasks, mixtures = registries
    mixtures.add(Mixture("late", ["x", ("sub", 2.0)]))
    with pytest.raises(KeyError, match="unknown task or mixture 'x'"):
        mixtures.get("late").rates()
    tasks.add(make_task("x", 30))
    tasks.add(make_task("y", 10))
    mixtures.add(Mixture("sub", ["y"]))
    # x counts 30 examples; sub has the fixed rate 2.0 -> x is 30 / 32 of the mixture.
    assert mixtures.get("late").rates() == pytest.approx({"x": 30 / 32, "y": 2 / 32})
    assert as_mixture("x").rates() == {"x": 1.0}
    assert as_mixture("sub") is mixtures.get("sub")

    mixtures.add(Mixture("loop_a", ["loop_b", "x"]))
    mixtures.add(Mixture("loop_b", ["loop_a"]))
    with pytest.raises(ValueError, match="loop_a -> loop_b -> loop_a"):
        mixtures.get("loop_a").rates()


def test_as_mixture_of_a_task_is_a_one_task_mixture():
    task = make_task("solo", 4)
    mix = as_mixture(task)
    assert mix.name == "solo" and mix.tasks == [task]
    examples = list(islice(mix.get_stream(seed=1), 10))
    assert {ex["_task"] for ex in examples} == {"solo"}
    assert as_mixture(mix) is mix


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Mixture("m", []), "non-empty list"),
        (lambda: Mixture("m", [make_task("a", 1), make_task("a", 2)]), "twice"),
        (lambda: Mixture("m", [(make_task("a", 1), -1.0)]), "must be >= 0"),
        (lambda: Mixture("m", [make_task("a", 1)], strategy="best"), "unknown mixing strategy"),
        (lambda: Mixture("m", [make_task("a", 1)], cap=0), "cap must be"),
        (lambda: Mixture("m", [make_task("a", 1)], temperature=2.0), "strategy='temperature'"),
        (lambda: Mixture("m", [make_task("a", 1)], scale={"zz": 2.0}), "unknown components"),
        (lambda: Mixture("../m", [make_task("a", 1)]), "invalid mixture name"),
    ],
)
def test_bad_mixture_definitions_fail_at_definition(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build()


def test_missing_split_and_bad_shards_are_clear_errors():
    mix = Mixture("m", [make_task("a", 5), make_task("b", 5, splits=("train", "validation"))])
    with pytest.raises(ValueError, match="task 'a' in mixture 'm' has no split 'validation'"):
        mix.rates("validation")
    assert mix.splits == ["train"]
    with pytest.raises(ValueError, match="shard_index must be in"):
        mix.get_stream(shard_index=2, num_shards=2)
    with pytest.raises(ValueError, match="num_shards"):
        mix.get_stream(num_shards=0)


# --- streams -------------------------------------------------------------------------------


def small_mixture() -> Mixture:
    return Mixture("small", [make_task("a", 5), make_task("b", 13), make_task("c", 8)])


def test_stream_is_endless_seeded_and_tags_tasks():
    mix = small_mixture()
    first = [key(ex) for ex in islice(mix.get_stream(seed=3), 200)]
    again = [key(ex) for ex in islice(mix.get_stream(seed=3), 200)]
    other = [key(ex) for ex in islice(mix.get_stream(seed=4), 200)]
    assert first == again and first != other
    assert {task for task, _ in first} == {"a", "b", "c"}  # 200 steps run through many epochs
    example = next(mix.get_stream())
    assert example["inputs"].dtype == np.int32 and example["inputs"][-1] == VOCAB.eos_id


def test_every_epoch_of_a_task_is_complete_and_reshuffled():
    stream = Mixture("one", [make_task("a", 12)]).get_stream(seed=7)
    epochs = [[key(ex)[1] for ex in islice(stream, 12)] for _ in range(3)]
    assert all(sorted(e) == sorted(f"a {i}" for i in range(12)) for e in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_vocabulary_replaces_every_tasks_vocabulary():
    class Sevens(ByteVocabulary):
        def _encode(self, text):
            return [7] * len(text)

    example = next(small_mixture().get_stream(vocabulary=Sevens()))
    assert example["inputs"].tolist() == [7] * len(example["inputs_pretokenized"]) + [1]


@settings(max_examples=25, deadline=None)
@given(stop=st.integers(0, 300), seed=st.integers(0, 2**31), shard=st.integers(0, 1))
def test_restored_stream_continues_identically(stop, seed, shard):
    mix = small_mixture()
    reference = [
        key(ex)
        for ex in islice(mix.get_stream(seed=seed, shard_index=shard, num_shards=2), stop + 40)
    ]
    stream = mix.get_stream(seed=seed, shard_index=shard, num_shards=2)
    assert [key(ex) for ex in islice(stream, stop)] == reference[:stop]
    state = json.loads(json.dumps(stream.state_dict()))
    restored = mix.get_stream(seed=seed, shard_index=shard, num_shards=2)
    restored.load_state_dict(state)
    assert [key(ex) for ex in islice(restored, 40)] == reference[stop:]
    assert len(json.dumps(state)) < 1000


def test_restore_across_a_choice_block_boundary():
    mix = small_mixture()
    reference = [key(ex) for ex in islice(mix.get_stream(seed=5), 1040)]
    stream = mix.get_stream(seed=5)
    for _ in islice(stream, 1020):
        pass
    restored = mix.get_stream(seed=5)
    restored.load_state_dict(stream.state_dict())
    assert restored.step == 1020
    assert [key(ex) for ex in islice(restored, 20)] == reference[1020:]


def test_state_from_another_stream_is_rejected():
    mix = small_mixture()
    state = mix.get_stream(seed=1).state_dict()
    with pytest.raises(ValueError, match="seed=1 but this stream has 2"):
        mix.get_stream(seed=2).load_state_dict(state)
    other = Mixture("small", [make_task("a", 5), make_task("b", 13), make_task("c", 80)])
    with pytest.raises(ValueError, match="fingerprint"):
        other.get_stream(seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="invalid position"):
        mix.get_stream(seed=1).load_state_dict({**state, "tasks": {**state["tasks"], "a": [0, -1]}})


def test_shards_are_disjoint_and_cover_every_epoch():
    mix = Mixture(
        "shards", [make_task("a", 7), make_task("b", 10), make_task("c", 5)], strategy="equal"
    )
    num_shards = 3
    seen: dict[str, list[set]] = defaultdict(list)  # task -> one set per shard (epoch 0)
    for shard in range(num_shards):
        stream = mix.get_stream(seed=11, shard_index=shard, num_shards=num_shards)
        per_task: dict[str, set] = defaultdict(set)
        for example in islice(stream, 60):
            task = example["_task"]
            if stream.position(task)[0] == 0:
                per_task[task].add(example["inputs_pretokenized"])
        for task in ("a", "b", "c"):
            assert stream.position(task)[0] >= 1, "each task should finish its first epoch"
            seen[task].append(per_task[task])
    for task, n in (("a", 7), ("b", 10), ("c", 5)):
        shards = seen[task]
        assert sum(len(s) for s in shards) == n  # disjoint
        assert set().union(*shards) == {f"{task} {i}" for i in range(n)}  # complete


def test_empirical_frequencies_match_rates():
    mix = Mixture("freq", [make_task("a", 50), make_task("b", 150), make_task("c", 300)], cap=100)
    rates = mix.rates()
    assert rates == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.4})
    steps = 5000
    counts = Counter(
        ex["_task"] for ex in islice(mix.get_stream(seed=2, shard_index=1, num_shards=2), steps)
    )
    observed = [counts[name] for name in rates]
    assert chisquare(observed, [steps * r for r in rates.values()]).pvalue > 1e-3
    # The test has power: the same draws are far from equal mixing.
    assert chisquare(observed, [steps / 3] * 3).pvalue < 1e-6


def test_empty_task_is_a_clear_error_not_an_endless_loop():
    with pytest.raises(EmptyTaskError, match="'empty'.*shard 0 of 1"):
        list(
            islice(
                Mixture(
                    "m", [make_task("empty", 0), make_task("b", 3)], strategy="equal"
                ).get_stream(),
                50,
            )
        )
    # One record and two shards: shard 1 of that task is empty.
    with pytest.raises(EmptyTaskError, match="'one'.*shard 1 of 2"):
        list(islice(Mixture("m", [make_task("one", 1)]).get_stream(shard_index=1, num_shards=2), 5))
    # Proportional rates give an empty task rate 0: it is never drawn.
    mix = Mixture("m", [make_task("empty", 0), make_task("b", 3)])
    assert mix.rates() == {"empty": 0.0, "b": 1.0}
    assert {ex["_task"] for ex in islice(mix.get_stream(), 20)} == {"b"}


def test_a_bad_record_fails_every_time_instead_of_ending_the_epoch():
    def reject_three(example):
        if example["inputs"] == "bad 3":
            raise RecordError("unparseable", field="inputs")
        return example

    task = make_task("bad", 6)
    task.preprocessors = [map_examples(reject_three), tokenize]
    stream = as_mixture(task).get_stream(seed=0)
    with pytest.raises(RecordError, match="memory:4: field 'inputs': unparseable"):
        for _ in range(6):
            next(stream)
    before = stream.state_dict()
    with pytest.raises(RecordError):
        next(stream)
    assert stream.state_dict() == before  # nothing consumed, no silent new epoch


@st.composite
def shard_layouts(draw):
    num_shards = draw(st.integers(1, 5))
    # Every shard of every task holds a record (an empty shard raises EmptyTaskError, tested
    # above), so each shard's stream can finish an epoch of every task.
    sizes = draw(st.lists(st.integers(num_shards, 30), min_size=1, max_size=4))
    return sizes, num_shards


@settings(max_examples=40, deadline=None)
@given(layout=shard_layouts(), seed=st.integers(0, 2**31))
def test_shards_of_a_mixture_split_every_task_epoch_disjointly_and_completely(layout, seed):
    """Over one epoch of each task, the shards' examples are disjoint and cover every record."""
    sizes, num_shards = layout
    mix = Mixture("m", [make_task(f"t{i}", n) for i, n in enumerate(sizes)])
    names = [f"t{i}" for i in range(len(sizes))]
    drawn: dict[str, list[str]] = defaultdict(list)
    for shard in range(num_shards):
        # Record i of a task belongs to shard i % num_shards: its epoch there has this size.
        epoch_size = {
            t: len(range(shard, n, num_shards)) for t, n in zip(names, sizes, strict=True)
        }
        stream = mix.get_stream(seed=seed, shard_index=shard, num_shards=num_shards)
        for example in islice(stream, 20_000):
            task = example["_task"]
            if stream.position(task)[0] == 0:  # still epoch 0 once this example is yielded
                drawn[task].append(example["inputs_pretokenized"])
            if all(stream.position(t) >= (0, epoch_size[t]) for t in names):
                break
        assert all(stream.position(t) >= (0, epoch_size[t]) for t in names)
    for task, n in zip(names, sizes, strict=True):
        assert len(drawn[task]) == len(set(drawn[task]))  # disjoint across shards
        assert set(drawn[task]) == {f"{task} {i}" for i in range(n)}  # complete


# --- counts in reports: once per bad record, and part of the state ------------------------------


def task_with_bad_records(n: int = 6, bad=(1, 4)) -> Task:
    """A task whose records ``bad`` fail to parse (skipped) and whose record 2 is filtered."""

    def check(example):
        if example["inputs"] in {f"bad {i}" for i in bad}:
            raise RecordError("unparseable", field="inputs")
        return None if example["inputs"] == "bad 2" else example

    task = make_task("bad", n)
    task.preprocessors = [map_examples(check), tokenize]
    task.on_error = "skip"
    return task


def test_a_bad_record_is_counted_once_however_many_epochs_read_it():
    task = task_with_bad_records()
    stream = as_mixture(task).get_stream(seed=0)
    valid = 6 - 3
    list(islice(stream, valid * 4))  # four epochs
    assert stream.position("bad") == (3, valid)
    report = stream.reports["bad"]
    assert report.skipped == {"unparseable": 2}
    assert report.dropped == {"check returned None": 1}
    assert report.summary() == {"skipped": 2, "truncated": 0, "dropped": 1}
    assert sorted(m.split(":")[1] for m in report.examples) == ["2", "3", "5"]  # memory:<line>


@settings(max_examples=25, deadline=None)
@given(stop=st.integers(0, 40), seed=st.integers(0, 2**31))
def test_report_counts_survive_a_resume_exactly(stop, seed):
    mix = Mixture("m", [task_with_bad_records(), make_task("good", 4)])
    reference = mix.get_stream(seed=seed)
    list(islice(reference, stop + 20))
    stream = mix.get_stream(seed=seed)
    list(islice(stream, stop))
    state = json.loads(json.dumps(stream.state_dict()))
    restored = mix.get_stream(seed=seed)
    held = restored.reports["bad"]  # what a trainer keeps a reference to
    restored.load_state_dict(state)
    assert restored.reports["bad"] is held
    assert {n: r.as_dict() for n, r in restored.reports.items()} == state["reports"]
    list(islice(restored, 20))  # the replay of the current epoch must not count again
    assert {n: r.as_dict() for n, r in restored.reports.items()} == {
        n: r.as_dict() for n, r in reference.reports.items()
    }


def test_version_1_states_load_and_bad_report_states_change_nothing():
    mix = Mixture("m", [task_with_bad_records(), make_task("good", 4)])
    stream = mix.get_stream(seed=1)
    list(islice(stream, 10))
    state = stream.state_dict()
    assert state["reports"]["bad"]["skipped"] == {"unparseable": 2}

    # A checkpoint from before reports were saved loads without counts; the replay of a task's
    # epoch 0 then counts what the old state could not carry.
    solo = as_mixture(task_with_bad_records())
    saved = solo.get_stream(seed=1)
    list(islice(saved, 2))
    assert saved.position("bad") == (0, 2)
    old = {k: v for k, v in saved.state_dict().items() if k != "reports"} | {"version": 1}
    fresh = solo.get_stream(seed=1)
    fresh.load_state_dict(old)
    assert fresh.step == 2 and fresh.reports["bad"].summary()["skipped"] == 0
    list(islice(fresh, 2))
    list(islice(saved, 2))
    assert fresh.reports["bad"].as_dict() == saved.reports["bad"].as_dict()
    assert saved.reports["bad"].summary() == {"skipped": 2, "truncated": 0, "dropped": 1}

    target = mix.get_stream(seed=1)
    list(islice(target, 3))
    before = target.state_dict()
    broken = {**state, "reports": {**state["reports"], "bad": {"skipped": {"x": -1}}}}
    with pytest.raises(ValueError, match="task 'bad'.*'skipped' must map reasons to counts"):
        target.load_state_dict(broken)
    with pytest.raises(ValueError, match="reports for"):
        target.load_state_dict({k: v for k, v in state.items() if k != "reports"})
    assert target.state_dict() == before  # nothing half-restored


# --- rate overrides ------------------------------------------------------------------------------


def test_with_rates_keeps_only_the_settings_the_new_strategy_uses():
    a, b = make_task("a", 100), make_task("b", 400)
    capped = Mixture("m", [a, b], cap=200, scale={"a": 2.0})
    assert capped.rates() == pytest.approx({"a": 0.5, "b": 0.5})
    equal = capped.with_rates(strategy="equal")
    assert (equal.strategy, equal.cap, equal.temperature, equal.scale) == ("equal", None, 1.0, {})
    assert equal.rates() == {"a": 0.5, "b": 0.5}
    assert capped.with_rates(cap=1000).rates() == pytest.approx({"a": 200 / 600, "b": 400 / 600})
    tempered = Mixture("t", [a, b], strategy="temperature", temperature=2.0)
    assert tempered.with_rates(strategy="proportional").rates() == pytest.approx(
        {"a": 0.2, "b": 0.8}
    )
    assert tempered.with_rates(cap=100).temperature == 2.0
    with pytest.raises(ValueError, match="not to 'equal'"):
        capped.with_rates(strategy="equal", cap=10)  # given explicitly: still an error

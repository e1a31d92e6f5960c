from collections import Counter
from itertools import islice

import pytest

from taskmix.data.registry import TaskRegistry
from taskmix.recipes.demo import chance_level

pytestmark = pytest.mark.usefixtures("default_tasks")


def test_chance_is_the_majority_answer_scored_on_the_evaluated_split():
    task = TaskRegistry.get("topic")
    train = [ex["targets"] for ex in task.get_dataset("train", pretokenized=True)]
    guess = Counter(train).most_common(1)[0][0]
    scored = list(islice(task.get_dataset("validation", pretokenized=True), 50))
    expected = 100 * sum(ex["targets"] == guess for ex in scored) / len(scored)
    assert chance_level(task, "validation", 50) == {"accuracy": pytest.approx(expected, abs=0.01)}

"""The training loss per task: task ids through the batch stream, per-token losses from the
model, per-task sums in log.jsonl that add up to the logged loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from taskmix.data.feature_converters import EncDecFeatureConverter, to_torch
from taskmix.training.batches import BatchStream
from taskmix.training.config import parse_config
from taskmix.training.distributed import Distributed
from taskmix.training.task_losses import TaskLosses
from taskmix.training.trainer import train
from tests.training.helpers import tiny

TASKS = ["alpha", "beta", "gamma"]


def _examples(n, seed=0, max_inputs=9, max_targets=5):
    rng = np.random.default_rng(seed)
    return [
        {
            "inputs": np.append(rng.integers(3, 300, int(rng.integers(1, max_inputs))), 1).astype(
                np.int32
            ),
            "targets": np.append(rng.integers(3, 300, int(rng.integers(1, max_targets))), 1).astype(
                np.int32
            ),
            "_task": TASKS[i % 3],
        }
        for i in range(n)
    ]


def _model(architecture="encoder_decoder"):
    from taskmix.models import build_model, preset

    torch.manual_seed(0)
    sizes = {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_heads": 2, "num_layers": 1}
    return build_model(
        preset("tiny", vocab_size=384, dropout_rate=0.0, architecture=architecture, **sizes)
    )


@pytest.mark.parametrize("segmented", [True, False])
def test_token_losses_add_up_to_the_loss_sum_and_are_zero_on_padding(segmented):
    model = _model()
    model.segmented_attention = segmented  # the packed path and the dense one
    batch = to_torch(next(EncDecFeatureConverter(32, 12).iter_batches(_examples(12), 3)))
    out = model(**batch)
    targets = batch["decoder_target_tokens"]
    assert out.token_losses.shape == targets.shape and not out.token_losses.requires_grad
    assert not out.token_losses[targets == 0].any()
    assert (out.token_losses[targets > 0] > 0).all()
    torch.testing.assert_close(out.token_losses.sum(), out.loss_sum.detach())


def test_task_losses_sum_per_task_and_leave_out_padding():
    sums = TaskLosses(["a", "b"], torch.device("cpu"))
    sums.add(torch.tensor([[1, 1, 2, 0]]), torch.tensor([[1.0, 3.0, 5.0, 0.0]]), torch.ones(1, 4))
    sums.add(torch.tensor([[2, 0]]), torch.tensor([[7.0, 0.0]]), torch.tensor([[1, 0]]))
    assert sums.flush(Distributed()) == {
        "task_loss": {"a": 2.0, "b": 6.0},
        "task_tokens": {"a": 2, "b": 2},
    }
    assert sums.flush(Distributed()) == {"task_loss": {}, "task_tokens": {}}


class _Restorable:
    """A list of examples as a restorable stream (what MixtureStream provides)."""

    def __init__(self, examples):
        self.examples, self.i = examples, 0

    def __next__(self):
        self.i += 1
        return self.examples[(self.i - 1) % len(self.examples)]

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = state["i"]


def test_waiting_examples_keep_their_task_across_a_resume():
    examples = _examples(40, seed=3, max_inputs=12, max_targets=6)

    def make():
        converter = EncDecFeatureConverter(12, 6, task_names=TASKS)
        return BatchStream(_Restorable(examples), converter, 1)

    first = make()
    next(first)
    state = first.state_dict()
    assert state["pending"] and all(len(item) == 3 for item in state["pending"])
    second = make()
    second.load_state_dict(json.loads(json.dumps(state)))
    for _ in range(3):
        a, b = next(first), next(second)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # a checkpoint from before task ids: its waiting examples count as untagged (0)
    third = make()
    third.load_state_dict({**state, "pending": [item[:2] for item in state["pending"]]})
    assert [item[2] for item in third.pending] == [0] * len(state["pending"])


TWO_TASKS = """\
mixtures:
  - name: two_tasks_{n}
    tasks: [topic, review_sentiment]
    strategy: equal
"""


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_per_task_losses_in_the_log_add_up_to_the_loss(tmp_path, grad_accum):
    (tmp_path / "tasks.yaml").write_text(TWO_TASKS.format(n=grad_accum))  # one name per file
    config = tiny(
        steps=3,
        grad_accum=grad_accum,
        tasks=[str(tmp_path / "tasks.yaml")],
        data={"mixture": f"two_tasks_{grad_accum}", "batch_size": 2},
    )
    run = tmp_path / "run"
    train(parse_config(config), run, progress=False)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 3
    for record in steps:  # log_every 1: one step per window
        losses, tokens = record["task_loss"], record["task_tokens"]
        assert set(losses) <= {"topic", "review_sentiment"} and losses.keys() == tokens.keys()
        mean = sum(losses[t] * tokens[t] for t in losses) / sum(tokens.values())
        assert mean == pytest.approx(record["loss"], abs=1e-5)
    assert {t for r in steps for t in r["task_loss"]} == {"topic", "review_sentiment"}

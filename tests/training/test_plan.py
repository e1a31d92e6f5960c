"""Every bad name in a config fails before the run folder exists; identities are enforced."""

from __future__ import annotations

from itertools import islice

import pytest

from taskmix.errors import CheckpointError, ConfigError
from taskmix.training.config import parse_config
from taskmix.training.identity import vocabulary_fingerprint
from taskmix.training.plan import plan_run
from taskmix.training.trainer import train
from tests.training.helpers import tiny


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"model": {"overrides": {"d_modle": 32}}},
            r"model\.overrides\.d_modle: unknown T5Config field; expected one of \[.*'d_model'",
        ),
        (
            {"model": {"overrides": {"vocab_size": 512}}},
            r"model\.overrides\.vocab_size: set by vocabulary",
        ),
        ({"model": {"overrides": {"d_model": -4}}}, r"model\.overrides: .*d_model"),
        ({"model": {"preset": "huge"}}, r"model\.preset: expected one of \['tiny'.*got 'huge'"),
        ({"data": {"mixture": "defualt"}}, r"data\.mixture: unknown task or mixture 'defualt'"),
        ({"data": {"split": "dev"}}, r"data\.split.*no split 'dev'"),
        ({"eval": {"tasks": ["topik"]}}, r"eval\.tasks: unknown task 'topik'"),
        ({"eval": {"split": "dev"}}, r"eval\.split: task 'topic' has no split 'dev'"),
        (
            {"checkpoint": {"keep_best": ["topic/bleu"]}},
            r"checkpoint\.keep_best: 'topic/bleu' is not a score of this run.*topic/accuracy",
        ),
        (
            {"checkpoint": {"keep_best": ["world_nli"]}},
            r"checkpoint\.keep_best: 'world_nli' is not a score",
        ),
        (
            {"model": {"init_from": "docs", "overrides": {}}},
            r"model\.init_from: docs is neither a taskmix run",
        ),
        ({"model": {"init_from": "docs"}}, r"model\.overrides: not used with model\.init_from"),
    ],
)
def test_a_bad_name_fails_before_the_run_folder_exists(tmp_path, changes, message):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(parse_config(tiny(**changes)), run, progress=False)
    assert not run.exists()


def test_after_a_typo_the_fixed_config_runs_in_the_same_folder(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="model.preset"):
        train(parse_config(tiny(model={"preset": "tinny"})), run, progress=False)
    assert train(parse_config(tiny(steps=1)), run, progress=False).step == 1


def test_a_folder_without_checkpoints_takes_another_config(tmp_path):
    """Nothing was trained yet, so nothing would be mixed: no 'another config' error."""
    from taskmix.training.trainer import _write_or_check_config

    run = tmp_path / "run"
    run.mkdir()
    _write_or_check_config(parse_config(tiny(seed=1)), run)
    assert train(parse_config(tiny(steps=1)), run, progress=False).step == 1


def test_a_run_folder_from_before_new_config_keys_resumes(tmp_path):
    """config.yaml written before model.trainable / optimizer.groups / cpu existed."""
    import yaml

    run = tmp_path / "run"
    train(parse_config(tiny(steps=1)), run, progress=False)
    old = yaml.safe_load((run / "config.yaml").read_text())
    del old["model"]["trainable"], old["optimizer"]["groups"], old["cpu"]
    (run / "config.yaml").write_text(yaml.safe_dump(old))
    assert train(parse_config(tiny(steps=2)), run, progress=False).step == 2


def test_keep_best_per_task_names_every_eval_task():
    plan = plan_run(
        parse_config(
            tiny(eval={"tasks": ["topic", "world_nli"]}, checkpoint={"keep_best": "per_task"})
        )
    )
    assert plan.eval_tasks == ["topic", "world_nli"]
    assert plan.tracked == ["topic", "world_nli"]
    both = plan_run(parse_config(tiny(checkpoint={"keep_best": ["average", "topic/accuracy"]})))
    assert both.tracked == ["average", "topic/accuracy"]


def _sentencepiece(path, model_type):
    from taskmix.data.registry import TaskRegistry
    from taskmix.data.tokenizer import train_sentencepiece

    examples = TaskRegistry.get("topic").get_dataset("train", pretokenized=True)
    texts = [ex["inputs"] for ex in islice(examples, 500)]
    return train_sentencepiece(texts, path, 200, model_type=model_type)


def test_another_architecture_or_vocabulary_of_the_same_size_is_refused(tmp_path):
    from taskmix.data.tokenizer import SentencePieceVocabulary
    from taskmix.training.runs import load_run

    spm = _sentencepiece(tmp_path / "tok" / "a", "unigram")
    other = _sentencepiece(tmp_path / "tok" / "b", "bpe")
    a, b = SentencePieceVocabulary(spm), SentencePieceVocabulary(other)
    assert a.vocab_size == b.vocab_size  # only the fingerprint tells them apart
    assert vocabulary_fingerprint(a) != vocabulary_fingerprint(b)

    run = tmp_path / "run"
    train(parse_config(tiny(vocabulary=str(spm), steps=1)), run, progress=False)

    def finetune(vocabulary, init_from=run, **model):
        model = {"init_from": str(init_from), "overrides": {}, **model}
        return parse_config(tiny(vocabulary=str(vocabulary), model=model))

    assert plan_run(finetune(spm)).vocabulary.vocab_size == a.vocab_size
    with pytest.raises(ConfigError, match=r"architecture 'encoder_decoder'.*is 'prefix_lm'"):
        plan_run(finetune(spm, architecture="prefix_lm"))
    with pytest.raises(ConfigError, match=r"model\.init_from: .* another vocabulary"):
        plan_run(finetune(other))
    with pytest.raises(ConfigError, match="another vocabulary"):  # a checkpoint folder too
        plan_run(finetune(other, init_from=run / "checkpoints" / "step-00000001"))

    spm.write_bytes(other.read_bytes())  # the tokenizer file is replaced behind the run's back
    with pytest.raises(CheckpointError, match="another vocabulary"):
        train(parse_config(tiny(vocabulary=str(spm), steps=2)), run, progress=False)
    with pytest.raises(CheckpointError, match="another vocabulary"):
        load_run(run)

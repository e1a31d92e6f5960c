import pytest
import torch

from taskmix.errors import ConfigError
from taskmix.training.config import load_config, parse_config
from taskmix.training.optim import make_optimizer, make_schedule


def test_t5_inverse_sqrt_schedule():
    schedule = make_schedule("inverse_sqrt", lr=0.01, warmup_steps=10_000)
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(9_999) == pytest.approx(0.01)
    assert schedule(40_000) == pytest.approx(1 / 200)
    assert make_schedule("constant", lr=1e-3, warmup_steps=0)(123) == 1e-3


def test_adafactor_has_t5_settings_and_learns():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 8))
    opt = make_optimizer("adafactor", [w], lr=0.01)
    group = opt.param_groups[0]
    assert group["beta2_decay"] == -0.8 and group["d"] == 1.0
    start = float((w.detach() ** 2).sum())
    for _ in range(50):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert float((w.detach() ** 2).sum()) < start


def test_config_errors_name_the_key_and_expectation(tmp_path):
    with pytest.raises(
        ConfigError, match=r"data.batch_size: Input should be greater than 0 \(got -1\)"
    ):
        parse_config({"data": {"batch_size": -1}}, "run.yaml")
    with pytest.raises(ConfigError, match="optimizer.nme: unknown key"):
        parse_config({"optimizer": {"nme": "adamw"}}, "run.yaml")
    with pytest.raises(ConfigError, match="steps: Input should be a valid integer"):
        parse_config({"steps": "many"}, "run.yaml")
    with pytest.raises(ConfigError, match="model.init_from: no such file"):
        parse_config({"model": {"init_from": str(tmp_path / "missing")}}, "run.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_parsed_as_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ndata:\n  batch_size: 4\n")
    config = load_config(path, ["data.batch_size=8", "optimizer.name=adamw", "data.pack=false"])
    assert config.data.batch_size == 8 and config.optimizer.name == "adamw" and not config.data.pack

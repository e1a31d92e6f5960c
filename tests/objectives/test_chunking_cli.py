import numpy as np
import pytest

from taskmix.cli.main import main
from taskmix.errors import ConfigError
from taskmix.objectives import reduce_concat_tokens, select_random_chunk, split_tokens

from .helpers import context


def _docs(*sizes):
    start = 3
    out = []
    for n in sizes:
        out.append({"targets": np.arange(start, start + n, dtype=np.int32), "meta": n})
        start += n
    return out


def test_select_random_chunk_picks_an_aligned_window():
    ctx = context()
    chunks = list(select_random_chunk(10)(iter(_docs(25, 4, 0) * 20), ctx))
    assert len(chunks) == 40  # the empty document is dropped
    starts = {int(c["targets"][0]) - 3 for c in chunks if len(c["targets"]) != 4}
    assert starts == {0, 10, 20}  # all three windows of the 25-token document occur
    assert all(set(c) == {"targets"} for c in chunks)


def test_reduce_concat_and_split_tokens():
    ctx = context()
    joined = list(reduce_concat_tokens(2)(iter(_docs(3, 4, 5)), ctx))
    assert [len(j["targets"]) for j in joined] == [7, 5]
    pieces = list(split_tokens(3)(iter(joined), ctx))
    assert [len(p["targets"]) for p in pieces] == [3, 3, 1, 3, 2]
    assert np.concatenate([p["targets"] for p in pieces]).tolist() == list(range(3, 15))
    random_pieces = list(split_tokens(16, min_tokens=2)(iter(_docs(200)), ctx))
    assert np.concatenate([p["targets"] for p in random_pieces]).tolist() == list(range(3, 203))
    assert max(len(p["targets"]) for p in random_pieces) < 16
    with pytest.raises(ConfigError, match="min_tokens"):
        split_tokens(3, min_tokens=5)


def test_cli_shows_every_objective(capsys):
    assert main(["objectives", "show", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("span_corruption", "bert_style", "deshuffling", "prefix_lm", "lm"):
        assert f"\n{name} " in out
    assert "<extra_id_0>" in out and "<extra_id_1>" in out


def test_cli_one_objective_with_params_and_errors(capsys):
    args = ["objectives", "show", "--objective", "drop_tokens", "--text", "a b c d e f g h"]
    assert main([*args, "--param", "noise_density=0.5", "--vocab", "bytes"]) == 0
    out = capsys.readouterr().out
    assert "drop_tokens" in out and "noise_density=0.5" in out and "bert_style" not in out
    assert main([*args, "--param", "bogus=1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err

"""``taskmix clean --set KEY=VALUE``: any CleanConfig field from the command line, typed safely."""

from __future__ import annotations

import json

import pytest

from taskmix.cleaning.presets import parse_overrides, parse_value
from taskmix.cli.main import main
from taskmix.errors import ConfigError

GOOD = [
    "The quick brown fox jumps over the lazy dog near the river.",
    "Many people came to see the show and they enjoyed it a lot.",
    "The children played games while their parents talked about the news.",
    "Everyone agreed that it had been a wonderful afternoon for all of them.",
]


def _input(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "\n".join(GOOD)}) + "\n")
    return src


def _config(out):
    return json.loads((out / "_work" / "config.json").read_text())["config"]


def test_set_overrides_any_field_and_wins_over_flags(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["clean", str(_input(tmp_path)), "--out", str(out), "--workers", "1"]
    argv += ["--no-langdetect", "--minhash", "--preset", "tfds"]
    argv += ["--set", "min_sentences=4", "--set", "max_word_length=none", "--set", "minhash=off"]
    argv += ["--set", "dedup=spans", "--set", "min_language_prob=0.5", "--set", "end_marks=.!"]
    assert main(argv) == 0
    cfg = _config(out)
    assert cfg["min_sentences"] == 4 and cfg["max_word_length"] is None
    assert cfg["minhash"] is False and cfg["dedup"] == "spans" and cfg["end_marks"] == ".!"
    assert cfg["min_language_prob"] == 0.5 and cfg["langdetect"] is False
    assert cfg["strip_citations"] is True  # the rest is still the tfds preset
    assert "(out)" in capsys.readouterr().out
    # 4 sentences pass min_sentences=4; with the paper default (5) the page would go
    assert json.loads((out / "stats.json").read_text())["pages_out"] == 1


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("min_sentence=3", "unknown cleaning option 'min_sentence'"),
        ("min_sentences=three", "min_sentences='three': expected an integer"),
        ("max_word_length=1.5", "expected an integer or none"),
        ("langdetect=maybe", "langdetect='maybe': expected true or false"),
        ("dedup=pages", "expected one of 'none', 'lines', 'spans'"),
        ("min_language_prob=2", "min_language_prob: expected 0..1"),
        ("min_sentences", "expected KEY=VALUE"),
    ],
)
def test_bad_set_is_a_clear_error_before_any_work(tmp_path, capsys, item, message):
    out = tmp_path / "out"
    assert main(["clean", str(_input(tmp_path)), "--out", str(out), "--set", item]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_values_are_parsed_by_field_type_never_evaluated():
    assert parse_value("bad_words_file", "lists/en=1.txt") == "lists/en=1.txt"
    assert parse_value("min_words_per_line", "1_000") == 1000
    assert parse_value("minhash_threshold", "1") == 1.0
    assert parse_value("langdetect", "No") is False
    assert parse_value("domain_allowlist_file", "null") is None
    assert parse_overrides(["language=__import__('os')"]) == {"language": "__import__('os')"}
    with pytest.raises(ConfigError, match="expected an integer"):
        parse_value("min_sentences", "__import__('os').getcwd()")
    with pytest.raises(ConfigError, match="expected a number"):
        parse_value("minhash_threshold", "inf")

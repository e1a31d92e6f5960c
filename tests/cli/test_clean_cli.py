"""``taskmix clean --set KEY=VALUE``: any CleanConfig field from the command line, typed safely."""

from __future__ import annotations

import json
import re

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


def test_a_yaml_config_file_sets_preset_and_options_and_flags_win(tmp_path):
    config = tmp_path / "clean.yaml"
    config.write_text("preset: tfds\nmin_sentences: 2\nlangdetect: false\nmax_word_length: null\n")
    out = tmp_path / "out"
    argv = ["clean", str(_input(tmp_path)), "--out", str(out), "--workers", "1"]
    assert main([*argv, "--config", str(config), "--set", "min_sentences=3"]) == 0
    cfg = _config(out)
    assert cfg["min_sentences"] == 3  # --set wins over the file
    assert cfg["langdetect"] is False and cfg["max_word_length"] is None
    assert cfg["dedup"] == "lines"  # the file's preset: tfds


@pytest.mark.parametrize(
    "text, expected",
    [
        ("min_sentences: 2\nmin_sentences: 3\n", r"clean.yaml:2: invalid YAML: duplicate key"),
        ("dedup: all\n", r"clean.yaml:1: cleaning option dedup='all': expected one of"),
        ("min_sentense: 2\n", r"clean.yaml:1: unknown cleaning option 'min_sentense'"),
    ],
)
def test_a_bad_yaml_config_names_file_line_and_key(tmp_path, capsys, text, expected):
    config = tmp_path / "clean.yaml"
    config.write_text(text)
    argv = ["clean", str(_input(tmp_path)), "--out", str(tmp_path / "out"), "--config"]
    assert main([*argv, str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err), err
    assert not (tmp_path / "out").exists()  # nothing written

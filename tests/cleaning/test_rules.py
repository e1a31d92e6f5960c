"""One test per C4 rule (a page it drops / lines it removes, and a page it keeps); presets."""

from __future__ import annotations

import dataclasses

import pytest

from taskmix.cleaning import rules as R
from taskmix.cleaning.presets import PAPER, TFDS, CleanConfig, get_preset
from taskmix.cleaning.rules import Page, apply_rules, build_rules
from taskmix.cleaning.sentences import regex_spans
from taskmix.cleaning.stats import CleanStats
from taskmix.cleaning.wordlists import domain_allowed, load_bad_words, normalize_url
from taskmix.errors import ConfigError, TaskmixError

from .helpers import GOOD, page


def lines_after(rule, *lines: str) -> list[str] | None:
    out = rule(Page(list(lines)))
    return None if out is None else out.lines


def test_terminal_punct_keeps_end_marks_and_drops_ellipsis():
    kept = lines_after(
        R.terminal_punct, "A line.", "Why?", "Wow!", 'He said "yes."', "Read more...", "Menu", ""
    )
    assert kept == ["A line.", "Why?", "Wow!", 'He said "yes."']


def test_end_marks_are_configurable():
    def after_terminal_punct(cfg: CleanConfig) -> list[str]:
        rule = dict(build_rules(cfg))["terminal_punct"]
        return rule(Page(["He said 'yes.'", "It is 'fine'", "Done."])).lines

    assert after_terminal_punct(PAPER) == ["Done."]
    wide = get_preset("paper", end_marks=".?!\"'")  # datatrove's C4QualityFilter marks
    assert after_terminal_punct(wide) == ["He said 'yes.'", "It is 'fine'", "Done."]
    with pytest.raises(ConfigError, match="end_marks"):
        get_preset("paper", end_marks="")


def test_min_words_per_line():
    assert lines_after(R.min_words(3), "Two words.", "Now three words.") == ["Now three words."]
    assert lines_after(R.min_words(5), "Now three words.") == []


def test_min_sentences_drops_short_pages_and_keeps_long_ones():
    rule = R.min_sentences(5, regex_spans)
    assert rule(Page(GOOD[:4])) is None
    kept = rule(Page(["One. Two. Three.", "Four. Five."]))
    assert kept is not None and [len(s) for s in kept.sentences] == [3, 2]


def test_bad_words_page_rule(tmp_path):
    words = tmp_path / "en"
    words.write_text("badword\nvery bad phrase\n")
    rule = R.bad_words(load_bad_words(words))
    assert rule(Page(["This has a BadWord in it."])) is None
    assert rule(Page(["badword at the start."])) is None  # TFDS's [^a-z] wrapping missed this
    assert rule(Page(["A very bad phrase here."])) is None
    assert rule(Page(["Embedded badwordy words are fine."])) is not None


def test_bad_words_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="bad-words file not found"):
        load_bad_words(tmp_path / "nope")
    cfg = get_preset("paper", bad_words_file=str(tmp_path / "nope"))
    with pytest.raises(TaskmixError, match="nope"):
        build_rules(cfg)


def test_javascript_lines():
    assert lines_after(R.javascript, "Please enable JavaScript to view.", "A fine line.") == [
        "A fine line."
    ]


def test_lorem_ipsum_page():
    assert lines_after(R.lorem_ipsum, "Fine.", "Lorem ipsum dolor sit amet.") is None
    assert lines_after(R.lorem_ipsum, "Fine.", "Lorem is a name.") == ["Fine.", "Lorem is a name."]


def test_curly_brace_page():
    assert lines_after(R.curly_brace, "Fine.", "function f() { return 1; }") is None
    assert lines_after(R.curly_brace, "Fine (really).") == ["Fine (really)."]


def test_too_long_word():
    rule = R.too_long_word(10)
    assert lines_after(rule, "short words only.", "x" * 11 + " here.") == ["short words only."]


def test_citations_are_stripped():
    assert lines_after(R.strip_citations, "Paris[1] is big[edit].", "Cite[citation needed].") == [
        "Paris is big.",
        "Cite.",
    ]
    assert lines_after(R.strip_citations, "Keep [a] text.") == ["Keep [a] text."]


def test_policy_lines():
    kept = lines_after(
        R.policy, "This site uses cookies to help.", "Read our Privacy Policy now.", "Fine line."
    )
    assert kept == ["Fine line."]


def test_domain_allowlist():
    rule = R.domain_filter(frozenset({"nytimes.com"}))
    assert rule(Page(["x."], "https://www.nytimes.com/a")) is not None
    assert rule(Page(["x."], "https://news.nytimes.com/a")) is not None
    assert rule(Page(["x."], "https://notnytimes.com/a")) is None
    assert rule(Page(["x."], None)) is None
    assert not domain_allowed("https://com/", frozenset({"com"}))


def test_url_list():
    rule = R.url_filter(frozenset({normalize_url("http://www.a.com/story/")}))
    assert rule(Page(["x."], "https://a.com/story?utm_source=x")) is not None
    assert rule(Page(["x."], "https://a.com/other")) is None


def test_language_rule():
    rule = R.language("en", 0.99)
    english = page()
    german = "Der schnelle braune Fuchs springt über den faulen Hund. Die Kinder spielen im Garten."
    assert rule(Page(english.splitlines())) is not None
    assert rule(Page([german])) is None


def test_langdetect_is_seeded_and_deterministic():
    import langdetect

    from taskmix.cleaning.langid import detect_language

    text = "Bonjour tout le monde, hello everyone, hola a todos."  # ambiguous: random without seed
    langdetect.DetectorFactory.seed = 12345
    first = [detect_language(text) for _ in range(5)]
    assert len(set(first)) == 1
    assert langdetect.DetectorFactory.seed == 0


def test_rules_follow_tfds_order_page_rules_see_only_surviving_lines():
    # "{" on a line without terminal punctuation is removed before the curly-brace rule sees it.
    cfg = dataclasses.replace(PAPER, langdetect=False, sentence_splitter="regex")
    stats = CleanStats()
    out = apply_rules(Page.from_text(page("var x = {a: 1}")), build_rules(cfg, stats), stats)
    assert out is not None and stats.lines_removed["terminal_punct"] == 1
    stats = CleanStats()
    out = apply_rules(
        Page.from_text(page("Code like {a: 1} goes here.")), build_rules(cfg, stats), stats
    )
    assert out is None and stats.pages_removed["curly_brace"] == 1
    assert stats.lines_removed["curly_brace"] == 7


def test_presets_differ_exactly_where_the_spec_says():
    diff = {
        f.name
        for f in dataclasses.fields(CleanConfig)
        if getattr(PAPER, f.name) != getattr(TFDS, f.name)
    }
    assert diff == {
        "min_words_per_line",
        "min_sentences",
        "max_word_length",
        "strip_citations",
        "drop_policy_lines",
        "dedup",
        "recheck_min_sentences",
    }
    assert (PAPER.min_words_per_line, PAPER.min_sentences, PAPER.dedup) == (3, 5, "spans")
    assert (TFDS.min_words_per_line, TFDS.min_sentences, TFDS.dedup) == (5, 3, "lines")
    assert TFDS.max_word_length == 1000 and PAPER.max_word_length is None


def test_presets_behave_differently_on_the_same_page():
    # Four-word lines, four sentences: paper keeps the lines but wants 5 sentences; tfds the reverse.
    text = "One two three four.\nFive six seven eight.\nNine ten eleven twelve.\nA b c d."
    results = {}
    for name in ("paper", "tfds"):
        cfg = get_preset(name, langdetect=False, sentence_splitter="regex")
        stats = CleanStats()
        results[name] = apply_rules(Page.from_text(text), build_rules(cfg, stats), stats)
    assert results["paper"] is None  # 4 sentences < 5
    assert results["tfds"] is None  # every line has < 5 words, so 0 sentences
    cfg = get_preset("paper", langdetect=False, sentence_splitter="regex")
    stats = CleanStats()
    assert apply_rules(
        Page.from_text(text + "\nAnd one more here."), build_rules(cfg, stats), stats
    )


def test_bad_preset_and_option_names():
    with pytest.raises(ConfigError, match="unknown cleaning preset 'c5'"):
        get_preset("c5")
    with pytest.raises(ConfigError, match="unknown cleaning option"):
        get_preset("paper", min_word=3)
    with pytest.raises(ConfigError, match="dedup"):
        get_preset("paper", dedup="pages")

"""The C4 rules, each a small function over a page that returns it (maybe with fewer lines) or None.

A page is a list of stripped lines plus an optional URL. Rules run in the order of the TFDS code
(``clean_page``), where the page rules (lorem ipsum, ``{``, bad words) look only at lines that
survived the line rules before them; applying the rules one after another gives the same pages as
TFDS's single loop over lines. The runner (``apply_rules``) counts what each rule removed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from taskmix.cleaning.langid import check_langdetect, detect_language
from taskmix.cleaning.presets import CleanConfig
from taskmix.cleaning.sentences import Spans, get_splitter
from taskmix.cleaning.stats import CleanStats
from taskmix.cleaning.wordlists import (
    domain_allowed,
    load_bad_words,
    load_domains,
    load_urls,
    normalize_url,
)

END_MARKS = (".", "?", "!", '"')
ELLIPSIS = "..."
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@dataclass
class Page:
    """A page being cleaned. ``sentences`` (per line) is filled by the sentence-count rule."""

    lines: list[str]
    url: str | None = None
    sentences: list[Spans] | None = field(default=None, repr=False)

    @classmethod
    def from_text(cls, text: str, url: str | None = None) -> Page:
        return cls([line.strip() for line in text.splitlines()], url)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


RuleFn = Callable[[Page], "Page | None"]


class Rule(NamedTuple):
    name: str
    fn: RuleFn


def _keep_lines(page: Page, keep: Callable[[str], bool]) -> Page:
    page.lines = [line for line in page.lines if keep(line)]
    return page


def too_long_word(max_length: int) -> RuleFn:
    def rule(page: Page) -> Page:
        return _keep_lines(page, lambda ln: all(len(w) <= max_length for w in ln.split()))

    return rule


def strip_citations(page: Page) -> Page:
    page.lines = [CITATION.sub("", line) if "[" in line else line for line in page.lines]
    return page


def terminal_punct(page: Page, marks: tuple[str, ...] = END_MARKS) -> Page:
    return _keep_lines(page, lambda ln: ln.endswith(marks) and not ln.endswith(ELLIPSIS))


def min_words(n: int) -> RuleFn:
    def rule(page: Page) -> Page:
        return _keep_lines(page, lambda ln: len(ln.split()) >= n)

    return rule


def lorem_ipsum(page: Page) -> Page | None:
    return None if any("lorem ipsum" in line.lower() for line in page.lines) else page


def javascript(page: Page) -> Page:
    return _keep_lines(page, lambda ln: "javascript" not in ln.lower())


def curly_brace(page: Page) -> Page | None:
    return None if any("{" in line for line in page.lines) else page


def policy(page: Page) -> Page:
    return _keep_lines(page, lambda ln: not any(p in ln.lower() for p in POLICY_PHRASES))


def bad_words(pattern: re.Pattern[str]) -> RuleFn:
    def rule(page: Page) -> Page | None:
        return None if any(pattern.search(line.lower()) for line in page.lines) else page

    return rule


def min_sentences(n: int, splitter: Callable[[str], Spans]) -> RuleFn:
    """Count sentences line by line (as TFDS); keep the spans for span deduplication."""

    def rule(page: Page) -> Page | None:
        page.sentences = [splitter(line) for line in page.lines]
        return page if sum(map(len, page.sentences)) >= n else None

    return rule


def language(lang: str, min_prob: float, stats: CleanStats | None = None) -> RuleFn:
    def rule(page: Page) -> Page | None:
        reason = detect_language(page.text, lang, min_prob)
        if reason is not None and stats is not None:
            stats.details[f"language:{reason}"] += 1
        return page if reason is None else None

    return rule


def domain_filter(domains: frozenset[str]) -> RuleFn:
    def rule(page: Page) -> Page | None:
        return page if page.url and domain_allowed(page.url, domains) else None

    return rule


def url_filter(urls: frozenset[str]) -> RuleFn:
    def rule(page: Page) -> Page | None:
        return page if page.url and normalize_url(page.url) in urls else None

    return rule


@lru_cache(maxsize=4)
def _load_lists(cfg: CleanConfig):
    bad = load_bad_words(cfg.bad_words_file) if cfg.bad_words_file else None
    domains = load_domains(cfg.domain_allowlist_file) if cfg.domain_allowlist_file else None
    urls = load_urls(cfg.url_list_file) if cfg.url_list_file else None
    return bad, domains, urls


def validate_resources(cfg: CleanConfig) -> None:
    """Load every file and library the config needs: errors surface before any work."""
    _load_lists(cfg)
    get_splitter(cfg.sentence_splitter)
    if cfg.langdetect:
        check_langdetect()


def build_rules(cfg: CleanConfig, stats: CleanStats | None = None) -> list[Rule]:
    """The page rules the config switches on, in the order they run."""
    bad, domains, urls = _load_lists(cfg)
    rules: list[Rule] = []
    if domains is not None:
        rules.append(Rule("domain_allowlist", domain_filter(domains)))
    if urls is not None:
        rules.append(Rule("url_list", url_filter(urls)))
    if cfg.max_word_length is not None:
        rules.append(Rule("too_long_word", too_long_word(cfg.max_word_length)))
    if cfg.strip_citations:
        rules.append(Rule("citations", strip_citations))
    if cfg.require_terminal_punct:
        marks = tuple(cfg.end_marks)
        rules.append(Rule("terminal_punct", functools.partial(terminal_punct, marks=marks)))
    if cfg.min_words_per_line:
        rules.append(Rule("min_words", min_words(cfg.min_words_per_line)))
    if cfg.drop_lorem_ipsum:
        rules.append(Rule("lorem_ipsum", lorem_ipsum))
    if cfg.drop_javascript_lines:
        rules.append(Rule("javascript", javascript))
    if cfg.drop_curly_brace:
        rules.append(Rule("curly_brace", curly_brace))
    if cfg.drop_policy_lines:
        rules.append(Rule("policy", policy))
    if bad is not None:
        rules.append(Rule("bad_words", bad_words(bad)))
    rules.append(
        Rule("min_sentences", min_sentences(cfg.min_sentences, get_splitter(cfg.sentence_splitter)))
    )
    if cfg.langdetect:
        rules.append(Rule("language", language(cfg.language, cfg.min_language_prob, stats)))
    return rules


def apply_rules(page: Page, rules: list[Rule], stats: CleanStats) -> Page | None:
    """Run ``rules`` in order; count lines and pages each removed (and lines it edited)."""
    for name, fn in rules:
        before = page.lines
        n_before = len(before)
        result = fn(page)
        if result is None:
            stats.remove_page(name, n_before)
            return None
        if len(result.lines) == n_before:
            edited = sum(
                1 for a, b in zip(before, result.lines, strict=True) if a is not b and a != b
            )
            if edited:
                stats.lines_modified[name] += edited
        else:
            stats.lines_removed[name] += n_before - len(result.lines)
        page = result
    return page

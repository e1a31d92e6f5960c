"""User-supplied lists: bad words (page filter), allowed domains (RealNews-like), URLs (WebText-like).

The usual bad-words list is LDNOOBW's English file ``en`` from
github.com/LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words (C4 used it); taskmix
ships no list: the user passes the file. A missing file is a ConfigError raised before any work.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from taskmix.errors import ConfigError


def _read_entries(path: str | Path, what: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {str(p)!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} file {str(p)!r} is not UTF-8 text: {err}") from err
    entries = [line.strip() for line in text.splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise ConfigError(f"{what} file {str(p)!r} has no entries")
    return entries


def load_bad_words(path: str | Path) -> re.Pattern[str]:
    """A regex matching any listed word or phrase in lower-cased text, not inside a longer word.

    TFDS wrapped the words in ``[^a-z]...[^a-z]``, which misses a word at the very start or end
    of a line; lookarounds here match there too.
    """
    words = sorted({w.lower() for w in _read_entries(path, "bad-words")}, key=len, reverse=True)
    return re.compile(r"(?<![a-z])(?:{})(?![a-z])".format("|".join(map(re.escape, words))))


def load_domains(path: str | Path) -> frozenset[str]:
    """Allowed domains, lower case, without a leading ``www.``."""
    return frozenset(_strip_www(d.lower()) for d in _read_entries(path, "domain allow-list"))


def load_urls(path: str | Path) -> frozenset[str]:
    """Allowed URLs, normalised by ``normalize_url``."""
    return frozenset(normalize_url(u) for u in _read_entries(path, "URL list"))


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def normalize_url(url: str) -> str:
    """As TFDS's ``normalize_url``: no scheme, no ``www.``, no utm_/ref/feed query, no final ``/``."""
    url = re.sub(r"https?://(www\.)?", "", url.strip())
    url = re.sub(r"\?(utm_|ref|feed).*", "", url)
    return url.rstrip("/")


def url_host(url: str) -> str:
    """The lower-case host of ``url`` without ``www.`` ("" when it has none)."""
    if "//" not in url:
        url = "//" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return _strip_www(host.lower())


def domain_allowed(url: str, domains: frozenset[str]) -> bool:
    """True when the URL's host is a listed domain or a subdomain of one."""
    host = url_host(url)
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts) - 1))

"""A raw, web-like version of the corpus, for C4-style cleaning (T5 §2.2, Table 8).

T5 compares pre-training on C4 with pre-training on the same crawl *unfiltered*. The default
corpus is already clean, so this module makes the "crawl" it could have been cleaned from: every
clean document becomes the body line of a web page with navigation and boilerplate lines around
it, and junk pages are mixed in (pages in other languages, code with braces, lorem ipsum,
pages of navigation only, mirrored copies of earlier pages, and pages that repeat an earlier
document's text). Everything it injects is something a C4 rule removes (``RAW_CLEAN_CONFIG``:
the paper's rules with at least 3 sentences per page, since the default documents are short),
so cleaning the raw corpus gives back (nearly) the clean one; ``compare_corpora`` says how
nearly.

Generated lazily: ``ensure_raw_corpus(seed)`` writes ``data_dir(seed)/raw_corpus/`` the first
time it is asked for (``ensure_data`` does not pay for it), and ``ensure_cleaned_raw_corpus``
runs the cleaning pipeline on it once into ``raw_corpus_cleaned/``. Both are deterministic from
the seed. Each page record is ``{"text", "url", "kind"}``; ``kind`` (article, foreign, code,
lorem, navigation, mirror) says what the generator made it as, for tests and statistics.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from taskmix.cleaning import clean_corpus, get_preset
from taskmix.data.task import stable_seed
from taskmix.default_data.generate import corpus_files, ensure_data

RAW_VERSION = 1
RAW_DIR = "raw_corpus"
CLEANED_DIR = "raw_corpus_cleaned"
# The cleaning the raw corpus is made for: the paper's rules, 3 sentences per page (the paper's
# 5 would drop ~40% of the short default documents), the fast regex sentence splitter.
RAW_CLEAN_CONFIG: dict[str, Any] = {
    "preset": "paper",
    "min_sentences": 3,
    "sentence_splitter": "regex",
}
# Junk pages per article page, by kind.
JUNK_RATES = {"foreign": 0.08, "code": 0.06, "lorem": 0.03, "navigation": 0.06, "mirror": 0.05}
REPEAT_RATE = 0.08  # article pages that also repeat an earlier document's text as a line

NAVIGATION = (
    "Home | News | About us | Contact",
    "Menu",
    "Skip to main content",
    "Log in or register",
    "Share on social media",
    "Previous page | Next page",
    "Related articles",
    "Copyright 2019 World Pages Ltd",
    "Read more",
    "Accept all cookies",
    "Tags: history, people, places",
    "Posted by admin on 12 March",
)
JAVASCRIPT = (
    "Please enable JavaScript to view the comments.",
    "This page works best with JavaScript turned on.",
)
FOREIGN = {
    "de": (
        "Die Stadt liegt an einem großen Fluss im Norden des Landes.",
        "Viele Menschen besuchen jedes Jahr den alten Marktplatz.",
        "Das Museum ist von Montag bis Freitag geöffnet.",
        "Im Sommer ist das Wetter meistens warm und sonnig.",
        "Die Kinder gehen jeden Morgen zusammen zur Schule.",
        "Der Bäcker verkauft frisches Brot und süßen Kuchen.",
        "Die Geschichte des Dorfes ist sehr lang und spannend.",
        "Wir haben uns über die schnelle Antwort sehr gefreut.",
    ),
    "fr": (
        "La ville se trouve au bord d'une grande rivière.",
        "Beaucoup de gens visitent le vieux marché chaque année.",
        "Le musée est ouvert du lundi au vendredi.",
        "En été, il fait souvent chaud et le ciel est bleu.",
        "Les enfants vont à l'école ensemble tous les matins.",
        "Le boulanger vend du pain frais et des gâteaux sucrés.",
        "L'histoire du village est longue et passionnante.",
        "Nous avons été très contents de votre réponse rapide.",
    ),
    "es": (
        "La ciudad está junto a un gran río en el norte del país.",
        "Muchas personas visitan el viejo mercado cada año.",
        "El museo está abierto de lunes a viernes.",
        "En verano el tiempo suele ser cálido y soleado.",
        "Los niños van juntos a la escuela todas las mañanas.",
        "El panadero vende pan fresco y pasteles dulces.",
        "La historia del pueblo es muy larga y emocionante.",
        "Nos alegramos mucho de recibir una respuesta tan rápida.",
    ),
}
CODE_LINES = (
    "function load(id) {",
    "  return fetch(url + id).then(r => r.json());",
    "}",
    "for (int i = 0; i < n; i++) {",
    "  total += values[i];",
    "if (ready) { start(); }",
    "const config = { debug: true, retries: 3 };",
)
CODE_PROSE = (
    "Set the options to {debug: true} before you start the server.",
    "The function returns an object such as {name: value} for every row.",
    "Wrap the body in {curly braces} as the example above shows.",
)
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.",
    "Duis aute irure dolor in reprehenderit in voluptate velit esse.",
)


def raw_corpus_files(root: Path) -> dict[str, Path]:
    return {split: root / RAW_DIR / f"{split}.jsonl" for split in ("train", "validation")}


def _article(body: str, rng: random.Random, earlier: list[str]) -> list[str]:
    """A web page around one clean document: navigation above and below, maybe a JavaScript
    notice, maybe a copy of an earlier document's text."""
    lines = rng.sample(NAVIGATION, rng.randint(1, 3)) + [body]
    if earlier and rng.random() < REPEAT_RATE:
        lines.append(rng.choice(earlier))
    if rng.random() < 0.3:
        lines.append(rng.choice(JAVASCRIPT))
    lines += rng.sample(NAVIGATION, rng.randint(0, 2))
    return lines


def _junk(kind: str, rng: random.Random, pages: list[dict[str, str]]) -> list[str] | None:
    if kind == "foreign":
        language = rng.choice(sorted(FOREIGN))
        return [" ".join(rng.sample(FOREIGN[language], rng.randint(5, 8)))]
    if kind == "code":
        code = [rng.choice(CODE_LINES) for _ in range(rng.randint(3, 6))]
        return [rng.choice(NAVIGATION), rng.choice(CODE_PROSE), *code, rng.choice(CODE_PROSE)]
    if kind == "lorem":
        return [" ".join(rng.sample(LOREM, rng.randint(3, 4)))]
    if kind == "navigation":
        return rng.sample(NAVIGATION, rng.randint(2, 5))
    articles = [p for p in pages if p["kind"] == "article"]
    return rng.choice(articles)["text"].split("\n") if articles else None  # a mirror


def build_raw_corpus(documents: list[str], seed: int, split: str) -> list[dict[str, str]]:
    """The web-like pages of one split: one article page per clean document, in their order,
    with junk pages mixed in. Deterministic from (seed, split)."""
    rng = random.Random(stable_seed("raw_corpus", split, seed))
    pages: list[dict[str, str]] = []

    def add(kind: str, lines: list[str]) -> None:
        url = f"http://{kind}.example/{split}/{len(pages)}"
        pages.append({"text": "\n".join(lines), "url": url, "kind": kind})

    for i, body in enumerate(documents):
        for kind, rate in JUNK_RATES.items():
            if rng.random() < rate and (lines := _junk(kind, rng, pages)) is not None:
                add(kind, lines)
        add("article", _article(body, rng, documents[max(0, i - 500) : i]))
    return pages


def _read_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def ensure_raw_corpus(seed: int = 0) -> Path:
    """``data_dir(seed)/raw_corpus`` (train.jsonl, validation.jsonl), generated on first use."""
    root = ensure_data(seed)
    final = root / RAW_DIR
    if (final / "_SUCCESS").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{RAW_DIR}.", dir=root))
    try:
        for split, path in corpus_files(root).items():
            pages = build_raw_corpus(_read_texts(path), seed, split)
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
                for page in pages:
                    f.write(json.dumps(page, ensure_ascii=False) + "\n")
        (tmp / "_SUCCESS").write_text(json.dumps({"version": RAW_VERSION, "seed": seed}) + "\n")
        try:
            if final.exists() and not (final / "_SUCCESS").exists():
                shutil.rmtree(final)  # an interrupted older attempt
            os.rename(tmp, final)
        except OSError:
            if not (final / "_SUCCESS").is_file():  # not a concurrent generation that won
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_cleaned_raw_corpus(seed: int = 0, workers: int = 1) -> Path:
    """The raw training corpus through the C4 rules (``RAW_CLEAN_CONFIG``), once, into
    ``data_dir(seed)/raw_corpus_cleaned`` (part files, stats.json, _SUCCESS)."""
    raw = ensure_raw_corpus(seed)
    out = raw.parent / CLEANED_DIR
    if (out / "_SUCCESS").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)  # an interrupted cleaning: start over (it takes seconds)
    config = dict(RAW_CLEAN_CONFIG)
    clean_corpus(
        [raw / "train.jsonl"], out, get_preset(config.pop("preset"), **config), workers=workers
    )
    return out


def compare_corpora(cleaned: list[str], clean: list[str]) -> dict[str, float]:
    """How close a cleaned corpus is to the clean one, by whole documents (page texts):
    ``recall`` the clean documents found verbatim, ``precision`` the cleaned pages that are a
    clean document, and the two sizes in words."""
    clean_set, cleaned_set = set(clean), set(cleaned)
    return {
        "clean_docs": len(clean),
        "cleaned_pages": len(cleaned),
        "recall": len(clean_set & cleaned_set) / max(1, len(clean_set)),
        "precision": sum(p in clean_set for p in cleaned) / max(1, len(cleaned)),
        "clean_words": sum(len(d.split()) for d in clean),
        "cleaned_words": sum(len(p.split()) for p in cleaned),
    }

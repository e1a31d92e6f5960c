"""Render docs/default_data.md from the generated data, so the page always matches the code.

python -m taskmix.default_data.docs docs/default_data.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from taskmix.default_data import DEFAULT_CAP, FAMILIES, SPECS, VERSION, load_manifest
from taskmix.default_data.world import RELATIONS, build_world

INTRO = """# The embedded default data

taskmix downloads nothing: it **generates** its default data, deterministically from a seed
(`taskmix.default_data`, data version {version}). Everything is invented; nothing is copied.
The files are written on first use to `$TASKMIX_CACHE/default_data/v{version}-seed<seed>`
(default `~/.cache/taskmix`), through a temporary folder renamed into place when complete.

## The world

{world}

Facts are (subject, relation, value) triples stated with several sentence templates and asked
with several question templates ({relations} relations). All tasks share the world, so what a
model learns in one task is true in every other one.

## The corpus (`world_corpus`)

{corpus} documents of 2-9 sentences (mostly 3-6). The first pass writes one complete profile per entity,
so **every fact is stated in the training corpus**; the other documents state random subsets
of an entity's facts mixed with facts about related entities and filler sentences. Records are
`{{"text": ...}}`; the task maps them to `{{"targets": text}}` and tokenizes (the span-corruption
objective is added on top of it).

### The raw, web-like corpus (for cleaning)

`taskmix.default_data.raw_corpus.ensure_raw_corpus(seed)` writes, on first use only (it is not
part of `ensure_data`), `raw_corpus/{{train,validation}}.jsonl` beside the corpus: the "crawl"
the clean corpus could have been cleaned from. Every clean document becomes the body line of a
web page with 1-5 navigation lines around it (no end mark, or too short) and sometimes a
JavaScript notice or a copy of an earlier document's text; junk pages are mixed in (per
article page: 8% pages in German, French or Spanish, 6% code with braces, 3% lorem ipsum, 6%
navigation only, 5% mirrored copies of an earlier page). Records are `{{"text", "url", "kind"}}`
(`kind`: article, foreign, code, lorem, navigation, mirror); everything is deterministic from
the seed. For seed 0 the training split has 3860 pages (3000 articles) and about 2.8 times
the clean corpus' tokens.

Every injected piece is something a C4 rule removes with `RAW_CLEAN_CONFIG` (the `paper`
preset with `min_sentences: 3`, since the default documents are short, and the regex sentence
splitter); `examples/experiments/clean_raw_corpus.yaml` is the same for
`taskmix clean RAW/train.jsonl --out OUT --config examples/experiments/clean_raw_corpus.yaml`.
`ensure_cleaned_raw_corpus(seed)` runs the pipeline once into `raw_corpus_cleaned/` (about
12 s). For seed 0 the cleaned raw corpus keeps 2879 pages: 93.5% of the clean documents come
back verbatim and 97.4% of the kept pages are a clean document (`compare_corpora`); the rest
are clean documents that langdetect was not sure enough were English, or that span dedup cut
because three of their sentences repeat an earlier document, as C4's rules do to real text.

## Tasks

24 supervised tasks, 3 in each of the 8 ExMix families, plus two tasks that no default
mixture contains (for out-of-mixture evaluation): `world_stsb` (STS-B-like regression, scores
binned to 0.2 with `bin_regression`, postprocessed with `parse_regression`) and
`translate_en_zarnic` (English to an invented language: word map, no articles, verbs last).
Inputs are T5-style: a prefix and `key: value` fields (or `summarize: <text>`). Closed-book QA
questions are about facts that appear only in the corpus and in other tasks' inputs, never as
context; one fact's questions stay in one split, so the test facts are never trained on in
that task.

**Chance** is the score (x100) of always predicting the most frequent training target (the
majority class), on the test split; Pearson, Spearman and MCC of a constant predictor are 0.

| task | family | train / validation / test | metrics | chance |
| --- | --- | --- | --- | --- |
{table}

## Mixtures

- `default`: the 24 in-mixture tasks, examples-proportional with cap K = {cap} (only
  `world_nli` and `world_squad` exceed it), as ExT5 mixes ExMix (examples-proportional, capped).
- `family_<family>` for {families}: the family's 3 tasks, same strategy and cap.

## Vocabulary

`default_vocabulary()` is a lazily built SentencePiece unigram model (1400 pieces plus 100
sentinels), trained once on the training corpus and the first 300 training examples of every
task, and saved in the data folder (`spm/default.model`).

## One example per task

{examples}
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(seed: int = 0) -> str:
    manifest = load_manifest(seed)
    world = build_world(seed)
    plural = {"country": "countries", "city": "cities", "person": "people", "company": "companies"}
    counts = ", ".join(f"{len(world.entities[k])} {plural.get(k, k + 's')}" for k in world.entities)
    world_text = (
        f"Seed {seed}: {counts} (continents {', '.join(world.continents)}), "
        f"{len(world.facts)} facts in all. Countries have a capital, continent, language and "
        "currency; cities a country, population band and trade; people a profession, birth "
        "city and birth year; companies a founder, headquarters and product line; animals a "
        "colour, habitat, diet and size; products a maker, colour, category and price band."
    )
    rows, examples = [], []
    for spec in SPECS:
        entry = manifest["tasks"][spec.name]
        sizes = " / ".join(str(entry["sizes"][s]) for s in ("train", "validation", "test"))
        chance = ", ".join(f"{k} {v:g}" for k, v in entry["chance"].items())
        name = f"`{spec.name}`" if spec.in_mixture else f"`{spec.name}` (not in `default`)"
        rows.append(f"| {name} | {spec.family} | {sizes} | {', '.join(spec.metrics)} | {chance} |")
        ex = entry["example"]
        examples.append(
            f"**`{spec.name}`** — {_md(spec.description)}\n\n"
            f"- input: `{_md(ex['inputs'])}`\n- target: `{_md(ex['targets'])}`\n"
        )
    return INTRO.format(
        version=VERSION,
        world=world_text,
        relations=len(RELATIONS),
        corpus=f"{manifest['corpus']['train']} training and {manifest['corpus']['validation']} validation",
        table="\n".join(rows),
        cap=DEFAULT_CAP,
        families=", ".join(f"`{f}`" for f in FAMILIES),
        examples="\n".join(examples),
    )


def main(argv: list[str]) -> int:
    text = render_markdown()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Pre-training data (T5 §3.4, Tables 8 and 9): a cleaned vs an uncleaned corpus, and repetition.

Every arm pre-trains with span corruption for the same steps, then fine-tunes on the same
tasks (as in the objectives experiment). Two questions:

* **Cleaning** (Table 8): the default corpus (``clean``), its raw web-like version
  (``raw``: ``default_data.raw_corpus``, navigation lines, other languages, code, duplicates)
  and that raw version through the C4 rules (``cleaned_raw``, ``taskmix clean``'s pipeline).
  T5 found unfiltered C4 worse downstream than C4.
* **Repetition** (Table 9): the clean corpus truncated so that the same pre-training steps see
  it R times. Pre-training reads ``steps * batch_size * raw_length`` corpus tokens
  (``raw_length``: the tokens span corruption turns into one example); the truncated corpus is
  the shortest prefix of documents holding that many tokens / R. Where that is more than the
  whole corpus, the arm *is* the whole corpus, repeated fewer times than asked (the table
  gives the repetition it got). T5 found 64 repetitions hurt little, 256 and more hurt, and the
  training loss fall with repetition (memorisation); the table gives each pre-training's final
  training loss for that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskmix.cleaning.corpus import corpus_files as cleaned_files
from taskmix.default_data import default_vocabulary
from taskmix.default_data.raw_corpus import ensure_cleaned_raw_corpus, ensure_raw_corpus
from taskmix.errors import ConfigError
from taskmix.files import atomic_write_text
from taskmix.recipes.experiments.base import (
    Context,
    Experiment,
    Outcome,
    RunSpec,
    Summary,
    mean,
)
from taskmix.recipes.experiments.objectives import (
    default_corpus,
    downstream_tasks,
    finetune_mixture,
    pretrain_finetune_runs,
    pretraining_entry,
    sequence_lengths,
)
from taskmix.recipes.experiments.results import bar_plot

FINDING = (
    "T5 (Tables 8, 9): unfiltered C4 is worse than C4; repeating the data 64 times hurts "
    "little, 256+ times hurts, and the pre-training loss falls with repetition (memorisation)."
)
OBJECTIVE = "span_corruption"


def tokens_seen(ctx: Context, raw_length: int) -> int:
    """Corpus tokens one pre-training reads: steps x batch size x raw tokens per example."""
    batch_size = int(ctx.base_config["data"]["batch_size"])
    return ctx.steps(arm="pretrain") * batch_size * raw_length


def truncation(doc_tokens: list[int], seen: int, repeats: float) -> int:
    """Documents of the shortest prefix of the corpus holding ``seen / repeats`` tokens (all
    of them when the corpus holds fewer)."""
    need, total = seen / repeats, 0
    for i, tokens in enumerate(doc_tokens, 1):
        total += tokens
        if total >= need:
            return i
    return len(doc_tokens)


def corpus_of(name: str) -> list[str]:
    """The files of a ``corpora`` arm (the raw and cleaned raw corpora made on first use)."""
    if name == "clean":
        return default_corpus()
    if name == "raw":
        return [str(ensure_raw_corpus(0) / "train.jsonl")]
    if name == "cleaned_raw":
        return [str(p) for p in cleaned_files(ensure_cleaned_raw_corpus(0))]
    raise ConfigError(f"grid: corpora: unknown corpus {name!r}; expected clean, raw or cleaned_raw")


def _texts(path: str | Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


class PretrainingData(Experiment):
    name = "pretraining-data"
    description = "T5's pre-training data: cleaned vs raw corpus, and corpus repetition."
    grid = {
        "corpora": ["clean", "raw", "cleaned_raw"],
        "repeats": [1, 4, 16, 64],
        "input_length": [128],
        "finetune_fraction": [0.5],
    }
    default_budget = 200

    def corpora(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """Arm -> {"files", "docs", "tokens", "repeats" (asked for; None for the cleaning
        arms)}; a repetition whose truncation is the whole corpus is the ``clean`` arm."""
        length = int(ctx.axis("input_length")[0])
        clean = default_corpus()
        raw_length = int(
            sequence_lengths(pretraining_entry("x", OBJECTIVE, {}, length, clean))["raw"]
        )
        vocab = default_vocabulary(0)
        docs = _texts(clean[0])
        doc_tokens = [len(vocab.encode(d)) for d in docs]
        seen = tokens_seen(ctx, raw_length)
        arms: dict[str, dict[str, Any]] = {}
        for corpus in ctx.axis("corpora"):
            files = corpus_of(corpus)
            texts = [t for f in files for t in _texts(f)]
            tokens = sum(len(vocab.encode(t)) for t in texts)
            arms[corpus] = {"files": files, "docs": len(texts), "tokens": tokens, "repeats": None}
        for repeats in ctx.axis("repeats"):
            n = truncation(doc_tokens, seen, float(repeats))
            if n == len(docs):
                arms.setdefault("clean", {"files": clean, "docs": n, "tokens": sum(doc_tokens)})
                arms["clean"]["repeats"] = arms["clean"].get("repeats") or repeats
                continue
            path = ctx.out / "corpora" / f"repeat{repeats}.jsonl"
            text = "".join(json.dumps({"text": d}) + "\n" for d in docs[:n])
            if not path.exists() or path.read_text() != text:
                atomic_write_text(path, text)
            arms[f"repeat{repeats}"] = {
                "files": [str(path)],
                "docs": n,
                "tokens": sum(doc_tokens[:n]),
                "repeats": repeats,
            }
        for arm in arms.values():
            arm["seen"] = seen
            arm["times_seen"] = seen / arm["tokens"]
        return arms

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = downstream_tasks(ctx)
        length = int(ctx.axis("input_length")[0])
        corpora = self.corpora(ctx)
        entries = {
            arm: pretraining_entry(f"corpus_{arm}", OBJECTIVE, {}, length, c["files"])
            for arm, c in corpora.items()
        }
        ctx.write_task_file(
            {"pretraining": list(entries.values()), "mixtures": [finetune_mixture(ctx, tasks)]}
        )
        runs = []
        for arm, entry in entries.items():
            runs += pretrain_finetune_runs(ctx, arm, entry, tasks, {"arm": arm})
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        tasks = downstream_tasks(ctx)
        corpora = self.corpora(ctx)
        rows = []
        for arm, corpus in corpora.items():
            finetune = outcomes.get(f"finetune_{arm}")
            pretrain = outcomes.get(f"pretrain_{arm}")
            scores = [
                finetune.best(t) if finetune and finetune.status == "done" else None for t in tasks
            ]
            rows.append(
                [
                    arm,
                    corpus["docs"],
                    corpus["tokens"],
                    round(corpus["times_seen"], 3),
                    None if pretrain is None else pretrain.final_loss,
                    mean(scores),
                    *scores,
                ]
            )
        seen = next(iter(corpora.values()))["seen"] if corpora else 0
        return Summary(
            columns=[
                "corpus",
                "documents",
                "tokens",
                "times seen",
                "pretrain loss",
                "average",
                *tasks,
            ],
            rows=rows,
            notes=[
                f"Each arm: {ctx.steps(arm='pretrain')} span-corruption pre-training steps "
                f"reading {seen} corpus tokens (steps x batch size x raw tokens per example), "
                f"then {ctx.steps(float(ctx.axis('finetune_fraction')[0]))} fine-tuning steps "
                f"on {', '.join(tasks)}; seed {ctx.settings.seed}. 'times seen': tokens read / "
                "corpus tokens. Repetition arms truncate the clean corpus to 1/R of the tokens "
                "read; a repetition the whole corpus cannot reach is the clean arm.",
                FINDING,
            ],
            data={arm: {k: v for k, v in c.items() if k != "files"} for arm, c in corpora.items()},
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [row[0] for row in summary.rows]
        return [
            bar_plot(
                out_dir / "pretraining_data.png",
                labels,
                {"average": [row[5] for row in summary.rows]},
                title="Pre-training data: mean downstream score after fine-tuning",
                ylabel="score (best per task)",
            )
        ]

"""The same cleaning on datatrove, for corpora past one machine (datatrove >= 0.10).

Three datatrove pipelines, each runnable by any datatrove executor (local, Slurm, Ray):

1. ``TaskmixReader -> C4CleanStep -> JsonlWriter``: our readers (``taskmix.cleaning.io``: JSONL,
   text, WARC/WET, Parquet, gzip) on the task's part of the input (``plan_shards`` with one
   shard per task), then the page rules (our ``clean_raw``); records the readers flag as bad
   are counted in the report like in the local pipeline. Each task also writes its dedup hashes
   to ``work/hashes-<rank>.npz``.
2. ``C4GlobalDedupStep`` as one task: our ``global_pass`` over all hash files.
3. ``JsonlReader -> C4DedupApplyStep -> JsonlWriter``: removes duplicate lines/spans/pages (it
   reads stage 1's own output, so datatrove's JSONL reader is safe there).

Document order (what "first occurrence" means for dedup) is the local pipeline's (input file in
sorted order, then position in the file), so both produce the same pages and report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from taskmix.cleaning.io import RawDoc, expand_inputs, validate_inputs, write_json_atomic
from taskmix.cleaning.pipeline import (
    HashCollector,
    apply_global,
    clean_raw,
    global_pass,
    iter_ordered,
    load_drops,
    plan_shards,
)
from taskmix.cleaning.presets import CleanConfig
from taskmix.cleaning.rules import build_rules, validate_resources
from taskmix.cleaning.stats import CleanStats
from taskmix.errors import ConfigError


class TaskmixReader(PipelineStep):
    """Reads this task's part of the inputs with taskmix's readers, bad records included.

    A bad record becomes a document with empty text and ``metadata["problem"]`` set, so that
    ``C4CleanStep`` counts it (``input_<problem>``) exactly as ``clean_corpus`` does.
    """

    name = "taskmix reader"
    type = "📖 - READER"

    def __init__(self, files: Sequence[str], text_mode: str = "block"):
        super().__init__()
        self.files = [str(f) for f in files]
        self.text_mode = text_mode

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        pieces = plan_shards(self.files, world_size, self.text_mode)[rank]
        for order, raw in iter_ordered(pieces, self.text_mode):
            meta: dict[str, Any] = {"order": order, "where": raw.where}
            if raw.url is not None:
                meta["url"] = raw.url
            if raw.problem is not None or raw.text is None:
                meta["problem"] = raw.problem or "bad_record"
            self.stat_update("documents" if "problem" not in meta else "bad_records")
            yield Document(text=raw.text or "", id=str(order), metadata=meta)


class C4CleanStep(PipelineStep):
    """Our C4 page rules as a datatrove step; keeps what the dedup passes need in metadata."""

    name = "taskmix C4 clean"
    type = "🔻 - FILTER"

    def __init__(self, cfg: CleanConfig, work_dir: str):
        super().__init__()
        self.cfg = cfg
        self.work_dir = work_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stats = CleanStats()
        rules = build_rules(self.cfg, stats)
        collector = HashCollector(self.cfg)
        for doc in data:
            meta = doc.metadata
            order = int(meta["order"])
            problem = meta.pop("problem", None)
            where = meta.get("where", doc.id)
            raw = RawDoc(None if problem else doc.text, meta.get("url"), where, problem)
            page = clean_raw(raw, rules, self.cfg, stats)
            if page is None:
                continue
            collector.add(order, page)
            doc.text = page.text
            doc.metadata["lines"] = page.lines
            doc.metadata["sents"] = page.sentences
            yield doc
        work = Path(self.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        collector.save(work / f"hashes-{rank:05d}.npz")
        write_json_atomic(work / f"stage1-{rank:05d}.json", stats.as_dict())
        for rule, n in stats.pages_removed.items():
            self.stat_update(f"pages_removed_{rule}", value=n)


class C4GlobalDedupStep(PipelineStep):
    """The global dedup pass (run it with ``tasks=1``): writes what each stage-1 task drops."""

    name = "taskmix C4 global dedup"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: CleanConfig, work_dir: str, num_tasks: int):
        super().__init__()
        self.cfg = cfg
        self.work_dir = work_dir
        self.num_tasks = num_tasks

    def run(
        self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1
    ) -> DocumentsPipeline:
        work = Path(self.work_dir)
        global_pass(
            self.cfg,
            [work / f"hashes-{r:05d}.npz" for r in range(self.num_tasks)],
            [work / f"drops-{r:05d}.npz" for r in range(self.num_tasks)],
            work / "near_dups.npz",
        )
        yield from ()


class C4DedupApplyStep(PipelineStep):
    """Removes the duplicate lines/spans/pages the global pass found."""

    name = "taskmix C4 dedup apply"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: CleanConfig, work_dir: str, num_tasks: int):
        super().__init__()
        self.cfg = cfg
        self.work_dir = work_dir
        self.num_tasks = num_tasks

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work_dir)
        drops, near = load_drops(
            [work / f"drops-{r:05d}.npz" for r in range(self.num_tasks)], work / "near_dups.npz"
        )
        stats = CleanStats()
        for doc in data:
            meta = doc.metadata
            lines = apply_global(
                int(meta["order"]), meta["lines"], meta["sents"], drops, near, self.cfg, stats
            )
            if lines is None:
                continue
            doc.text = "\n".join(lines).strip()
            doc.metadata = {k: v for k, v in meta.items() if k not in ("lines", "sents")}
            yield doc
        write_json_atomic(work / f"stage2-{rank:05d}.json", stats.as_dict())


def _output_adapter(self, document) -> dict[str, Any]:
    return {"text": document.text, "url": document.metadata.get("url")}


def run_datatrove(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    cfg: CleanConfig,
    *,
    tasks: int = 1,
    workers: int = 1,
    text_mode: str = "block",
) -> CleanStats:
    """Clean ``inputs`` (files or folders, as ``clean_corpus``) with LocalPipelineExecutor.

    On a cluster swap ``LocalPipelineExecutor`` for ``SlurmPipelineExecutor`` (or datatrove's Ray
    executor) with the same pipelines and ``depends=`` between the three stages.
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = [str(f) for f in expand_inputs(items)]
    if text_mode not in ("block", "file"):
        raise ConfigError(f"text_mode: expected 'block' or 'file', got {text_mode!r}")
    if tasks < 1:
        raise ConfigError(f"tasks: expected a positive count, got {tasks}")
    validate_inputs(files)
    validate_resources(cfg)
    out = Path(out_dir)
    work = out / "_work"
    logs = str(work / "logs")

    stage1 = LocalPipelineExecutor(
        pipeline=[
            TaskmixReader(files, text_mode),
            C4CleanStep(cfg, str(work)),
            JsonlWriter(str(work / "stage1"), compression=None),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{logs}/stage1",
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[C4GlobalDedupStep(cfg, str(work), tasks)],
        tasks=1,
        logging_dir=f"{logs}/global",
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(work / "stage1"), glob_pattern="*.jsonl"),
            C4DedupApplyStep(cfg, str(work), tasks),
            JsonlWriter(str(out), compression=None, adapter=_output_adapter),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=f"{logs}/stage3",
        depends=stage2,
    )
    stage3.run()

    first, second = CleanStats(), CleanStats()
    for r in range(tasks):
        first.add(CleanStats.from_dict(json.loads((work / f"stage1-{r:05d}.json").read_text())))
        path = work / f"stage2-{r:05d}.json"
        if path.is_file():  # a task whose stage-1 output was empty reads no file
            second.add(CleanStats.from_dict(json.loads(path.read_text())))
    stats = CleanStats.chain(first, second)
    write_json_atomic(out / "stats.json", stats.as_dict())
    return stats

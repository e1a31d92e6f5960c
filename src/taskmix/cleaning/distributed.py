"""The same cleaning on datatrove, for corpora past one machine (datatrove >= 0.10).

Three datatrove pipelines, each runnable by any datatrove executor (local, Slurm, Ray):

1. ``JsonlReader -> C4CleanStep -> JsonlWriter``: the page rules (our ``clean_raw``) on each
   task's files; each task also writes its dedup hashes to ``work/hashes-<rank>.npz``.
2. ``C4GlobalDedupStep`` as one task: our ``global_pass`` over all hash files.
3. ``JsonlReader -> C4DedupApplyStep -> JsonlWriter``: removes duplicate lines/spans/pages.

Document order (what "first occurrence" means for dedup) is (input file in sorted order, line in
file), the same as the local pipeline given the same files, so both produce the same pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from taskmix.cleaning.io import RawDoc, expand_inputs, input_kind, write_json_atomic
from taskmix.cleaning.pipeline import (
    _ORDER_BITS,
    HashCollector,
    apply_global,
    clean_raw,
    global_pass,
    load_drops,
)
from taskmix.cleaning.presets import CleanConfig
from taskmix.cleaning.rules import build_rules, validate_resources
from taskmix.cleaning.stats import CleanStats
from taskmix.data.errors import ConfigError


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
            order = int(doc.metadata["order"])
            url = doc.metadata.get("url")
            page = clean_raw(RawDoc(doc.text, url, doc.id), rules, self.cfg, stats)
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


def _order_adapter(file_index: dict[str, int]):
    def adapter(self, data: dict, path: str, id_in_file: int | str) -> dict[str, Any]:
        url = data.get("url")
        order = (file_index[path] << _ORDER_BITS) | int(id_in_file)
        return {
            "text": data.get("text", ""),
            "id": str(order),
            "metadata": {"order": order, **({"url": url} if isinstance(url, str) else {})},
        }

    return adapter


def _output_adapter(self, document) -> dict[str, Any]:
    return {"text": document.text, "url": document.metadata.get("url")}


def run_datatrove(
    input_folder: str | Path,
    out_dir: str | Path,
    cfg: CleanConfig,
    *,
    tasks: int = 1,
    workers: int = 1,
) -> CleanStats:
    """Clean the ``*.jsonl`` files of ``input_folder`` with datatrove's LocalPipelineExecutor.

    On a cluster swap ``LocalPipelineExecutor`` for ``SlurmPipelineExecutor`` (or datatrove's Ray
    executor) with the same pipelines and ``depends=`` between the three stages.
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    validate_resources(cfg)
    folder = Path(input_folder)
    files = expand_inputs([folder])
    if any(input_kind(f) != "jsonl" or f.name.endswith(".gz") for f in files):
        raise ConfigError(f"{folder}: the datatrove runner reads plain *.jsonl files only")
    file_index = {str(f.relative_to(folder)): i for i, f in enumerate(files)}
    out = Path(out_dir)
    work = out / "_work"
    logs = str(work / "logs")

    stage1 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(folder), glob_pattern="*.jsonl", adapter=_order_adapter(file_index)),
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

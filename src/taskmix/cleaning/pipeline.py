"""The cleaning pipeline on one machine: shards in parallel, streamed, resumable.

Layout of the output folder ``OUT``::

    OUT/part-00000-of-00004.jsonl   cleaned pages ({"text", "url"}), one file per shard
    OUT/stats.json                  the report (also printed as a table by the CLI)
    OUT/_SUCCESS                    written last
    OUT/_work/config.json           inputs + config: a resumed run must match it
    OUT/_work/stage1-00000.*        pages after the page rules, their line/span hashes, MinHash
    OUT/_work/global.json           marker of the global dedup pass (drops-*.npz, near_dups.npy)

Stage 1 (per shard, parallel): page rules + language id; hashes for dedup. Global pass (one
process): which lines/spans/pages are duplicates. Stage 2 (per shard, parallel): remove them,
write the final part. Each shard's outputs are renamed into place before its marker (the shard's
stats as JSON) is written, so a crashed run resumed with ``resume=True`` redoes only unfinished
shards.

Shards read disjoint parts of the input (``plan_shards``): the inputs, as one stream of bytes
in input order, are cut into ``N`` equal spans; shard ``s`` reads the files whose middle falls in
span ``s``, and uncompressed JSONL/text files are cut at the span ends into byte ranges, so that
one large file is read in parallel too. Total I/O is one pass over the corpus for any ``N``.
A document's ``order`` (file index, then its byte offset, WARC record offset or Parquet row)
does not depend on the plan, so neither do the dedup decisions or the pages kept.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskmix.cleaning import dedup
from taskmix.cleaning.io import (
    OUTPUT_FORMATS,
    AtomicWriter,
    RawDoc,
    expand_inputs,
    read_documents,
    splittable,
    validate_inputs,
    write_json_atomic,
)
from taskmix.cleaning.presets import CleanConfig
from taskmix.cleaning.rules import Page, apply_rules, build_rules, validate_resources
from taskmix.cleaning.stats import CleanStats
from taskmix.errors import ConfigError

FORMAT_VERSION = 2  # 2: shards read byte ranges / whole files (1: every shard read everything)
_ORDER_BITS = 40  # order = file_index << 40 | position in file: input order as one sortable int


def clean_text(
    text: str, cfg: CleanConfig, url: str | None = None, stats: CleanStats | None = None
) -> str | None:
    """Clean one page with the page rules (no corpus dedup): the text, or None when dropped."""
    stats = stats if stats is not None else CleanStats()
    page = clean_raw(RawDoc(text, url, "<text>"), build_rules(cfg, stats), cfg, stats)
    return None if page is None else page.text


def clean_raw(raw: RawDoc, rules, cfg: CleanConfig, stats: CleanStats) -> Page | None:
    """Input checks (undecodable, empty, gigantic), then the rules. Counts everything."""
    stats.pages_in += 1
    if raw.problem is not None or raw.text is None:
        stats.remove_page(f"input_{raw.problem or 'bad_record'}", 0)
        return None
    page = Page.from_text(raw.text, raw.url)
    stats.lines_in += len(page.lines)
    if cfg.max_page_chars is not None and len(raw.text) > cfg.max_page_chars:
        stats.remove_page("input_too_long", len(page.lines))
        return None
    if not raw.text.strip():
        stats.remove_page("input_empty", len(page.lines))
        return None
    page = apply_rules(page, rules, stats)
    if page is not None:
        stats.pages_out += 1
        stats.lines_out += len(page.lines)
    return page


@dataclass(frozen=True)
class Piece:
    """What one shard reads of one input: the whole file, or the lines starting in [start, end)."""

    file_index: int
    path: str
    start: int = 0
    end: int | None = None


def plan_shards(
    files: Sequence[str | Path], num_shards: int, text_mode: str = "block"
) -> list[tuple[Piece, ...]]:
    """Per shard, the pieces it reads: disjoint, together the whole input, sizes balanced.

    Lay the files end to end and cut that byte stream into ``num_shards`` equal spans. A file
    that can be read by byte range (``io.splittable``) is cut at the span ends; any other file
    (compressed, WARC, Parquet, text in file mode) goes whole to the span holding its middle.
    """
    sizes = [os.path.getsize(f) for f in files]
    for path, size in zip(files, sizes, strict=True):
        if size >= 1 << _ORDER_BITS:
            raise ConfigError(f"input {str(path)!r}: files of 1 TiB or more are not supported")
    total = sum(sizes)
    bounds = [total * s // num_shards for s in range(num_shards + 1)]
    plan: list[list[Piece]] = [[] for _ in range(num_shards)]
    begin = 0
    for index, (path, size) in enumerate(zip(files, sizes, strict=True)):
        if splittable(path, text_mode):
            for s in range(num_shards):
                a, b = max(bounds[s], begin), min(bounds[s + 1], begin + size)
                if a < b:
                    end = None if b == begin + size else b - begin
                    plan[s].append(Piece(index, str(path), a - begin, end))
        else:
            middle = begin + size // 2
            s = min(max(bisect.bisect_right(bounds, middle) - 1, 0), num_shards - 1)
            plan[s].append(Piece(index, str(path)))
        begin += size
    return [tuple(pieces) for pieces in plan]


def iter_ordered(pieces: Sequence[Piece], text_mode: str = "block") -> Iterator[tuple[int, RawDoc]]:
    """(order, record) over the pieces; ``order`` sorts as the input order."""
    for piece in pieces:
        path = Path(piece.path)
        for raw in read_documents(path, text_mode, piece.start, piece.end):
            yield (piece.file_index << _ORDER_BITS) | raw.pos, raw


@dataclass(frozen=True)
class ShardJob:
    pieces: tuple[Piece, ...]
    shard: int
    num_shards: int
    cfg: CleanConfig
    out_dir: str
    fmt: str = "jsonl"
    text_mode: str = "block"

    @property
    def work(self) -> Path:
        return Path(self.out_dir) / "_work"

    def stage1(self, suffix: str) -> Path:
        return self.work / f"stage1-{self.shard:05d}{suffix}"

    @property
    def part(self) -> Path:
        return Path(self.out_dir) / f"part-{self.shard:05d}-of-{self.num_shards:05d}.{self.fmt}"


def page_keys(page: Page, cfg: CleanConfig) -> list[tuple[int, int]]:
    """(position, hash) of the page's lines or sentence spans, as the config dedups."""
    if cfg.dedup == "lines":
        return dedup.line_keys(page.lines)
    if cfg.dedup == "spans":
        return dedup.span_keys(page.lines, page.sentences or [], cfg.span_sentences)
    return []


class HashCollector:
    """What stage 1 remembers of each kept page for the global pass: hashes and MinHash."""

    def __init__(self, cfg: CleanConfig):
        self.cfg = cfg
        self.hashes: list[int] = []
        self.orders: list[int] = []
        self.positions: list[int] = []
        self.sig_orders: list[int] = []
        self.signatures: list[np.ndarray] = []

    def add(self, order: int, page: Page) -> None:
        for pos, h in page_keys(page, self.cfg):
            self.hashes.append(h)
            self.orders.append(order)
            self.positions.append(pos)
        if self.cfg.minhash:
            self.sig_orders.append(order)
            self.signatures.append(
                dedup.minhash_signature(
                    page.text, self.cfg.minhash_num_perm, self.cfg.minhash_ngram
                )
            )

    def save(self, path: Path) -> None:
        _save_npz(
            path,
            hashes=np.asarray(self.hashes, dtype=np.uint64),
            orders=np.asarray(self.orders, dtype=np.uint64),
            positions=np.asarray(self.positions, dtype=np.uint32),
            sig_orders=np.asarray(self.sig_orders, dtype=np.uint64),
            signatures=np.asarray(self.signatures, dtype=np.uint64).reshape(
                len(self.signatures), self.cfg.minhash_num_perm
            ),
        )


def run_stage1(job: ShardJob) -> dict[str, Any]:
    """Page rules over one shard; writes pages, dedup hashes, MinHash signatures, then the marker."""
    cfg = job.cfg
    stats = CleanStats()
    rules = build_rules(cfg, stats)
    collector = HashCollector(cfg)
    with AtomicWriter(job.stage1(".jsonl")) as out:
        for order, raw in iter_ordered(job.pieces, job.text_mode):
            page = clean_raw(raw, rules, cfg, stats)
            if page is None:
                continue
            collector.add(order, page)
            out.write({"o": order, "url": page.url, "lines": page.lines, "sents": page.sentences})
    collector.save(job.stage1("-hashes.npz"))
    result = stats.as_dict()
    write_json_atomic(job.stage1(".done.json"), result)
    return result


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def run_global_pass(jobs: Sequence[ShardJob]) -> None:
    """Decide, over the whole corpus, which pages are near-duplicates and which lines/spans repeat."""
    work = jobs[0].work
    global_pass(
        jobs[0].cfg,
        [job.stage1("-hashes.npz") for job in jobs],
        [work / f"drops-{job.shard:05d}.npz" for job in jobs],
        work / "near_dups.npz",
    )
    write_json_atomic(work / "global.json", {"shards": len(jobs)})


def global_pass(
    cfg: CleanConfig, hash_files: Sequence[Path], drop_files: Sequence[Path], near_file: Path
) -> None:
    """Read every shard's hashes; write per shard the (order, pos) entries to drop.

    MinHash runs first, so that a near-duplicate page owns no line or span.
    """
    loaded = [np.load(path) for path in hash_files]
    near: set[int] = set()
    if cfg.minhash:
        near = dedup.find_near_duplicates(
            np.concatenate([d["sig_orders"] for d in loaded]),
            np.concatenate([d["signatures"] for d in loaded]),
            cfg.minhash_threshold,
        )
    near_arr = np.asarray(sorted(near), dtype=np.uint64)
    hashes = np.concatenate([d["hashes"] for d in loaded])
    orders = np.concatenate([d["orders"] for d in loaded])
    positions = np.concatenate([d["positions"] for d in loaded])
    shard_of = np.concatenate([np.full(len(d["hashes"]), i) for i, d in enumerate(loaded)])
    alive = ~np.isin(orders, near_arr)
    drop = np.zeros(len(hashes), dtype=bool)
    drop[alive] = dedup.find_drops(hashes[alive], orders[alive], positions[alive])
    for i, path in enumerate(drop_files):
        mine = drop & (shard_of == i)
        _save_npz(path, orders=orders[mine], positions=positions[mine])
    _save_npz(near_file, orders=near_arr)


def load_drops(drop_files: Sequence[Path], near_file: Path) -> tuple[dict[int, set[int]], set[int]]:
    drops: dict[int, set[int]] = {}
    for path in drop_files:
        d = np.load(path)
        for order, pos in zip(d["orders"].tolist(), d["positions"].tolist(), strict=True):
            drops.setdefault(order, set()).add(pos)
    return drops, set(np.load(near_file)["orders"].tolist())


def apply_global(
    order: int,
    lines: list[str],
    sents: list,
    drops: dict[int, set[int]],
    near: set[int],
    cfg: CleanConfig,
    stats: CleanStats,
) -> list[str] | None:
    """Stage 2 for one page: its lines after dedup, or None when the page goes. Counts it."""
    stats.pages_in += 1
    stats.lines_in += len(lines)
    rule = "dedup_lines" if cfg.dedup == "lines" else "dedup_spans"
    if order in near:
        stats.remove_page("near_duplicate", len(lines))
        return None
    mine = drops.get(order)
    if mine:
        n_before = len(lines)
        if cfg.dedup == "lines":
            lines = dedup.drop_lines(lines, mine)
            sents = [s for i, s in enumerate(sents) if i not in mine]
        else:
            lines, sents, removed = dedup.drop_spans(lines, sents, mine, cfg.span_sentences)
            stats.details["dedup_spans:sentences_removed"] += removed
        if not lines:
            stats.remove_page(rule, n_before)
            return None
        stats.lines_removed[rule] += n_before - len(lines)
        if cfg.recheck_min_sentences and sum(map(len, sents)) < cfg.min_sentences:
            stats.remove_page("dedup_min_sentences", len(lines))
            return None
    stats.pages_out += 1
    stats.lines_out += len(lines)
    return lines


def run_stage2(job: ShardJob) -> dict[str, Any]:
    """Remove duplicate pages/lines/spans found by the global pass; write the final part."""
    cfg = job.cfg
    stats = CleanStats()
    drops: dict[int, set[int]] = {}
    near: set[int] = set()
    if cfg.needs_global_pass:
        drops, near = load_drops(
            [job.work / f"drops-{job.shard:05d}.npz"], job.work / "near_dups.npz"
        )
    with AtomicWriter(job.part, job.fmt) as out, open(job.stage1(".jsonl"), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            lines = apply_global(rec["o"], rec["lines"], rec["sents"], drops, near, cfg, stats)
            if lines is not None:
                out.write({"text": "\n".join(lines).strip(), "url": rec["url"]})
    result = stats.as_dict()
    write_json_atomic(job.work / f"stage2-{job.shard:05d}.done.json", result)
    return result


def _map(fn, jobs: list[ShardJob], workers: int) -> list[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    with multiprocessing.get_context().Pool(min(workers, len(jobs))) as pool:
        return pool.map(fn, jobs, chunksize=1)


def _read_marker(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def clean_corpus(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: CleanConfig,
    *,
    workers: int = 1,
    shards: int | None = None,
    fmt: str = "jsonl",
    text_mode: str = "block",
    resume: bool = False,
) -> CleanStats:
    """Clean ``inputs`` into ``out_dir``; returns (and writes to stats.json) the report.

    Everything the run needs (inputs, word lists, libraries, a fresh or matching output folder)
    is checked before any work starts.
    """
    files = [str(p) for p in expand_inputs(list(inputs))]
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"output format: expected one of {OUTPUT_FORMATS}, got {fmt!r}")
    if text_mode not in ("block", "file"):
        raise ConfigError(f"text_mode: expected 'block' or 'file', got {text_mode!r}")
    validate_inputs(files)
    validate_resources(cfg)
    workers = max(1, workers)
    shards = shards if shards is not None else workers
    if shards < 1:
        raise ConfigError(f"shards: expected a positive count, got {shards}")
    out = Path(out_dir)
    work = out / "_work"
    manifest = {
        "version": FORMAT_VERSION,
        "inputs": [str(Path(f).resolve()) for f in files],
        "input_sizes": [os.path.getsize(f) for f in files],  # the shard plan depends on them
        "shards": shards,
        "format": fmt,
        "text_mode": text_mode,
        "config": cfg.to_dict(),
    }
    previous = _read_marker(work / "config.json")
    if previous is not None and resume:
        if previous != manifest:
            changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
            raise ConfigError(
                f"cannot resume into {str(out)!r}: it was started with different {changed}; "
                "use a new output folder"
            )
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"output folder {str(out)!r} is not empty; pass --resume to continue a run there "
            "or choose a new folder"
        )
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "config.json", manifest)

    plan = plan_shards(files, shards, text_mode)
    jobs = [ShardJob(plan[s], s, shards, cfg, str(out), fmt, text_mode) for s in range(shards)]
    todo = [j for j in jobs if _read_marker(j.stage1(".done.json")) is None]
    _map(run_stage1, todo, workers)
    first = [CleanStats.from_dict(_read_marker(j.stage1(".done.json"))) for j in jobs]
    if cfg.needs_global_pass and _read_marker(work / "global.json") is None:
        run_global_pass(jobs)
    todo = [j for j in jobs if _read_marker(j.work / f"stage2-{j.shard:05d}.done.json") is None]
    _map(run_stage2, todo, workers)
    second = [
        CleanStats.from_dict(_read_marker(j.work / f"stage2-{j.shard:05d}.done.json")) for j in jobs
    ]

    total1, total2 = CleanStats(), CleanStats()
    for s in first:
        total1.add(s)
    for s in second:
        total2.add(s)
    stats = CleanStats.chain(total1, total2)
    write_json_atomic(out / "stats.json", stats.as_dict())
    (out / "_SUCCESS").write_text("")
    return stats

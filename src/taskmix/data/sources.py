"""Concrete sources: JSONL, CSV/TSV, Parquet, text lines, Hugging Face datasets, Python functions.

Every source streams (line by line, or record batch by record batch), tags each record with
``_where = "<path>:<line>"`` (1-based; the row number for Parquet and datasets) and shards by
position: record ``i`` of a split (counted over all its files, in order) belongs to shard
``i % num_shards``. A malformed record becomes a ``RecordError`` handed to ``ctx.handle``, which
raises or counts-and-skips it as the task's ``on_error`` says: nothing is dropped silently.

``num_records`` counts a file once and caches the count on disk (``record_counts``). The
``source:`` block of a YAML task becomes one of these in ``source_spec``.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import json
import os
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from taskmix.data.record_counts import cached_count
from taskmix.data.task import Example, PreprocessContext, Source
from taskmix.errors import RecordError

PathLike = str | os.PathLike
SplitPaths = Mapping[str, PathLike | Sequence[PathLike]]
_GLOB_CHARS = set("*?[")


# --------------------------------------------------------------------------- helpers


def check_shard(shard_index: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} must be in [0, num_shards={num_shards})")


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _open_binary(path: Path):
    """Open a file for reading bytes; ``.gz`` files are decompressed on the fly."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _nonblank_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes without the line ending) of every line that is not blank.

    Blank means empty or only ASCII whitespace. Lines split on ``\\n`` only, so line numbers
    match what an editor shows. A UTF-8 byte order mark at the start of the file is dropped.
    """
    with _open_binary(path) as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if raw.strip():
                yield number, raw.rstrip(b"\r\n")


def _utf8_error(raw: bytes, err: UnicodeDecodeError) -> str:
    return f"not valid UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}"


def _has_escaped_bytes(value: Any) -> bool:
    """True if a value decoded with ``surrogateescape`` holds bytes that were not UTF-8."""
    if isinstance(value, str):
        return any("\udc80" <= ch <= "\udcff" for ch in value)
    if isinstance(value, dict):
        return any(_has_escaped_bytes(k) or _has_escaped_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_escaped_bytes(v) for v in value)
    return False


def _undecodable_field(raw: bytes) -> str | None:
    """Best effort: the top-level JSON key whose value holds the bad bytes (None if unknown)."""
    try:
        obj = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return next((str(k) for k, v in obj.items() if _has_escaped_bytes(v)), None)


# --------------------------------------------------------------------------- count cache


class FileSource(Source):
    """A source whose splits are files: a path, a list of paths, or a glob per split.

    Subclasses say how a file splits into *candidate* records (``_candidates``: cheap, no
    validation) and how a candidate becomes a record (``_parse``: may raise RecordError). Only
    the candidates of the requested shard are parsed, so each error is reported by one shard.
    """

    kind: ClassVar[str] = "file"

    def __init__(self, split_paths: SplitPaths):
        if not isinstance(split_paths, Mapping) or not split_paths:
            raise ValueError("split_paths must be a non-empty mapping split -> path(s)")
        self._patterns: dict[str, list[str]] = {}
        for split, value in split_paths.items():
            items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
            if not items:
                raise ValueError(f"split {split!r} has no paths")
            self._patterns[str(split)] = [os.fspath(p) for p in items]
        self._counts: dict[str, int] = {}

    @property
    def splits(self) -> Sequence[str]:
        return list(self._patterns)

    def data_files(self) -> list[Path]:
        return [path for split in self.splits for path in self.files(split)]

    def files(self, split: str) -> list[Path]:
        """The files of a split, in order (each glob expanded and sorted)."""
        self.check_split(split)
        out: list[Path] = []
        for pattern in self._patterns[split]:
            expanded = os.path.expanduser(pattern)
            if _is_glob(expanded):
                matches = sorted(glob.glob(expanded))
                if not matches:
                    raise FileNotFoundError(f"split {split!r}: no file matches {pattern!r}")
                out.extend(Path(m) for m in matches)
            elif not os.path.isfile(expanded):
                raise FileNotFoundError(f"split {split!r}: file not found: {pattern!r}")
            else:
                out.append(Path(expanded))
        return out

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        check_shard(shard_index, num_shards)
        position = 0
        for path in self.files(split):
            for line, payload in self._candidates(path):
                mine = position % num_shards == shard_index
                position += 1
                if not mine:
                    continue
                where = f"{path}:{line}"
                try:
                    record = self._parse(payload, where)
                except RecordError as err:
                    ctx.handle(err)
                    continue
                record["_where"] = where
                yield record

    def num_records(self, split: str) -> int:
        if split not in self._counts:
            self._counts[split] = sum(
                cached_count(p, self._count_kind(), self._count_file) for p in self.files(split)
            )
        return self._counts[split]

    def _count_kind(self) -> str:
        return self.kind

    def _count_file(self, path: Path) -> int:
        """Records in one file: as many as ``iter_records`` yields when every record is valid."""
        return sum(1 for _ in self._candidates(path))

    @abstractmethod
    def _candidates(self, path: Path) -> Iterator[tuple[int, Any]]:
        """(line or row number, raw payload) for every record of a file, without validation."""

    @abstractmethod
    def _parse(self, payload: Any, where: str) -> Example:
        """A raw payload as a fresh dict, or a RecordError naming ``where`` (and the field)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._patterns!r})"


class JsonlSource(FileSource):
    """One JSON object per line (``.jsonl`` or ``.jsonl.gz``); blank lines are skipped."""

    kind = "jsonl"

    def _candidates(self, path: Path) -> Iterator[tuple[int, bytes]]:
        return _nonblank_lines(path)

    def _count_file(self, path: Path) -> int:
        return sum(1 for _ in _nonblank_lines(path))

    def _parse(self, payload: bytes, where: str) -> Example:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RecordError(
                _utf8_error(payload, err), where=where, field=_undecodable_field(payload)
            ) from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise RecordError(
                f"malformed JSON: {err.msg} (column {err.colno})", where=where
            ) from None
        if not isinstance(record, dict):
            raise RecordError(
                f"expected a JSON object, got {type(record).__name__}", where=where
            ) from None
        return record


class TextLineSource(FileSource):
    """One document per line, stored under ``field``; blank lines are skipped."""

    kind = "text"

    def __init__(self, split_paths: SplitPaths, field: str = "text"):
        super().__init__(split_paths)
        self.field = field

    def _candidates(self, path: Path) -> Iterator[tuple[int, bytes]]:
        return _nonblank_lines(path)

    def _count_file(self, path: Path) -> int:
        return sum(1 for _ in _nonblank_lines(path))

    def _parse(self, payload: bytes, where: str) -> Example:
        try:
            return {self.field: payload.decode("utf-8")}
        except UnicodeDecodeError as err:
            raise RecordError(_utf8_error(payload, err), where=where, field=self.field) from None


def _delimiter_for(pattern: str) -> str | None:
    name = pattern[:-3] if pattern.endswith(".gz") else pattern
    suffix = os.path.splitext(name)[1].lower()
    return {".csv": ",", ".tsv": "\t"}.get(suffix)


class CsvSource(FileSource):
    """Comma/tab separated files whose first row names the fields.

    The delimiter is inferred from ``.csv`` / ``.tsv`` unless given. ``quotechar=None`` turns
    quoting off (for TSV files whose text holds unbalanced quotes). A quoted field may span
    lines; its record's line is the line where it starts. Empty lines are skipped.
    """

    kind = "csv"

    def __init__(
        self, split_paths: SplitPaths, delimiter: str | None = None, quotechar: str | None = '"'
    ):
        super().__init__(split_paths)
        if delimiter is None:
            for patterns in self._patterns.values():
                for pattern in patterns:
                    if _delimiter_for(pattern) is None:
                        raise ValueError(
                            f"cannot infer the delimiter of {pattern!r} (expected a .csv or "
                            ".tsv name); pass delimiter="
                        )
        elif len(delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter
        self.quotechar = quotechar

    def _count_kind(self) -> str:
        return f"csv[{self.delimiter!r},{self.quotechar!r}]"

    def _reader(self, path: Path, lines: Iterable[str]):
        delimiter = self.delimiter or _delimiter_for(str(path)) or ","
        if self.quotechar is None:
            return csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        return csv.reader(lines, delimiter=delimiter, quotechar=self.quotechar)

    def _candidates(self, path: Path) -> Iterator[tuple[int, Any]]:
        with _open_binary(path) as f:
            # Decode with surrogateescape so one bad byte fails one record (in _parse), not the file.
            lines = (raw.decode("utf-8", "surrogateescape") for raw in f)
            reader = self._reader(path, lines)
            header = next(reader, None)
            if header is None:
                return
            if header and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]
            where = f"{path}:1"
            if _has_escaped_bytes(header):
                raise RecordError("header row is not valid UTF-8", where=where)
            if len(set(header)) != len(header) or not all(header):
                raise RecordError(
                    f"header row needs distinct, non-empty field names, got {header}", where=where
                )
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    yield start, (header, err)
                    continue
                if row:  # [] is an empty line
                    yield start, (header, row)

    def _parse(self, payload: tuple[list[str], Any], where: str) -> Example:
        header, row = payload
        if isinstance(row, csv.Error):
            raise RecordError(f"malformed CSV: {row}", where=where)
        if len(row) != len(header):
            missing = header[len(row)] if len(row) < len(header) else None
            raise RecordError(
                f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}",
                where=where,
                field=missing,
            )
        for name, value in zip(header, row, strict=True):
            if _has_escaped_bytes(value):
                raw = value.encode("utf-8", "surrogateescape")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise RecordError(_utf8_error(raw, err), where=where, field=name) from None
        return dict(zip(header, row, strict=True))


class ParquetSource(FileSource):
    """Parquet files read one record batch at a time (never the whole file); ``_where`` uses
    the 1-based row number."""

    kind = "parquet"
    batch_size: ClassVar[int] = 1024

    def _candidates(self, path: Path) -> Iterator[tuple[int, dict]]:
        import pyarrow.parquet as pq

        row = 0
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=self.batch_size):
                for record in batch.to_pylist():
                    row += 1
                    yield row, record

    def _count_file(self, path: Path) -> int:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            return parquet.metadata.num_rows  # from the footer: no data is read

    def _parse(self, payload: dict, where: str) -> Example:
        return dict(payload)


# --------------------------------------------------------------------------- other sources


class HFDatasetSource(Source):
    """A Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder, or a hub id (online only).

    ``splits`` restricts (and names, without loading anything) the splits used. A folder
    holding a single ``Dataset`` has one split, named ``splits[0]`` if given, else ``train``.
    ``datasets`` is imported only when data is needed (it is the optional ``hf`` extra).
    """

    batch_size: ClassVar[int] = 1000

    def __init__(
        self, path_or_id: PathLike, splits: Sequence[str] | None = None, config: str | None = None
    ):
        self.path_or_id = os.fspath(path_or_id)
        self.config = config
        self._requested = list(splits) if splits is not None else None
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        try:
            import datasets
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise ImportError("HFDatasetSource needs `pip install taskmix[hf]`") from err
        if os.path.isdir(self.path_or_id):
            loaded = datasets.load_from_disk(self.path_or_id)
        else:
            loaded = datasets.load_dataset(self.path_or_id, self.config)
        if isinstance(loaded, datasets.Dataset):
            name = self._requested[0] if self._requested else "train"
            data = {name: loaded}
        else:
            data = dict(loaded)
        if self._requested is not None:
            missing = [s for s in self._requested if s not in data]
            if missing:
                raise KeyError(f"{self.path_or_id}: no split(s) {missing}; it has {sorted(data)}")
            data = {s: data[s] for s in self._requested}
        self._data = data
        return data

    @property
    def splits(self) -> Sequence[str]:
        return list(self._requested) if self._requested is not None else list(self._load())

    def _where_prefix(self, split: str) -> str:
        data = self._load()
        # A DatasetDict folder keeps each split in a sub-folder named after it.
        single = len(data) == 1 and os.path.isfile(os.path.join(self.path_or_id, "state.json"))
        return self.path_or_id if single else f"{self.path_or_id}/{split}"

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        check_shard(shard_index, num_shards)
        self.check_split(split)
        dataset = self._load()[split]
        prefix = self._where_prefix(split)
        position = 0
        for batch in dataset.iter(batch_size=self.batch_size):
            columns = list(batch)
            size = len(batch[columns[0]]) if columns else 0
            for j in range(size):
                mine = position % num_shards == shard_index
                position += 1
                if mine:
                    record = {c: batch[c][j] for c in columns}
                    record["_where"] = f"{prefix}:{position}"
                    yield record

    def num_records(self, split: str) -> int:
        self.check_split(split)
        return len(self._load()[split])

    def __repr__(self) -> str:
        return f"HFDatasetSource({self.path_or_id!r}, splits={self._requested!r})"


class FunctionSource(Source):
    """Records from a Python callable ``fn(split) -> Iterable[dict]`` (generated or in-memory data).

    ``fn`` must give the same records in the same order every call. ``_where`` is
    ``"<fn name>:<i+1>"``.
    """

    def __init__(self, fn: Callable[[str], Iterable[dict]], splits: Sequence[str]):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if isinstance(splits, str) or not splits:
            raise ValueError("splits must be a non-empty list of split names")
        self.fn = fn
        self._splits = list(splits)
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self._counts: dict[str, int] = {}

    @property
    def splits(self) -> Sequence[str]:
        return list(self._splits)

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        check_shard(shard_index, num_shards)
        self.check_split(split)
        for i, item in enumerate(self.fn(split)):
            if i % num_shards != shard_index:
                continue
            where = f"{self.name}:{i + 1}"
            if not isinstance(item, Mapping):
                ctx.handle(RecordError(f"expected a dict, got {type(item).__name__}", where=where))
                continue
            record = dict(item)  # never mutate the caller's objects
            record["_where"] = where
            yield record

    def num_records(self, split: str) -> int:
        self.check_split(split)
        if split not in self._counts:  # in memory only: a function has no file to key a cache on
            self._counts[split] = sum(1 for _ in self.fn(split))
        return self._counts[split]

    def __repr__(self) -> str:
        return f"FunctionSource({self.name}, splits={self._splits!r})"


__all__ = [
    "CsvSource",
    "FileSource",
    "FunctionSource",
    "HFDatasetSource",
    "JsonlSource",
    "ParquetSource",
    "TextLineSource",
]

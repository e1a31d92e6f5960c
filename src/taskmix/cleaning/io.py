"""Readers (JSONL, plain text, WARC/WET, Parquet) and atomic writers (JSONL, Parquet).

Readers never raise on bad content: a record that cannot be used comes back with ``problem``
set ("undecodable", "bad_record", "broken_record") so the pipeline counts and skips it.

Plain text: by default each block of lines separated by one or more blank lines is a document
(``text_mode="block"``); ``text_mode="file"`` makes each file one document.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from taskmix.data.errors import ConfigError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
TEXT_SUFFIXES = (".txt", ".txt.gz", ".text")
WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")
PARQUET_SUFFIXES = (".parquet",)
ALL_SUFFIXES = JSONL_SUFFIXES + TEXT_SUFFIXES + WARC_SUFFIXES + PARQUET_SUFFIXES
OUTPUT_FORMATS = ("jsonl", "parquet")


@dataclass
class RawDoc:
    """One input record. ``text`` is None when ``problem`` says why it cannot be used."""

    text: str | None
    url: str | None
    where: str
    problem: str | None = None


def input_kind(path: str | Path) -> str:
    name = str(path).lower()
    for kind, suffixes in (
        ("jsonl", JSONL_SUFFIXES),
        ("text", TEXT_SUFFIXES),
        ("warc", WARC_SUFFIXES),
        ("parquet", PARQUET_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    raise ConfigError(f"input {str(path)!r}: unknown file type; expected one of {ALL_SUFFIXES}")


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files from files and folders (folders: their known files, sorted), checked up front."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(ALL_SUFFIXES)
            )
            if not found:
                raise ConfigError(f"input folder {str(p)!r} holds no {ALL_SUFFIXES} files")
            files.extend(found)
        elif p.is_file():
            input_kind(p)
            files.append(p)
        else:
            raise ConfigError(f"input not found: {str(p)!r}")
    if not files:
        raise ConfigError("no input files given")
    return files


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_jsonl(path: Path) -> Iterator[RawDoc]:
    """``{"text": str, "url": str (optional)}`` per line; blank lines are not records."""
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield RawDoc(None, None, where, "undecodable")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                yield RawDoc(None, None, where, "bad_record")
                continue
            text = record.get("text") if isinstance(record, dict) else None
            url = record.get("url") if isinstance(record, dict) else None
            if not isinstance(text, str):
                yield RawDoc(None, None, where, "bad_record")
                continue
            yield RawDoc(text, url if isinstance(url, str) else None, where)


def read_text(path: Path, mode: str = "block") -> Iterator[RawDoc]:
    def decode(chunk: list[bytes], where: str) -> RawDoc:
        try:
            return RawDoc(b"".join(chunk).decode("utf-8"), None, where)
        except UnicodeDecodeError:
            return RawDoc(None, None, where, "undecodable")

    with _open_binary(path) as f:
        if mode == "file":
            yield decode([f.read()], str(path))
            return
        block: list[bytes] = []
        start = 1
        for lineno, raw in enumerate(f, 1):
            if raw.strip():
                if not block:
                    start = lineno
                block.append(raw)
            elif block:
                yield decode(block, f"{path}:{start}")
                block = []
        if block:
            yield decode(block, f"{path}:{start}")


_WARC_TEXT_TYPES = ("conversion", "resource", "response")


def read_warc(path: Path) -> Iterator[RawDoc]:
    """Text records of a WARC/WET file (C4 read WET ``conversion`` records).

    A record warcio cannot parse is reported as ``broken_record``; reading resumes at the next
    record start found after it (``WARC/1.`` in plain files, a gzip member header in ``.gz``).
    Records that are not text (``request``, ``metadata``, HTML ``response``...) are not documents.
    """
    from warcio.archiveiterator import ArchiveIterator

    gz = path.name.lower().endswith(".gz")
    marker = b"\x1f\x8b\x08" if gz else b"WARC/1."
    with open(path, "rb") as f:
        start = 0
        while True:
            f.seek(start)
            last = start
            try:
                iterator = ArchiveIterator(f, check_digests=False)
                for record in iterator:
                    doc = _warc_doc(record)  # before get_record_offset, which skips the payload
                    last = start + iterator.get_record_offset()
                    if doc is not None:
                        doc.where = f"{path}@{last}"
                        yield doc
                return
            except Exception:  # warcio/zlib raise many types on corrupt input
                yield RawDoc(None, None, f"{path}@{last}", "broken_record")
            start = _find(f, marker, last + 1)
            if start < 0:
                return


def _warc_doc(record: Any, where: str = "") -> RawDoc | None:
    if record.rec_type not in _WARC_TEXT_TYPES:
        return None
    content_type = (record.rec_headers.get_header("Content-Type") or "").lower()
    if record.http_headers is not None:
        content_type = (record.http_headers.get_header("Content-Type") or "").lower()
    if content_type and not content_type.startswith("text/plain"):
        return None
    url = record.rec_headers.get_header("WARC-Target-URI")
    payload = record.content_stream().read()
    try:
        return RawDoc(payload.decode("utf-8"), url, where)
    except UnicodeDecodeError:
        return RawDoc(None, url, where, "undecodable")


def _find(f: IO[bytes], marker: bytes, offset: int, chunk: int = 1 << 20) -> int:
    """Offset of the next ``marker`` at or after ``offset`` (-1 when none)."""
    pos = offset
    while True:
        f.seek(pos)
        data = f.read(chunk + len(marker))
        if not data:
            return -1
        i = data.find(marker)
        if i >= 0:
            return pos + i
        if len(data) <= len(marker):
            return -1
        pos += chunk


def read_parquet(path: Path) -> Iterator[RawDoc]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if "text" not in pf.schema_arrow.names:
        raise ConfigError(
            f"{path}: Parquet input needs a 'text' column, has {pf.schema_arrow.names}"
        )
    columns = ["text"] + (["url"] if "url" in pf.schema_arrow.names else [])
    row = 0
    for batch in pf.iter_batches(columns=columns):
        data = batch.to_pydict()
        urls = data.get("url", [None] * batch.num_rows)
        for text, url in zip(data["text"], urls, strict=True):
            row += 1
            if isinstance(text, str):
                yield RawDoc(text, url, f"{path}#row{row}")
            else:
                yield RawDoc(None, None, f"{path}#row{row}", "bad_record")


def read_documents(path: Path, text_mode: str = "block") -> Iterator[RawDoc]:
    kind = input_kind(path)
    if kind == "jsonl":
        return read_jsonl(path)
    if kind == "text":
        return read_text(path, text_mode)
    if kind == "warc":
        return read_warc(path)
    return read_parquet(path)


class AtomicWriter:
    """Writes ``{"text", "url"}`` records to a temporary file; ``commit`` renames it into place.

    A crash (or an exception inside ``with``) leaves no partial output under the final name.
    """

    def __init__(self, path: str | Path, fmt: str = "jsonl", batch_size: int = 2048):
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"output format: expected one of {OUTPUT_FORMATS}, got {fmt!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.batch_size = batch_size
        self._rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._pq: Any = None
        self.count = 0

    def __enter__(self) -> AtomicWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "jsonl":
            self._file = open(self.tmp, "w", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        self.count += 1
        if self._file is not None:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        self._rows.append(record)
        if len(self._rows) >= self.batch_size:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("text", pa.string()), ("url", pa.string())])
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.tmp, schema)
        table = pa.Table.from_pylist(
            [{"text": r["text"], "url": r.get("url")} for r in self._rows], schema=schema
        )
        self._pq.write_table(table)
        self._rows = []

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._file is not None:
            self._file.close()
        if self.fmt == "parquet":
            if exc_type is None and (self._rows or self._pq is None):
                self._flush_parquet()
            if self._pq is not None:
                self._pq.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.tmp)


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)

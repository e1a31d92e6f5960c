"""Readers (JSONL, plain text, WARC/WET, Parquet) and atomic writers (JSONL, Parquet).

Readers never raise on bad content: a record that cannot be used comes back with ``problem``
set ("undecodable", "bad_record", "broken_record", "broken_file") so the pipeline counts and
skips it. A gzip stream that ends early or is corrupt ends its file with one "broken_file"
record; what was read before it is kept.

Every record carries ``pos``, its place in the file as an int that sorts in input order (byte
offset of the line or block for JSONL/text, of the record for WARC; row index for Parquet), so a
document's identity does not depend on how the input was split among shards.

Plain text: by default each block of lines separated by one or more blank lines is a document
(``text_mode="block"``); ``text_mode="file"`` makes each file one document.

Uncompressed JSONL and block-mode text can be read by byte range (``start``, ``end``): a line
(block) belongs to the range in which it starts, so ranges that tile a file read every record
exactly once.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from taskmix.errors import ConfigError

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
TEXT_SUFFIXES = (".txt", ".txt.gz", ".text")
WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")
PARQUET_SUFFIXES = (".parquet",)
ALL_SUFFIXES = JSONL_SUFFIXES + TEXT_SUFFIXES + WARC_SUFFIXES + PARQUET_SUFFIXES
OUTPUT_FORMATS = ("jsonl", "parquet")

# What a truncated or corrupt gzip stream (or a file vanishing mid-run) raises while reading.
_STREAM_ERRORS = (EOFError, OSError, zlib.error)
# Lone surrogates: valid in JSON ("\ud800") and in a Python str, but not encodable as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() strips


@dataclass
class RawDoc:
    """One input record. ``text`` is None when ``problem`` says why it cannot be used."""

    text: str | None
    url: str | None
    where: str
    problem: str | None = None
    pos: int = 0


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


def splittable(path: str | Path, text_mode: str = "block") -> bool:
    """Whether the file can be read by byte ranges: uncompressed JSONL, or text in block mode."""
    kind = input_kind(path)
    if str(path).lower().endswith(".gz"):
        return False
    return kind == "jsonl" or (kind == "text" and text_mode == "block")


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


def validate_inputs(files: Sequence[str | Path]) -> None:
    """Check what can be checked cheaply before any work: Parquet files open and have ``text``.

    Reads only Parquet footers, so a run does not fail on a schema in a worker hours later.
    """
    for raw in files:
        path = Path(raw)
        if input_kind(path) != "parquet":
            continue
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.ParquetFile(path).schema_arrow
        except (OSError, pa.ArrowException) as err:
            raise ConfigError(f"{path}: not a readable Parquet file ({err})") from None
        if "text" not in schema.names:
            raise ConfigError(
                f"{path}: Parquet input needs a 'text' column (string); it has {schema.names}"
            )
        kind = schema.field("text").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ConfigError(f"{path}: Parquet column 'text' must be string, not {kind}")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _usable(value: str) -> bool:
    """False for strings with lone surrogates: they would fail when written or hashed."""
    return _SURROGATE.search(value) is None


def _iter_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every line that starts at or after ``start``, to the end.

    With ``start > 0`` the line containing byte ``start - 1`` is skipped: it starts earlier.
    """
    with _open_binary(path) as f:
        pos = 0
        if start > 0:
            f.seek(start - 1)
            pos = start - 1 + len(f.readline())
        for raw in f:
            yield pos, raw
            pos += len(raw)


def _where(path: Path, start: int, lineno: int, offset: int) -> str:
    """``path:line`` when reading from the start of the file, else ``path@byte offset``."""
    return f"{path}:{lineno}" if start == 0 else f"{path}@{offset}"


def _broken_file(path: Path, where: str, pos: int, err: BaseException) -> RawDoc:
    log.warning(
        "%s: input ends early or is corrupt (%s); the rest of the file is skipped", where, err
    )
    return RawDoc(None, None, where, "broken_file", pos)


def read_jsonl(path: Path, start: int = 0, end: int | None = None) -> Iterator[RawDoc]:
    """``{"text": str, "url": str (optional)}`` per line; blank lines are not records."""
    lineno, offset = 0, start
    try:
        for lineno, (offset, raw) in enumerate(_iter_lines(path, start), 1):
            if end is not None and offset >= end:
                return
            if not raw.strip():
                continue
            where = _where(path, start, lineno, offset)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield RawDoc(None, None, where, "undecodable", offset)
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # bad JSON, huge ints, very deep nesting
                yield RawDoc(None, None, where, "bad_record", offset)
                continue
            text = record.get("text") if isinstance(record, dict) else None
            url = record.get("url") if isinstance(record, dict) else None
            url = url if isinstance(url, str) else None
            if not isinstance(text, str):
                yield RawDoc(None, None, where, "bad_record", offset)
            elif not (_usable(text) and (url is None or _usable(url))):
                yield RawDoc(None, None, where, "undecodable", offset)
            else:
                yield RawDoc(text, url, where, pos=offset)
    except _STREAM_ERRORS as err:
        yield _broken_file(path, _where(path, start, lineno + 1, offset), offset + 1, err)


def _previous_line_blank(path: Path, offset: int, chunk: int = 4096) -> bool:
    """Whether the line ending just before ``offset`` (a line start) is blank or absent."""
    with open(path, "rb") as f:
        end = offset - 1  # the newline that ends the previous line
        while end > 0:
            begin = max(0, end - chunk)
            f.seek(begin)
            for byte in reversed(f.read(end - begin)):
                if byte == 0x0A:
                    return True
                if byte not in _WHITESPACE:
                    return False
            end = begin
    return True


def read_text(
    path: Path, mode: str = "block", start: int = 0, end: int | None = None
) -> Iterator[RawDoc]:
    """Blocks of non-blank lines (``mode="block"``) or the whole file (``mode="file"``)."""

    def decode(chunk: list[bytes], where: str, pos: int) -> RawDoc:
        try:
            return RawDoc(b"".join(chunk).decode("utf-8"), None, where, pos=pos)
        except UnicodeDecodeError:
            return RawDoc(None, None, where, "undecodable", pos)

    if mode == "file":
        try:
            with _open_binary(path) as f:
                data = f.read()
        except _STREAM_ERRORS as err:
            yield _broken_file(path, str(path), 1, err)
            return
        yield decode([data], str(path), 0)
        return
    block: list[bytes] = []
    block_where, block_pos = "", 0
    skipping = False  # inside a block that started before ``start`` (another range's)
    lineno, offset = 0, start
    try:
        for lineno, (offset, raw) in enumerate(_iter_lines(path, start), 1):
            if lineno == 1 and start > 0 and raw.strip():
                skipping = not _previous_line_blank(path, offset)
            if not raw.strip():
                skipping = False
                if block:
                    yield decode(block, block_where, block_pos)
                    block = []
            elif not skipping:
                if not block:
                    if end is not None and offset >= end:
                        return
                    block_where, block_pos = _where(path, start, lineno, offset), offset
                block.append(raw)
    except _STREAM_ERRORS as err:
        if block:
            yield decode(block, block_where, block_pos)
        yield _broken_file(path, _where(path, start, lineno + 1, offset), offset + 1, err)
        return
    if block:
        yield decode(block, block_where, block_pos)


_WARC_TEXT_TYPES = ("conversion", "resource", "response")


def read_warc(path: Path) -> Iterator[RawDoc]:
    """Text records of a WARC/WET file (C4 read WET ``conversion`` records).

    One ``broken_record`` per record that warcio cannot parse or that fails a check warcio only
    warns about or leaves to the caller: no Content-Length, fewer payload bytes than it says
    (truncated), not followed by the blank lines that end a record (wrong length), or a
    ``WARC-Block-Digest`` that does not match. Reading resumes at the next record start after
    that record's own start (``WARC/1.`` in plain files, a gzip member header in ``.gz``), so
    the good records after it are still read. Records that are not text (``request``,
    ``metadata``, HTML ``response``...) are not documents.
    """
    from warcio.archiveiterator import ArchiveIterator

    gz = path.name.lower().endswith(".gz")
    marker = b"\x1f\x8b\x08" if gz else b"WARC/1."
    with open(path, "rb") as f:
        pos = 0
        while pos >= 0:
            f.seek(pos)
            current = pos  # start of the record being read (offsets are absolute in the file)
            iterator = ArchiveIterator(f, check_digests=True)
            try:
                for record in iterator:
                    warnings = iterator.err_count
                    doc = _warc_doc(record)  # before get_record_offset, which skips the payload
                    current = iterator.get_record_offset()
                    if _warc_broken(record) or iterator.err_count > warnings:
                        yield RawDoc(None, None, f"{path}@{current}", "broken_record", current)
                        break
                    if doc is not None:
                        doc.where, doc.pos = f"{path}@{current}", current
                        yield doc
                    current = iterator.offset  # where the next record starts
                else:
                    return
            except Exception:  # warcio/zlib raise many types on corrupt input
                yield RawDoc(None, None, f"{path}@{current}", "broken_record", current)
            pos = _find(f, marker, current + 1)


def _warc_broken(record: Any) -> bool:
    """After the record was read to its end: whether its length or block digest is wrong."""
    if record.length is None or getattr(record.raw_stream, "limit", 0) > 0:
        return True  # no Content-Length, or the stream ended before it
    checker = getattr(record, "digest_checker", None)
    problems = checker.problems if checker is not None else []
    return any(p.startswith("block digest failed") for p in problems)


def _warc_doc(record: Any) -> RawDoc | None:
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
        return RawDoc(payload.decode("utf-8"), url, "")
    except UnicodeDecodeError:
        return RawDoc(None, url, "", "undecodable")


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
    """Rows of a Parquet file with a string ``text`` column (checked by ``validate_inputs``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(path)
        if "text" not in pf.schema_arrow.names:
            raise ConfigError(
                f"{path}: Parquet input needs a 'text' column, has {pf.schema_arrow.names}"
            )
        columns = ["text"] + (["url"] if "url" in pf.schema_arrow.names else [])
        for batch in pf.iter_batches(columns=columns):
            data = batch.to_pydict()
            urls = data.get("url", [None] * batch.num_rows)
            for text, url in zip(data["text"], urls, strict=True):
                where = f"{path}#row{row + 1}"
                url = url if isinstance(url, str) else None
                if isinstance(text, str):
                    yield RawDoc(text, url, where, pos=row)
                else:
                    yield RawDoc(None, None, where, "bad_record", row)
                row += 1
    except (OSError, pa.ArrowException) as err:
        yield _broken_file(path, f"{path}#row{row + 1}", row, err)


def read_documents(
    path: Path, text_mode: str = "block", start: int = 0, end: int | None = None
) -> Iterator[RawDoc]:
    """The records of one file; ``start``/``end`` (a byte range) only for ``splittable`` files."""
    if (start or end is not None) and not splittable(path, text_mode):
        raise ValueError(
            f"{path}: a byte range needs an uncompressed JSONL or block-mode text file"
        )
    kind = input_kind(path)
    if kind == "jsonl":
        return read_jsonl(path, start, end)
    if kind == "text":
        return read_text(path, text_mode, start, end)
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

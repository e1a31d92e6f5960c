"""Record counts cached on disk: a file is counted once, then read back while it is unchanged.

Mixing rates need the number of records of files that may hold millions of lines, so
``cached_count`` keeps counts in ``$TASKMIX_CACHE/record_counts.json`` (``~/.cache/taskmix``
by default), keyed by what was counted and the absolute path, and checked against the file's
size and modification time.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_COUNT_CACHE_NAME = "record_counts.json"


def cache_dir() -> Path:
    """Where taskmix caches small derived facts (``$TASKMIX_CACHE`` or ``~/.cache/taskmix``)."""
    root = os.environ.get("TASKMIX_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "taskmix"


def _read_count_table(path: Path) -> dict[str, Any]:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or corrupt: ignored, and rewritten by the next count
    return table if isinstance(table, dict) else {}


def _write_count_table(path: Path, table: dict[str, Any]) -> None:
    """Atomic write (temp file + os.replace): a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".record_counts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_count(path: Path, kind: str, count: Callable[[Path], int]) -> int:
    """``count(path)``, cached on disk under (kind, absolute path) and checked against size+mtime.

    ``kind`` separates counters that read the same file differently (lines vs CSV rows).
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{kind}:{path}"
    table_path = cache_dir() / _COUNT_CACHE_NAME
    entry = _read_count_table(table_path).get(key)
    if (
        isinstance(entry, dict)
        and entry.get("size") == stat.st_size
        and entry.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(entry.get("count"), int)
    ):
        return entry["count"]
    n = count(path)
    table = _read_count_table(table_path)  # re-read: keep entries other processes added
    table[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "count": n}
    with contextlib.suppress(OSError):  # a read-only cache only costs a recount next time
        _write_count_table(table_path, table)
    return n


# --------------------------------------------------------------------------- file sources

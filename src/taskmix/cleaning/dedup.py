"""Corpus-wide deduplication: exact lines (TFDS) or three-sentence spans (paper), and MinHash.

Design (one machine or many): while cleaning, each shard writes the 64-bit hashes of its lines
or sentence spans with the document's global position (``order``: input file, then record). A
global pass sorts all (hash, order, pos) triples and keeps the first occurrence of each hash in
input order; every other occurrence is written back, per shard, as a (order, pos) to drop. A
second pass over each shard removes those lines or sentences. The result does not depend on the
number of shards or workers. Memory of the global pass is ~20 bytes per line/span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from taskmix.cleaning.sentences import Spans


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def line_keys(lines: Sequence[str]) -> list[tuple[int, int]]:
    """(position, hash) of every line: lower-cased and stripped, as TFDS hashed them."""
    return [(i, hash64(line.strip().lower())) for i, line in enumerate(lines)]


def flat_sentences(lines: Sequence[str], sentences: Sequence[Spans]) -> list[str]:
    return [line[a:b] for line, spans in zip(lines, sentences, strict=True) for a, b in spans]


def span_keys(lines: Sequence[str], sentences: Sequence[Spans], n: int) -> list[tuple[int, int]]:
    """(index of first sentence, hash) of every window of ``n`` consecutive sentences.

    Windows run over the whole page (across lines); a page with fewer than ``n`` sentences has
    none. Sentences are compared lower-cased with whitespace collapsed.
    """
    flat = [_norm(s) for s in flat_sentences(lines, sentences)]
    return [(i, hash64("\n".join(flat[i : i + n]))) for i in range(len(flat) - n + 1)]


def find_drops(hashes: np.ndarray, orders: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries to drop: all but the first (by order, pos) of each hash."""
    if len(hashes) == 0:
        return np.zeros(0, dtype=bool)
    idx = np.lexsort((positions, orders, hashes))
    sorted_hashes = hashes[idx]
    repeat = np.empty(len(idx), dtype=bool)
    repeat[0] = False
    repeat[1:] = sorted_hashes[1:] == sorted_hashes[:-1]
    drop = np.zeros(len(idx), dtype=bool)
    drop[idx] = repeat
    return drop


def drop_lines(lines: list[str], drop_pos: set[int]) -> list[str]:
    return [line for i, line in enumerate(lines) if i not in drop_pos]


def drop_spans(
    lines: list[str], sentences: list[Spans], drop_windows: set[int], n: int
) -> tuple[list[str], list[Spans], int]:
    """Remove the sentences covered by the dropped windows; lines left empty disappear.

    Returns the new lines, their sentence spans and the number of sentences removed.
    """
    doomed = {w + k for w in drop_windows for k in range(n)}
    new_lines: list[str] = []
    new_sentences: list[Spans] = []
    index = 0
    for line, spans in zip(lines, sentences, strict=True):
        kept = []
        for a, b in spans:
            if index not in doomed:
                kept.append(line[a:b])
            index += 1
        if len(kept) == len(spans):
            new_lines.append(line)
            new_sentences.append(spans)
        elif kept:
            text = " ".join(kept)
            offsets, pos = [], 0
            for part in kept:
                offsets.append((pos, pos + len(part)))
                pos += len(part) + 1
            new_lines.append(text)
            new_sentences.append(offsets)
    return new_lines, new_sentences, len(doomed & set(range(index)))


# --- MinHash near-duplicates (datasketch) -------------------------------------------------------


def minhash_signature(text: str, num_perm: int, ngram: int) -> np.ndarray:
    """MinHash of the page's word ``ngram``-shingles (fixed seed, so any worker agrees)."""
    from datasketch import MinHash

    words = text.lower().split()
    shingles = {" ".join(words[i : i + ngram]) for i in range(max(1, len(words) - ngram + 1))}
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch([s.encode("utf-8") for s in shingles])
    return m.hashvalues.astype(np.uint64)


def find_near_duplicates(orders: np.ndarray, signatures: np.ndarray, threshold: float) -> set[int]:
    """Orders of pages whose estimated Jaccard similarity to an earlier kept page >= threshold."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    if len(orders) == 0:
        return set()
    num_perm = signatures.shape[1]
    scheme = MinHash(num_perm=num_perm, seed=1).scheme  # how minhash_signature made them
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[int, LeanMinHash] = {}
    dups: set[int] = set()
    for i in np.argsort(orders, kind="stable"):
        order = int(orders[i])
        m = LeanMinHash(seed=1, hashvalues=signatures[i], scheme=scheme)
        if any(m.jaccard(kept[int(c)]) >= threshold for c in lsh.query(m)):
            dups.add(order)
            continue
        lsh.insert(order, m)
        kept[order] = m
    return dups

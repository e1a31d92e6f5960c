"""The vocabulary interface every tokenizer in taskmix implements, and a byte-level fallback.

T5's id conventions hold for every vocabulary: pad 0, eos 1, unk 2, and ``num_extra_ids``
sentinels at the top of the id range with ``<extra_id_0>`` the largest id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


class Vocabulary(ABC):
    """Text <-> token ids. Subclasses implement the base vocabulary; sentinels are shared logic."""

    pad_id: int = PAD_ID
    eos_id: int = EOS_ID
    unk_id: int = UNK_ID

    def __init__(self, num_extra_ids: int = 100):
        self.num_extra_ids = num_extra_ids

    @property
    @abstractmethod
    def base_vocab_size(self) -> int:
        """Number of ids below the sentinels."""

    @abstractmethod
    def _encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def _decode(self, ids: Sequence[int]) -> str: ...

    @property
    def vocab_size(self) -> int:
        return self.base_vocab_size + self.num_extra_ids

    def sentinel_id(self, i: int) -> int:
        """Id of ``<extra_id_i>``; ``<extra_id_0>`` is the largest id."""
        if not 0 <= i < self.num_extra_ids:
            raise ValueError(f"sentinel {i} out of range [0, {self.num_extra_ids})")
        return self.vocab_size - 1 - i

    def is_sentinel(self, token_id: int) -> bool:
        return self.base_vocab_size <= token_id < self.vocab_size

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def encode_np(self, text: str) -> np.ndarray:
        return np.asarray(self._encode(text), dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        """Decode up to the first EOS; pad is dropped, sentinels become ``<extra_id_i>``."""
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        pieces: list[str] = []
        run: list[int] = []
        for i in ids:
            if i == self.pad_id or not 0 <= i < self.vocab_size:
                continue  # ids past the vocabulary: a model's padded embedding can emit them
            if self.is_sentinel(i):
                if run:
                    pieces.append(self._decode(run))
                    run = []
                pieces.append(f"<extra_id_{self.vocab_size - 1 - i}>")
            else:
                run.append(i)
        if run:
            pieces.append(self._decode(run))
        return "".join(pieces)


class ByteVocabulary(Vocabulary):
    """UTF-8 bytes as tokens (ByT5's layout: 3 special ids, then 256 bytes, then sentinels).

    Needs no training, so tests and tiny experiments can run before a tokenizer exists.
    """

    OFFSET = 3

    @property
    def base_vocab_size(self) -> int:
        return self.OFFSET + 256

    def _encode(self, text: str) -> list[int]:
        return [b + self.OFFSET for b in text.encode("utf-8")]

    def _decode(self, ids: Sequence[int]) -> str:
        data = bytes(i - self.OFFSET for i in ids if self.OFFSET <= i < self.base_vocab_size)
        return data.decode("utf-8", errors="ignore")


class LazyVocabulary(Vocabulary):
    """Builds the real vocabulary on first use, so registering tasks never trains or loads one."""

    def __init__(self, factory, num_extra_ids: int = 100):
        super().__init__(num_extra_ids)
        self._factory = factory
        self._vocab: Vocabulary | None = None

    @property
    def inner(self) -> Vocabulary:
        if self._vocab is None:
            self._vocab = self._factory()
            self.num_extra_ids = self._vocab.num_extra_ids
        return self._vocab

    @property
    def base_vocab_size(self) -> int:
        return self.inner.base_vocab_size

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

    def sentinel_id(self, i: int) -> int:
        return self.inner.sentinel_id(i)

    def is_sentinel(self, token_id: int) -> bool:
        return self.inner.is_sentinel(token_id)

    def _encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

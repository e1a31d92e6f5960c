"""SentencePiece and Hugging Face vocabularies with T5's id layout, and training a SentencePiece model.

T5's layout (as seqio's ``SentencePieceVocabulary`` and HF's ``T5Tokenizer``): pad 0, eos 1, unk 2,
no BOS, then the SentencePiece pieces, then ``num_extra_ids`` sentinels that are *not* in the
SentencePiece model, with ``<extra_id_0>`` the largest id. Literal ``<extra_id_N>`` strings in text
encode to the sentinel ids, as HF's tokenizer does, so both give the same ids for the same text.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from taskmix.data.vocabulary import EOS_ID, PAD_ID, UNK_ID, ByteVocabulary, Vocabulary
from taskmix.errors import TaskmixError

logger = logging.getLogger(__name__)

SENTINEL_PATTERN = re.compile(r"<extra_id_(\d+)>")
MODEL_TYPES = ("unigram", "bpe")
# Files that mark a folder as a Hugging Face tokenizer.
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
# sentencepiece rejects a sampling size in 1..100; 0 means "use every sentence".
MIN_SAMPLED_SENTENCES = 101
# Longer lines are skipped by sentencepiece; task inputs (whole documents) can be long.
MAX_SENTENCE_BYTES = 1 << 16


def _split_sentinels(text: str, num_extra_ids: int) -> Iterator[str | int]:
    """Text segments and sentinel indices, in order; ``<extra_id_N>`` with N out of range stays text."""
    pos = 0
    for match in SENTINEL_PATTERN.finditer(text):
        index = int(match.group(1))
        if index >= num_extra_ids:
            continue
        if match.start() > pos:
            yield text[pos : match.start()]
        yield index
        pos = match.end()
    if pos < len(text):
        yield text[pos:]


def _strip_eos_and_pad(vocab: Vocabulary, ids: Sequence[int]) -> list[int]:
    """The base class's decode rules: stop at the first EOS, drop padding and ids past the
    vocabulary (a model's embedding is padded to a multiple of 128, so it can emit them)."""
    ids = [int(i) for i in ids]
    if vocab.eos_id in ids:
        ids = ids[: ids.index(vocab.eos_id)]
    return [i for i in ids if i != vocab.pad_id and 0 <= i < vocab.vocab_size]


class SentencePieceVocabulary(Vocabulary):
    """A SentencePiece model plus ``num_extra_ids`` sentinel ids above its pieces (T5's layout)."""

    def __init__(self, model_path: str | Path, num_extra_ids: int = 100):
        super().__init__(num_extra_ids)
        self.model_path = Path(model_path)
        try:
            proto = self.model_path.read_bytes()
        except OSError as err:
            raise TaskmixError(
                f"cannot read sentencepiece model {self.model_path}: {err.strerror or err}"
            ) from None
        self._load(proto)

    def _load(self, proto: bytes) -> None:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as err:
            raise TaskmixError(
                f"{self.model_path} is not a valid sentencepiece model ({err})"
            ) from None
        actual = (processor.pad_id(), processor.eos_id(), processor.unk_id())
        if actual != (PAD_ID, EOS_ID, UNK_ID):
            raise TaskmixError(
                f"sentencepiece model {self.model_path} has pad/eos/unk ids {actual}; taskmix needs "
                f"T5's layout {(PAD_ID, EOS_ID, UNK_ID)} (train it with taskmix tokenizer train)"
            )
        self.model_proto = proto
        self.processor = processor

    # The SWIG processor cannot be pickled; ship the model bytes to DataLoader workers instead.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["processor"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load(state["model_proto"])

    @property
    def base_vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _split_sentinels(text, self.num_extra_ids):
            if isinstance(part, int):
                ids.append(self.sentinel_id(part))
            else:
                ids.extend(self.processor.encode(part, out_type=int))
        return ids

    def _decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([int(i) for i in ids])

    def decode(self, ids: Sequence[int]) -> str:
        """Like the base class, but decodes sentinels in place so the spaces around them survive
        (``"a<extra_id_0> b"``, as HF's T5 tokenizer decodes, not ``"a<extra_id_0>b"``)."""
        pieces = [self.id_to_piece(i) for i in _strip_eos_and_pad(self, ids)]
        return self.processor.decode_pieces(pieces)

    def id_to_piece(self, token_id: int) -> str:
        if self.is_sentinel(token_id):
            return f"<extra_id_{self.vocab_size - 1 - token_id}>"
        if not 0 <= token_id < self.base_vocab_size:
            raise ValueError(f"token id {token_id} out of range [0, {self.vocab_size})")
        return self.processor.id_to_piece(int(token_id))

    def __repr__(self) -> str:
        return (
            f"SentencePieceVocabulary({str(self.model_path)!r}, "
            f"pieces={self.base_vocab_size}, extra_ids={self.num_extra_ids})"
        )


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _SentenceStream:
    """One sentence per non-blank line of each text, counted; keeps the error that stopped it.

    sentencepiece turns an exception raised inside the iterator into a ``RuntimeError`` with a
    flattened message, so the original (e.g. a ``RecordError`` naming file and line) is kept here
    and re-raised by the caller.
    """

    def __init__(self, texts: Iterable[str]):
        self.texts = texts
        self.count = 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for index, text in enumerate(self.texts):
                if not isinstance(text, str):
                    raise TaskmixError(
                        f"training text #{index} is {type(text).__name__}, expected str"
                    )
                for line in text.splitlines():
                    if line.strip():
                        self.count += 1
                        yield line
        except BaseException as err:
            self.error = err
            raise


def train_sentencepiece(
    texts: Iterable[str],
    model_prefix: str | Path,
    vocab_size: int,
    *,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    seed: int = 0,
    max_sentences: int = 1_000_000,
    num_threads: int = 4,
) -> Path:
    """Train a SentencePiece model with T5's special ids; write ``<prefix>.model`` and ``.vocab``.

    ``texts`` is streamed (each line is a sentence); at most ``max_sentences`` of them, sampled
    reproducibly, are kept in memory (0 keeps all). ``vocab_size`` counts SentencePiece pieces
    (specials included); the full taskmix vocabulary adds the sentinels. It is a soft limit, so a
    tiny corpus yields a smaller model rather than an error: the real size is logged and is
    ``SentencePieceVocabulary(path).base_vocab_size``. The same texts and arguments give the same
    model bytes; ``num_threads`` is part of the arguments (it is recorded in the model), which
    is why the default is a fixed number and not the machine's core count.
    """
    if model_type not in MODEL_TYPES:
        raise TaskmixError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if vocab_size < 4:
        raise TaskmixError(
            f"vocab_size must be at least 4 (pad, eos, unk + 1 piece), got {vocab_size}"
        )
    if max_sentences != 0 and max_sentences < MIN_SAMPLED_SENTENCES:
        raise TaskmixError(
            f"max_sentences must be 0 (no limit) or at least {MIN_SAMPLED_SENTENCES} "
            f"(sentencepiece's minimum sample), got {max_sentences}"
        )
    if not 0 < character_coverage <= 1:
        raise TaskmixError(f"character_coverage must be in (0, 1], got {character_coverage}")
    if num_threads < 1:
        raise TaskmixError(f"num_threads must be at least 1, got {num_threads}")
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)

    sentences = _SentenceStream(texts)
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type=model_type,
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            bos_id=-1,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as err:
        if sentences.error is not None:
            raise sentences.error from None
        if sentences.count == 0:
            raise TaskmixError("no text to train the tokenizer on (all inputs empty)") from None
        raise TaskmixError(f"sentencepiece training failed: {err}") from None

    model_path = prefix.with_name(prefix.name + ".model")
    _write_atomic(model_path, model.getvalue())
    vocab = SentencePieceVocabulary(model_path)
    processor = vocab.processor
    listing = "".join(
        f"{processor.id_to_piece(i)}\t{processor.get_score(i)}\n"
        for i in range(vocab.base_vocab_size)
    )
    _write_atomic(prefix.with_name(prefix.name + ".vocab"), listing.encode("utf-8"))
    if vocab.base_vocab_size < vocab_size:
        logger.warning(
            "the corpus supports only %d sentencepiece pieces (asked for %d)",
            vocab.base_vocab_size,
            vocab_size,
        )
    return model_path


def _require_transformers():
    try:
        import transformers
    except ImportError:
        raise TaskmixError(
            "Hugging Face tokenizers need the transformers package: pip install 'taskmix[hf]'"
        ) from None
    return transformers


class HFTokenizerVocabulary(Vocabulary):
    """A Hugging Face tokenizer folder (a T5 tokenizer) behind taskmix's ``Vocabulary`` interface.

    It must use T5's layout: pad 0, eos 1, unk 2 and ``<extra_id_i>`` at id ``len - 1 - i``.
    """

    def __init__(self, path: str | Path, num_extra_ids: int | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise TaskmixError(f"Hugging Face tokenizer folder {self.path} does not exist")
        transformers = _require_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(self.path), local_files_only=True
            )
        except Exception as err:  # transformers raises many types for a bad folder
            raise TaskmixError(
                f"cannot load a Hugging Face tokenizer from {self.path}: {err}"
            ) from None
        self.tokenizer = tokenizer
        found = self._check_layout(num_extra_ids)
        super().__init__(found)
        self._size = len(tokenizer)

    def _check_layout(self, num_extra_ids: int | None) -> int:
        tok = self.tokenizer
        actual = (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id)
        if actual != (PAD_ID, EOS_ID, UNK_ID):
            raise TaskmixError(
                f"tokenizer {self.path} has pad/eos/unk ids {actual}; taskmix needs T5's layout "
                f"{(PAD_ID, EOS_ID, UNK_ID)}"
            )
        size = len(tok)
        sentinels = {
            int(m.group(1)): token_id
            for token, token_id in tok.get_vocab().items()
            if (m := SENTINEL_PATTERN.fullmatch(token))
        }
        count = len(sentinels)
        if num_extra_ids is not None and count != num_extra_ids:
            raise TaskmixError(
                f"tokenizer {self.path} has {count} <extra_id_N> sentinels, expected {num_extra_ids}"
            )
        for i in range(count):
            if sentinels.get(i) != size - 1 - i:
                raise TaskmixError(
                    f"tokenizer {self.path}: <extra_id_{i}> has id {sentinels.get(i)}, expected "
                    f"{size - 1 - i} (sentinels must be the top ids, <extra_id_0> the largest)"
                )
        return count

    @property
    def base_vocab_size(self) -> int:
        return self._size - self.num_extra_ids

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Stop at EOS, drop pad, let the HF tokenizer decode the rest (sentinels included)."""
        return self._decode(_strip_eos_and_pad(self, ids))

    def id_to_piece(self, token_id: int) -> str:
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} out of range [0, {self.vocab_size})")
        return self.tokenizer.convert_ids_to_tokens(int(token_id))

    def __repr__(self) -> str:
        return f"HFTokenizerVocabulary({str(self.path)!r}, size={self.vocab_size})"


def _model_proto(vocab: SentencePieceVocabulary):
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise TaskmixError(
            "exporting a Hugging Face tokenizer needs the protobuf package: pip install 'taskmix[hf]'"
        ) from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(vocab.model_proto)
    return proto


def _hf_t5_tokenizer(vocab: SentencePieceVocabulary):
    """A ``T5Tokenizer`` with the same pieces, scores and normalization as the SentencePiece model."""
    proto = _model_proto(vocab)
    where = f"sentencepiece model {vocab.model_path}"
    # transformers 5's T5Tokenizer is a Unigram model that splits on whitespace and adds "▁".
    if proto.trainer_spec.model_type != proto.trainer_spec.UNIGRAM:
        raise TaskmixError(
            f"{where} is not a unigram model; Hugging Face's T5Tokenizer only represents unigram "
            "models (train with --model-type unigram to export)"
        )
    spec = proto.normalizer_spec
    if not (spec.add_dummy_prefix and spec.remove_extra_whitespaces and spec.escape_whitespaces):
        raise TaskmixError(
            f"{where} uses whitespace options T5Tokenizer cannot reproduce (add_dummy_prefix, "
            "remove_extra_whitespaces and escape_whitespaces must be on)"
        )
    user_defined = [p.piece for p in proto.pieces if p.type == p.USER_DEFINED]
    if user_defined or proto.trainer_spec.byte_fallback:
        raise TaskmixError(
            f"{where} has user-defined symbols or byte fallback, which the export does not support"
        )
    transformers = _require_transformers()
    pieces = [(p.piece, p.score) for p in proto.pieces]
    sentinels = [(f"<extra_id_{i}>", 0.0) for i in reversed(range(vocab.num_extra_ids))]
    return transformers.T5Tokenizer(
        vocab=pieces + sentinels,
        _spm_precompiled_charsmap=spec.precompiled_charsmap or None,
        extra_ids=vocab.num_extra_ids,
        additional_special_tokens=[token for token, _ in sentinels],
    )


def export_hf_tokenizer(vocab: SentencePieceVocabulary, out_dir: str | Path) -> Path:
    """Save ``vocab`` as a Hugging Face ``T5Tokenizer`` folder (``tokenizer.json`` and config, plus
    ``spiece.model``) so ``AutoTokenizer.from_pretrained(out_dir)`` gives the same ids.

    ``out_dir`` may already hold a checkpoint: each file is replaced atomically, others are kept.
    """
    tokenizer = _hf_t5_tokenizer(vocab)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".tokenizer-"))
    try:
        tokenizer.save_pretrained(str(staging))
        (staging / "spiece.model").write_bytes(vocab.model_proto)
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def load_vocabulary(spec: str | Path, num_extra_ids: int = 100) -> Vocabulary:
    """``"byte"``, a SentencePiece ``.model`` file, or a Hugging Face tokenizer folder."""
    if str(spec) == "byte":
        return ByteVocabulary(num_extra_ids)
    path = Path(spec)
    if path.suffix == ".model" or path.is_file():
        return SentencePieceVocabulary(path, num_extra_ids)
    if path.is_dir():
        if any((path / name).is_file() for name in HF_TOKENIZER_FILES):
            return HFTokenizerVocabulary(path, num_extra_ids)
        raise TaskmixError(
            f"folder {path} holds no tokenizer (expected one of {', '.join(HF_TOKENIZER_FILES)})"
        )
    raise TaskmixError(
        f"unknown vocabulary {str(spec)!r}: expected 'byte', a sentencepiece .model file or a "
        "Hugging Face tokenizer folder"
    )

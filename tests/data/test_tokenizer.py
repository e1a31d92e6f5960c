import io
import pickle
import random

import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.tokenizer import (
    HFTokenizerVocabulary,
    SentencePieceVocabulary,
    export_hf_tokenizer,
    load_vocabulary,
    train_sentencepiece,
)
from taskmix.data.vocabulary import ByteVocabulary
from taskmix.errors import RecordError, TaskmixError

WORDS = [
    "the",
    "cat",
    "dog",
    "sat",
    "on",
    "a",
    "mat",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "river",
    "bank",
    "money",
    "table",
    "chair",
    "Zürich",
    "café",
    "naïve",
    "file",
    "report",
    "summary",
    "question",
    "answer",
]
# Strings whose ids must agree with Hugging Face's: sentinels, NFKC folding (ligature, full-width
# letters), collapsed whitespace, characters the model has never seen.
CHECK_STRINGS = [
    "the cat sat on the mat.",
    "  the   quick\tbrown fox  ",
    "Zürich café ﬁle ＡＢＣ",
    "xylophone ☃ unknown",
    "the <extra_id_0> sat on <extra_id_1>.",
    "a<extra_id_5>b",
    "<extra_id_99>",
    "<extra_id_0>the dog<extra_id_1> ",
    "",
]


def corpus(n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return train_sentencepiece(corpus(), tmp_path_factory.mktemp("sp") / "m", 120)


@pytest.fixture(scope="module")
def vocab(model_path):
    return SentencePieceVocabulary(model_path)


@pytest.fixture(scope="module")
def hf_dir(vocab, tmp_path_factory):
    pytest.importorskip("transformers")
    return export_hf_tokenizer(vocab, tmp_path_factory.mktemp("hf") / "tok")


@pytest.fixture(scope="module")
def hf_vocab(hf_dir):
    return HFTokenizerVocabulary(hf_dir)


# --- id layout ---------------------------------------------------------------------------------


def test_t5_id_layout(vocab):
    sp = vocab.processor
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert sp.bos_id() == -1
    assert vocab.vocab_size == sp.get_piece_size() + 100
    assert vocab.sentinel_id(0) == vocab.vocab_size - 1
    assert vocab.sentinel_id(99) == vocab.base_vocab_size
    assert vocab.encode("<extra_id_0>") == [vocab.vocab_size - 1]
    assert vocab.encode("<extra_id_99>") == [vocab.base_vocab_size]
    assert vocab.id_to_piece(vocab.sentinel_id(7)) == "<extra_id_7>"


def test_sentinels_in_text_and_out_of_range_marker(vocab):
    ids = vocab.encode("the <extra_id_0> sat <extra_id_1>")
    assert ids == [
        *vocab.encode("the"),
        vocab.sentinel_id(0),
        *vocab.encode("sat"),
        vocab.sentinel_id(1),
    ]
    assert vocab.encode_np("a <extra_id_3>").tolist()[-1] == vocab.sentinel_id(3)
    # only 100 sentinels exist: <extra_id_100> is ordinary text
    assert not any(vocab.is_sentinel(i) for i in vocab.encode("<extra_id_100>"))
    small = SentencePieceVocabulary(vocab.model_path, num_extra_ids=2)
    assert not any(small.is_sentinel(i) for i in small.encode("<extra_id_2>"))


def test_decode_round_trip_keeps_spaces_around_sentinels(vocab):
    text = "the dog<extra_id_0> sat on<extra_id_1> mat."
    assert vocab.decode(vocab.encode(text)) == text
    ids = vocab.encode("the cat") + [vocab.pad_id] + vocab.encode(" sat")
    assert vocab.decode(ids + [vocab.eos_id] + vocab.encode("dog")) == "the cat sat"


def test_pickle_round_trip(vocab):
    copy = pickle.loads(pickle.dumps(vocab))
    assert copy.encode("the <extra_id_2> river bank") == vocab.encode("the <extra_id_2> river bank")


# --- training ----------------------------------------------------------------------------------


def test_training_is_deterministic_and_streams(tmp_path):
    # a one-shot generator: training must not need to iterate twice
    first = train_sentencepiece((t for t in corpus(400)), tmp_path / "a", 80, max_sentences=150)
    second = train_sentencepiece((t for t in corpus(400)), tmp_path / "b", 80, max_sentences=150)
    assert first == tmp_path / "a.model"
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.vocab").read_bytes() == (tmp_path / "b.vocab").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.model",
        "a.vocab",
        "b.model",
        "b.vocab",
    ]


def test_vocab_size_is_a_soft_limit(tmp_path):
    path = train_sentencepiece(["the cat sat on the mat."] * 200, tmp_path / "m", 5000)
    vocab = SentencePieceVocabulary(path)
    assert 3 < vocab.base_vocab_size < 5000
    assert vocab.vocab_size == vocab.base_vocab_size + 100


def test_vocab_size_is_reached_on_a_rich_corpus(model_path):
    assert SentencePieceVocabulary(model_path).base_vocab_size > 30


def test_bpe_model(tmp_path):
    vocab = SentencePieceVocabulary(
        train_sentencepiece(corpus(), tmp_path / "b", 80, model_type="bpe")
    )
    assert vocab.decode(vocab.encode("the lazy fox")) == "the lazy fox"
    with pytest.raises(TaskmixError, match="unigram"):
        export_hf_tokenizer(vocab, tmp_path / "hf")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_type": "word"}, "model_type"),
        ({"max_sentences": 50}, "max_sentences"),
        ({"vocab_size": 2}, "vocab_size"),
        ({"character_coverage": 0}, "character_coverage"),
    ],
)
def test_bad_training_arguments(tmp_path, kwargs, message):
    args = {"vocab_size": 50, **kwargs}
    with pytest.raises(TaskmixError, match=message):
        train_sentencepiece(corpus(), tmp_path / "m", **args)


def test_bad_training_texts(tmp_path):
    with pytest.raises(TaskmixError, match="no text"):
        train_sentencepiece(["", "  \n "], tmp_path / "m", 50)
    with pytest.raises(TaskmixError, match="#1 is int"):
        train_sentencepiece(["ok", 3], tmp_path / "m", 50)

    def failing():
        yield from corpus(200)
        raise RecordError("bad line", where="corpus.txt:201")

    # the iterator's own error comes back intact, not sentencepiece's flattened RuntimeError
    with pytest.raises(RecordError) as info:
        train_sentencepiece(failing(), tmp_path / "m", 50)
    assert info.value.where == "corpus.txt:201"
    assert not (tmp_path / "m.model").exists()


# --- loading -----------------------------------------------------------------------------------


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(TaskmixError, match="missing.model"):
        SentencePieceVocabulary(tmp_path / "missing.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(TaskmixError, match="bad.model.*not a valid sentencepiece model"):
        SentencePieceVocabulary(bad)


def test_model_without_t5_layout_is_rejected(tmp_path):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(200)), model_writer=model, vocab_size=40, minloglevel=2
    )  # sentencepiece's defaults: unk 0, bos 1, eos 2
    path = tmp_path / "default.model"
    path.write_bytes(model.getvalue())
    with pytest.raises(TaskmixError, match=r"default.model has pad/eos/unk ids \(-1, 2, 0\)"):
        SentencePieceVocabulary(path)


def test_load_vocabulary_dispatch(model_path, hf_dir, tmp_path):
    assert isinstance(load_vocabulary("byte"), ByteVocabulary)
    assert isinstance(load_vocabulary(model_path), SentencePieceVocabulary)
    assert isinstance(load_vocabulary(str(hf_dir)), HFTokenizerVocabulary)
    with pytest.raises(TaskmixError, match="holds no tokenizer"):
        load_vocabulary(tmp_path)
    with pytest.raises(TaskmixError, match="unknown vocabulary 'bite'"):
        load_vocabulary("bite")
    with pytest.raises(TaskmixError, match="nope.model"):
        load_vocabulary(tmp_path / "nope.model")


# --- Hugging Face interop ----------------------------------------------------------------------


def test_exported_tokenizer_matches_ours(vocab, hf_dir, hf_vocab):
    from transformers import AutoTokenizer, T5Tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    assert isinstance(tokenizer, T5Tokenizer)
    assert len(tokenizer) == vocab.vocab_size
    for text in CHECK_STRINGS:
        ours = vocab.encode(text)
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == ours, text
        assert tokenizer(text)["input_ids"] == ours + [vocab.eos_id]  # T5 appends EOS
    assert (hf_vocab.vocab_size, hf_vocab.num_extra_ids) == (vocab.vocab_size, 100)
    text = "the dog<extra_id_0> sat on<extra_id_1> mat."
    assert hf_vocab.encode(text) == vocab.encode(text)
    assert hf_vocab.decode(vocab.encode(text) + [1, 5]) == vocab.decode(vocab.encode(text)) == text


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from([*WORDS, " ", "  ", "<extra_id_0>", "<extra_id_42>", "ß", "Ω", "ﬁ", "\t"]),
        max_size=12,
    )
)
def test_ids_equal_hugging_face_on_random_text(vocab, hf_vocab, parts):
    text = "".join(parts)
    assert hf_vocab.encode(text) == vocab.encode(text)


def test_export_into_checkpoint_folder_keeps_other_files(vocab, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "tokenizer.json").write_text("stale")
    export_hf_tokenizer(vocab, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.safetensors", "spiece.model", "tokenizer.json", "tokenizer_config.json"]
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "spiece.model").read_bytes() == vocab.model_proto
    assert HFTokenizerVocabulary(tmp_path).encode("the cat") == vocab.encode("the cat")


def test_hf_tokenizer_with_wrong_sentinel_layout_is_rejected(vocab, tmp_path):
    transformers = pytest.importorskip("transformers")
    pieces = [(vocab.processor.id_to_piece(i), vocab.processor.get_score(i)) for i in range(10)]
    upward = [(f"<extra_id_{i}>", 0.0) for i in range(100)]  # <extra_id_0> lowest: not T5's
    tokenizer = transformers.T5Tokenizer(
        vocab=pieces + upward, additional_special_tokens=[t for t, _ in upward]
    )
    tokenizer.save_pretrained(str(tmp_path))
    with pytest.raises(TaskmixError, match=r"<extra_id_0> has id 10, expected 109"):
        HFTokenizerVocabulary(tmp_path)
    with pytest.raises(TaskmixError, match="has 100 <extra_id_N> sentinels, expected 5"):
        HFTokenizerVocabulary(tmp_path, num_extra_ids=5)


def test_hf_folder_errors(tmp_path):
    with pytest.raises(TaskmixError, match="does not exist"):
        HFTokenizerVocabulary(tmp_path / "absent")
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(TaskmixError, match="cannot load a Hugging Face tokenizer"):
        HFTokenizerVocabulary(tmp_path)

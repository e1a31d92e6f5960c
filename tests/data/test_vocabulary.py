from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.vocabulary import ByteVocabulary, LazyVocabulary


def test_t5_id_layout():
    vocab = ByteVocabulary()
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    assert vocab.sentinel_id(0) == vocab.vocab_size - 1
    assert vocab.sentinel_id(99) == vocab.base_vocab_size
    assert all(vocab.is_sentinel(vocab.sentinel_id(i)) for i in range(100))
    assert not vocab.is_sentinel(vocab.base_vocab_size - 1)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_byte_vocabulary_round_trips(text):
    vocab = ByteVocabulary()
    assert vocab.decode(vocab.encode(text)) == text


def test_decode_stops_at_eos_and_shows_sentinels():
    vocab = ByteVocabulary()
    ids = (
        vocab.encode("a") + [vocab.sentinel_id(3), 0] + vocab.encode("b") + [1] + vocab.encode("c")
    )
    assert vocab.decode(ids) == "a<extra_id_3>b"


def test_lazy_vocabulary_builds_once_on_first_use():
    calls = []

    def factory():
        calls.append(1)
        return ByteVocabulary()

    lazy = LazyVocabulary(factory)
    assert calls == []
    assert lazy.encode("hi") == ByteVocabulary().encode("hi")
    assert lazy.vocab_size == ByteVocabulary().vocab_size
    assert calls == [1]

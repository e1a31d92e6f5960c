import json
import random

import pytest

from taskmix.cli.main import main
from taskmix.data.registry import TaskRegistry
from taskmix.data.task import Feature, Task, tokenize
from taskmix.data.tokenizer import SentencePieceVocabulary
from taskmix.data.vocabulary import ByteVocabulary
from tests.data.helpers import ListSource

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
]


def sentences(n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) + "." for _ in range(n)]


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(sentences()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def words_task():
    """A registered task whose inputs say 'zebrafish' and whose targets say 'quokka'."""
    records = [{"inputs": f"zebrafish swim {i}", "targets": "quokka"} for i in range(150)]
    task = Task(
        name="tokenizer_cli_words",
        source=ListSource({"train": records}),
        preprocessors=[tokenize],
        output_features={"inputs": Feature(ByteVocabulary()), "targets": Feature(ByteVocabulary())},
    )
    TaskRegistry.add(task, overwrite=True)
    yield task.name
    TaskRegistry.remove(task.name)


def test_train_from_files(corpus_file, tmp_path, capsys):
    out = tmp_path / "models" / "sp"
    assert main(["tokenizer", "train", "--input", str(corpus_file), "--vocab-size", "60",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    vocab = SentencePieceVocabulary(out.with_suffix(".model"))
    assert f"{vocab.base_vocab_size} pieces" in printed
    assert f"vocabulary size {vocab.vocab_size}" in printed
    assert str(out.with_suffix(".model")) in printed
    assert vocab.decode(vocab.encode("the lazy fox")) == "the lazy fox"


def test_train_from_tasks_uses_inputs_and_targets(corpus_file, words_task, tmp_path, capsys):
    out = tmp_path / "sp"
    code = main(["tokenizer", "train", "--input", str(corpus_file), "--tasks", words_task,
                 "--vocab-size", "80", "--out", str(out), "--model-type", "bpe"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    vocab = SentencePieceVocabulary(out.with_suffix(".model"))
    # frequent words from both fields became single pieces
    assert [vocab.id_to_piece(i) for i in vocab.encode("zebrafish quokka")] == [
        "▁zebrafish",
        "▁quokka",
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "no/such/file.txt"], "input file not found: no/such/file.txt"),
        (["--tasks", "no_such_task_xyz"], "unknown task 'no_such_task_xyz'"),
        ([], "give --input FILE... and/or --tasks NAME|FILE..."),
    ],
)
def test_train_errors(tmp_path, capsys, extra, message):
    code = main(["tokenizer", "train", *extra, "--vocab-size", "50", "--out", str(tmp_path / "m")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.model").exists()


def test_train_reports_bad_utf8_with_file_and_line(corpus_file, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nanother fine line\nbroken \xff byte\n")
    code = main(["tokenizer", "train", "--input", str(corpus_file), str(bad), "--vocab-size", "50",
                 "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 2
    assert f"{bad}:3: not UTF-8" in capsys.readouterr().err


def test_encode_shows_ids_and_pieces(corpus_file, tmp_path, capsys):
    out = tmp_path / "sp"
    main(
        ["tokenizer", "train", "--input", str(corpus_file), "--vocab-size", "60", "--out", str(out)]
    )
    capsys.readouterr()
    model = str(out.with_suffix(".model"))
    vocab = SentencePieceVocabulary(model)
    text = "the cat <extra_id_0> sat"

    assert main(["tokenizer", "encode", model, text, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ids"] == vocab.encode(text)
    assert shown["ids"][2] == vocab.vocab_size - 1
    assert shown["pieces"][:3] == ["▁the", "▁cat", "<extra_id_0>"]
    assert shown["decoded"] == "the cat<extra_id_0> sat"

    assert main(["tokenizer", "encode", model, text]) == 0
    table = capsys.readouterr().out
    assert f"{vocab.vocab_size - 1}\t<extra_id_0>" in table


def test_encode_with_byte_vocabulary(capsys):
    assert main(["tokenizer", "encode", "byte", "hé", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ids"] == [ord("h") + 3, 0xC3 + 3, 0xA9 + 3]
    assert shown["decoded"] == "hé"


def test_encode_unknown_model(capsys):
    assert main(["tokenizer", "encode", "nope.model", "x"]) == 2
    assert "nope.model" in capsys.readouterr().err

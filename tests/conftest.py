"""Shared test set-up: an isolated cache folder so tests never touch ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The default data is generated once per test session into this folder.
_CACHE = Path(
    os.environ.get("TASKMIX_TEST_CACHE", Path(__file__).resolve().parent.parent / ".cache" / "test")
)
os.environ.setdefault("TASKMIX_CACHE", str(_CACHE))


@pytest.fixture
def byte_vocab():
    from taskmix.data.vocabulary import ByteVocabulary

    return ByteVocabulary()


@pytest.fixture(scope="session")
def default_tasks():
    """The embedded default tasks and mixtures in the global registries (registered explicitly,
    as every command does; nothing registers them by itself)."""
    from taskmix.catalog import load_task_files

    load_task_files()

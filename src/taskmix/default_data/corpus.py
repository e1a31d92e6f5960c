"""The pre-training corpus: short documents about the world, each mixing several facts.

Every fact is stated in at least one training document (a first pass writes one profile per
entity), so closed-book questions are answerable from pre-training alone. Further documents
pick an entity, state a random subset of its facts with varied templates, and add facts about
related entities (a company's founder, a city's country), facts that point to the entity (the
company a person founded) and neutral filler sentences.
"""

from __future__ import annotations

import random

from taskmix.data.task import stable_seed
from taskmix.default_data.world import Fact, World, statement

TRAIN_DOCS = 3000
VALIDATION_DOCS = 200

FILLERS = (
    "Travellers often write about it.",
    "Many stories are told about it.",
    "Little else is recorded in the old books.",
    "Local guides mention this to every visitor.",
    "Schoolchildren learn this early.",
    "The archives hold many more details.",
    "This is well known in the region.",
    "Some of this has changed over the years.",
)
OPENERS = ("", "", "", "In brief: ", "A short note. ", "From the encyclopedia. ")


def _related(world: World, fact: Fact) -> list[str]:
    """Entities a fact links to (its value, when that value is itself an entity)."""
    try:
        world.kind_of(fact.value)
    except KeyError:
        return []
    return [fact.value]


def document(world: World, subject: str, rng: random.Random, *, complete: bool = False) -> str:
    """One document centred on ``subject``: all its facts if ``complete``, else a subset."""
    facts = world.facts_about(subject)
    if not complete:
        facts = rng.sample(facts, rng.randint(min(2, len(facts)), len(facts)))
    rng.shuffle(facts)
    sentences = [statement(f, rng) for f in facts]
    for fact in facts[:2]:
        for other in _related(world, fact):
            extra = world.facts_about(other)
            sentences.append(statement(rng.choice(extra), rng))
    pointing = world.facts_pointing_to(subject)
    for fact in rng.sample(pointing, min(len(pointing), rng.randint(1, 2))):
        sentences.append(statement(fact, rng))
    if rng.random() < 0.5:
        sentences.insert(rng.randint(1, len(sentences)), rng.choice(FILLERS))
    return rng.choice(OPENERS) + " ".join(sentences)


def build_corpus(world: World, seed: int) -> dict[str, list[str]]:
    """``{"train": [...], "validation": [...]}`` document texts, deterministic from ``seed``."""
    rng = random.Random(stable_seed("corpus", seed))
    subjects = [name for kind in world.entities for name in world.entities[kind]]
    train = [document(world, s, rng, complete=True) for s in subjects]
    while len(train) < TRAIN_DOCS:
        train.append(document(world, rng.choice(subjects), rng))
    rng.shuffle(train)
    validation = [document(world, rng.choice(subjects), rng) for _ in range(VALIDATION_DOCS)]
    return {"train": train, "validation": validation}

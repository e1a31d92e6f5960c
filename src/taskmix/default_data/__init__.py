"""The embedded default data: a generated world, a pre-training corpus and 26 supervised tasks.

Nothing is downloaded: ``ensure_data(seed)`` generates everything deterministically into
``data_dir(seed)`` the first time it is needed (a few seconds). ``register_default_tasks()``
(called explicitly, by ``taskmix.catalog.load_task_files`` for every command; never at import) registers

- every task of ``tasks.SPECS`` (24 in the 8 ExMix families, plus ``world_stsb`` and
  ``translate_en_zarnic``, which no default mixture contains: they are for out-of-mixture tests);
- ``world_corpus``, the corpus as a task (``{"text"}`` -> ``{"targets": text}``, tokenized);
- the mixtures ``default`` (all 24 in-mixture tasks) and ``family_<family>`` (one per family),
  examples-proportional with cap ``DEFAULT_CAP``.

See docs/default_data.md for every task, its sizes, metrics, chance level and an example.
"""

from __future__ import annotations

import warnings

from taskmix.data.mixtures import Mixture
from taskmix.data.registry import MixtureRegistry, Registry, TaskRegistry
from taskmix.data.sources import JsonlSource
from taskmix.data.task import Example, Feature, Task, map_examples, tokenize
from taskmix.default_data.generate import (
    VERSION,
    corpus_files,
    data_dir,
    ensure_data,
    load_manifest,
    task_files,
)
from taskmix.default_data.tasks import FAMILIES, SPECS
from taskmix.default_data.vocab import default_vocabulary
from taskmix.objectives import make_pretraining_task

__all__ = [
    "CORPUS_TASK",
    "PRETRAIN_MIXTURE",
    "SPAN_CORRUPTION_TASK",
    "DEFAULT_CAP",
    "FAMILIES",
    "SPECS",
    "VERSION",
    "data_dir",
    "default_tasks",
    "default_vocabulary",
    "ensure_data",
    "load_manifest",
    "register_default_tasks",
]

# Tasks above 2000 training examples (world_nli 5000, world_squad 3000) are capped, as T5 caps
# MNLI-sized sets with K = 2^19 and ExT5 caps at 3e5: large tasks cannot drown the small ones.
DEFAULT_CAP = 2000
CORPUS_TASK = "world_corpus"
# Span corruption on the corpus, sized for CPU runs (T5 uses 512), and the ExT5-style mixture of
# it with the supervised tasks: one span-corruption example per three supervised ones.
SPAN_CORRUPTION_TASK = "world_span_corruption"
SPAN_CORRUPTION_INPUT_LENGTH = 128
PRETRAIN_MIXTURE = "default_pretrain"


def _formatter(spec):
    def fn(record: Example) -> Example:
        return spec.format(record)

    fn.__name__ = fn.__qualname__ = f"format_{spec.name}"
    return fn


def _corpus_to_targets(record: Example) -> Example:
    """A corpus document becomes a targets-only example (objectives make the inputs later)."""
    out: Example = {"targets": record["text"]}
    if "_where" in record:
        out["_where"] = record["_where"]
    return out


def default_tasks(seed: int = 0) -> list[Task]:
    """The default tasks of ``seed`` (generating the data if needed), corpus task last."""
    root = ensure_data(seed)
    manifest = load_manifest(seed)
    vocab = default_vocabulary(seed)
    features = {"inputs": Feature(vocab), "targets": Feature(vocab)}
    tasks = []
    for spec in SPECS:
        entry = manifest["tasks"][spec.name]
        files = task_files(root, spec.name)
        tasks.append(
            Task(
                name=spec.name,
                source=JsonlSource({split: str(path) for split, path in files.items()}),
                preprocessors=[map_examples(_formatter(spec)), tokenize],
                output_features=features,
                family=spec.family,
                postprocessor=spec.postprocessor,
                metric_names=spec.metrics,
                description=spec.description,
                metadata={
                    "chance": dict(entry["chance"]),
                    "in_mixture": spec.in_mixture,
                    "labels": list(spec.labels) if spec.labels else None,
                    "positive_label": spec.positive_label,
                    "example": dict(entry["example"]),
                    "default_data_seed": seed,
                },
            )
        )
    tasks.append(
        Task(
            name=CORPUS_TASK,
            source=JsonlSource({s: str(p) for s, p in corpus_files(root).items()}),
            preprocessors=[map_examples(_corpus_to_targets), tokenize],
            output_features={"inputs": Feature(vocab, required=False), "targets": Feature(vocab)},
            family="pretraining",
            description="Documents about the world, for span corruption (no objective applied yet).",
            metadata={"chance": {}, "in_mixture": False, "default_data_seed": seed},
        )
    )
    return tasks


def span_corruption_task(seed: int = 0) -> Task:
    """T5's span corruption (density 0.15, mean span 3) over the world corpus."""
    files = corpus_files(ensure_data(seed))
    task = make_pretraining_task(
        SPAN_CORRUPTION_TASK,
        JsonlSource({s: str(p) for s, p in files.items()}),
        default_vocabulary(seed),
        "span_corruption",
        input_length=SPAN_CORRUPTION_INPUT_LENGTH,
    )
    task.family = "pretraining"
    task.description = "Span corruption (T5's objective) over the world corpus."
    task.metadata.update({"chance": {}, "in_mixture": False, "default_data_seed": seed})
    return task


def _add(registry: Registry, item) -> None:
    """Register ``item`` unless the user already registered that name (theirs wins, loudly)."""
    if item.name in registry:
        warnings.warn(
            f"{registry.kind} {item.name!r} is already registered; the default one is not added",
            stacklevel=3,
        )
        return
    registry.add(item)


def register_default_tasks(
    task_registry: Registry = TaskRegistry, mixture_registry: Registry = MixtureRegistry
) -> None:
    """Add the default tasks and mixtures to the registries (the global ones unless given).

    Called explicitly by whoever wants them (``taskmix.catalog`` for every command); calling it
    again for the same registries does nothing.
    """
    key = (id(task_registry), id(mixture_registry))
    if key in _REGISTERED:
        return
    for task in default_tasks(0):
        _add(task_registry, task)
    _add(task_registry, span_corruption_task(0))
    in_mixture = [s.name for s in SPECS if s.in_mixture]
    mixtures = [
        Mixture(
            "default",
            [task_registry.get(n) for n in in_mixture],
            strategy="proportional",
            cap=DEFAULT_CAP,
        )
    ]
    mixtures.append(
        Mixture(
            PRETRAIN_MIXTURE,
            [(task_registry.get(SPAN_CORRUPTION_TASK), 1.0), (mixtures[0], 3.0)],
            strategy="explicit",
        )
    )
    for family in FAMILIES:
        names = [s.name for s in SPECS if s.in_mixture and s.family == family]
        mixtures.append(
            Mixture(
                f"family_{family}",
                [task_registry.get(n) for n in names],
                strategy="proportional",
                cap=DEFAULT_CAP,
            )
        )
    for mixture in mixtures:
        _add(mixture_registry, mixture)
    _REGISTERED.add(key)


_REGISTERED: set[tuple[int, int]] = set()  # (task, mixture) registries that have the defaults

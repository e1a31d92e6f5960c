"""Generators of the tasks built directly on world facts (NLI, QA, parsing, topic, STS, MT).

Each ``build_<task>(world, rng, sizes)`` returns ``{split: [record, ...]}``. Passages are made of
true fact statements, so what a model reads in one task agrees with the corpus and every other
task; only NLI/BoolQ hypotheses and distractor options state false values, on purpose.
"""

from __future__ import annotations

import random

from taskmix.data.formatting import bin_regression
from taskmix.default_data.spec import Record, Splits, grouped_splits, lower_first, unique_splits
from taskmix.default_data.world import RELATIONS, Fact, World, question, statement


def _other_value(world: World, fact: Fact, rng: random.Random) -> str:
    pool = [v for v in world.values_of(fact.relation) if v != fact.value]
    return rng.choice(pool)


def _false(world: World, fact: Fact, rng: random.Random) -> Fact:
    return Fact(fact.subject, fact.relation, _other_value(world, fact, rng))


def _subject(world: World, rng: random.Random) -> str:
    kind = rng.choice(list(world.entities))
    return rng.choice(world.names(kind))


def _passage(world: World, subject: str, rng: random.Random, n: int, *, distractor: bool) -> tuple:
    """Statements of ``n`` facts about ``subject`` (+ one about another entity of its kind)."""
    facts = rng.sample(world.facts_about(subject), min(n, len(world.facts_about(subject))))
    sentences = [statement(f, rng) for f in facts]
    if distractor:
        kind = world.kind_of(subject)
        other = rng.choice([x for x in world.names(kind) if x != subject])
        sentences.insert(
            rng.randint(0, len(sentences)), statement(rng.choice(world.facts_about(other)), rng)
        )
    return facts, " ".join(sentences)


# --- closed-book QA -----------------------------------------------------------------------------


def _cbqa(kinds: tuple[str, ...]):
    """All questions about the facts of ``kinds``; one fact's questions stay in one split.

    ``subject`` is kept in the record (not in the model's input) so tests can check that the
    fact is stated in the corpus.
    """

    def build(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
        groups = []
        for fact in world.facts:
            if fact.kind in kinds:
                n = len(RELATIONS[fact.relation].questions)
                groups.append(
                    [
                        {
                            "question": question(fact, rng, i),
                            "answer": fact.value,
                            "subject": fact.subject,
                        }
                        for i in range(n)
                    ]
                )
        return grouped_splits(groups, sizes, rng)

    return build


build_cbqa_places = _cbqa(("country", "city"))
build_cbqa_people = _cbqa(("person", "company"))
build_cbqa_things = _cbqa(("animal", "product"))


# --- reading comprehension ---------------------------------------------------------------------


def build_world_squad(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        facts, context = _passage(
            world, _subject(world, rng), rng, rng.randint(2, 4), distractor=True
        )
        fact = rng.choice(facts)
        return {"question": question(fact, rng), "context": context, "answer": fact.value}

    return unique_splits(one, sizes, rng)


def build_world_boolq(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        facts, passage = _passage(
            world, _subject(world, rng), rng, rng.randint(2, 4), distractor=True
        )
        fact = rng.choice(facts)
        answer = rng.choice(("yes", "no"))
        asked = fact if answer == "yes" else _false(world, fact, rng)
        q = f"is it true that {lower_first(statement(asked, rng))}?"
        return {"question": q, "passage": passage, "answer": answer}

    return unique_splits(one, sizes, rng)


def build_world_race(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    letters = ("A", "B", "C", "D")

    def one(rng: random.Random) -> Record:
        facts, passage = _passage(
            world, _subject(world, rng), rng, rng.randint(3, 4), distractor=True
        )
        fact = rng.choice(facts)
        pool = [v for v in world.values_of(fact.relation) if v != fact.value]
        options = [fact.value, *rng.sample(pool, min(3, len(pool)))]
        while len(options) < 4:
            options.append("none of these")
        rng.shuffle(options)
        text = " ".join(f"({letter}) {o}" for letter, o in zip(letters, options, strict=True))
        return {
            "question": question(fact, rng),
            "options": text,
            "article": passage,
            "answer": letters[options.index(fact.value)],
        }

    return unique_splits(one, sizes, rng)


# --- NLI ---------------------------------------------------------------------------------------


def _hypothesis(
    world: World, facts: list[Fact], subject: str, label: str, rng: random.Random
) -> str:
    if label == "entailment":
        return statement(rng.choice(facts), rng)
    if label == "contradiction":
        return statement(_false(world, rng.choice(facts), rng), rng)
    unsaid = [
        f for f in world.facts_about(subject) if f.relation not in {g.relation for g in facts}
    ]
    if unsaid and rng.random() < 0.7:
        fact = rng.choice(unsaid)
        return statement(fact if rng.random() < 0.5 else _false(world, fact, rng), rng)
    other = rng.choice([x for x in world.names(world.kind_of(subject)) if x != subject])
    return statement(rng.choice(world.facts_about(other)), rng)


def build_world_nli(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        subject = _subject(world, rng)
        facts, premise = _passage(world, subject, rng, rng.randint(1, 3), distractor=False)
        label = rng.choice(("entailment", "neutral", "contradiction"))
        return {
            "premise": premise,
            "hypothesis": _hypothesis(world, facts, subject, label, rng),
            "label": label,
        }

    return unique_splits(one, sizes, rng)


def build_world_rte(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        subject = _subject(world, rng)
        facts, premise = _passage(world, subject, rng, rng.randint(2, 4), distractor=True)
        inner = rng.choice(("entailment", "entailment", "neutral", "contradiction"))
        label = "entailment" if inner == "entailment" else "not_entailment"
        return {
            "sentence1": premise,
            "sentence2": _hypothesis(world, facts, subject, inner, rng),
            "label": label,
        }

    return unique_splits(one, sizes, rng)


CB_FRAMES = {
    "entailment": ("{p} knew that {x}.", "{p} pointed out that {x}.", "{p} was certain that {x}."),
    "contradiction": ("{p} denied that {x}.", "{p} proved that it is false that {x}."),
    "neutral": ("{p} wondered whether {x}.", "{p} guessed that {x}.", "{p} hoped that {x}."),
}


def build_world_cb(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    people = world.names("person")

    def one(rng: random.Random) -> Record:
        fact = rng.choice(world.facts)
        label = rng.choice(tuple(CB_FRAMES))
        claim = lower_first(statement(fact, rng))
        premise = rng.choice(CB_FRAMES[label]).format(p=rng.choice(people), x=claim)
        return {"premise": premise, "hypothesis": statement(fact, rng), "label": label}

    return unique_splits(one, sizes, rng)


# --- classification ----------------------------------------------------------------------------


def build_topic(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        subject = _subject(world, rng)
        facts = rng.sample(world.facts_about(subject), rng.randint(1, 2))
        return {
            "sentence": " ".join(statement(f, rng) for f in facts),
            "label": world.kind_of(subject),
        }

    return unique_splits(one, sizes, rng)


def _corrupt(sentence: str, rng: random.Random) -> str:
    """An unacceptable variant: swapped words, a dropped word, a doubled word or bad agreement."""
    words = sentence.rstrip(".").split(" ")
    choice = rng.randrange(4)
    if choice == 0 and len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif choice == 1 and len(words) > 3:
        del words[rng.randrange(1, len(words) - 1)]
    elif choice == 2 and any(w in ("is", "was", "has") for w in words):
        i = next(i for i, w in enumerate(words) if w in ("is", "was", "has"))
        words[i] = {"is": "are", "was": "were", "has": "have"}[words[i]]
    else:
        i = rng.randrange(len(words))
        words.insert(i, words[i])
    out = " ".join(words) + "."
    return out if out != sentence else out.replace(" ", " the ", 1)


def build_acceptability(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        sentence = statement(rng.choice(world.facts), rng)
        if rng.random() < 0.5:
            return {"sentence": sentence, "label": "acceptable"}
        return {"sentence": _corrupt(sentence, rng), "label": "unacceptable"}

    return unique_splits(one, sizes, rng)


# --- semantic parsing --------------------------------------------------------------------------

CHAINS = (
    # (outer relation, inner relation, question template about the inner subject)
    ("country.capital", "city.country", "What is the capital of the country where {s} lies?"),
    ("country.language", "city.country", "What language do people speak in the country of {s}?"),
    ("company.founder", "product.maker", "Who founded the company that makes the {s}?"),
    ("company.hq", "product.maker", "Where is the maker of the {s} based?"),
    ("person.birth_city", "company.founder", "Where was the founder of {s} born?"),
    ("person.profession", "company.founder", "What was the profession of the founder of {s}?"),
)


def build_question_to_query(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def one(rng: random.Random) -> Record:
        if rng.random() < 0.3:
            outer, inner, template = rng.choice(CHAINS)
            kind = inner.split(".")[0]
            subject = rng.choice(world.names(kind))
            q = template.format(s=subject)
            query = f"({RELATIONS[outer].query} ({RELATIONS[inner].query} {subject}))"
            return {"question": q, "query": query}
        fact = rng.choice(world.facts)
        return {
            "question": question(fact, rng),
            "query": f"({RELATIONS[fact.relation].query} {fact.subject})",
        }

    return unique_splits(one, sizes, rng, key=lambda r: r["question"])


def build_text_to_sql(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    animals = {a: world.values_of(f"animal.{a}") for a in ("colour", "habitat", "diet", "size")}
    products = {a: world.values_of(f"product.{a}") for a in ("colour", "category", "price")}

    def one(rng: random.Random) -> Record:
        form = rng.randrange(3)
        if form == 0:
            size, habitat = rng.choice(animals["size"]), rng.choice(animals["habitat"])
            conds = [("size", size)] if rng.random() < 0.7 else []
            conds.append(("habitat", habitat))
            adj = f"{size} " if conds[0][0] == "size" else ""
            verb = rng.choice(
                ("How many {a}animals live in the {h}?", "Count the {a}animals of the {h}.")
            )
            q = verb.format(a=adj, h=habitat)
            select, table = "COUNT(*)", "animals"
        elif form == 1:
            maker = rng.choice(world.names("company"))
            colour = rng.choice(products["colour"])
            conds = [("maker", maker)] + ([("colour", colour)] if rng.random() < 0.5 else [])
            tail = f" that are {colour}" if len(conds) == 2 else ""
            q = rng.choice(
                ("List the products made by {m}{t}.", "Which products does {m} make{t}?")
            )
            q = q.format(m=maker, t=tail)
            select, table = "name", "products"
        else:
            city = rng.choice(world.names("city"))
            profession = rng.choice(world.values_of("person.profession"))
            conds = [("birth_city", city)] + (
                [("profession", profession)] if rng.random() < 0.5 else []
            )
            who = f"{profession}s" if len(conds) == 2 else "people"
            q = rng.choice(("Which {w} were born in {c}?", "Name the {w} born in {c}."))
            q = q.format(w=who, c=city)
            select, table = "name", "people"
        where = " AND ".join(f"{k} = '{v}'" for k, v in conds)
        return {"question": q, "sql": f"SELECT {select} FROM {table} WHERE {where}"}

    return unique_splits(one, sizes, rng, key=lambda r: r["question"])


# --- STS-B analogue (regression, out of the default mixture) -----------------------------------


def build_world_stsb(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """Pairs whose similarity follows from how they were made, plus a little noise, binned to 0.2."""

    by_kind: dict[str, list[Fact]] = {}
    for f in world.facts:
        by_kind.setdefault(f.kind, []).append(f)

    def one(rng: random.Random) -> Record:
        fact = rng.choice(world.facts)
        first = statement(fact, rng)
        kind = rng.randrange(5)
        if kind == 0:  # same fact, maybe another wording
            second, base = statement(fact, rng), 4.7
        elif kind == 1:  # same subject and relation, another value
            second, base = statement(_false(world, fact, rng), rng), 3.0
        elif kind == 2:  # same subject, another relation
            others = [f for f in world.facts_about(fact.subject) if f.relation != fact.relation]
            second, base = statement(rng.choice(others), rng), 2.0
        elif kind == 3:  # another subject of the same kind
            other = rng.choice([f for f in by_kind[fact.kind] if f.subject != fact.subject])
            second, base = statement(other, rng), 1.0
        else:  # unrelated
            kind = rng.choice([k for k in by_kind if k != fact.kind])
            other = rng.choice(by_kind[kind])
            second, base = statement(other, rng), 0.2
        score = min(5.0, max(0.0, base + rng.uniform(-0.3, 0.3)))
        return {"sentence1": first, "sentence2": second, "score": bin_regression(score)}

    return unique_splits(one, sizes, rng, key=lambda r: (r["sentence1"], r["sentence2"]))


# --- translation-like task (out of the default mixture) ----------------------------------------

ARTICLES = ("the", "a", "an")
VERBS = {
    "is",
    "was",
    "are",
    "lives",
    "makes",
    "speak",
    "founded",
    "produces",
    "comes",
    "works",
    "has",
    "lies",
}


def zarnic_lexicon(world: World, seed_rng: random.Random) -> dict[str, str]:
    """English word -> invented word, for every lower-case word the statements use."""
    words: set[str] = set()
    for relation in RELATIONS.values():
        for template in relation.statements:
            for w in template.replace(".", " ").replace(",", " ").split():
                if "{" not in w:
                    words.add(w.lower())
    for fact in world.facts:
        for w in fact.value.split():
            if w.islower():
                words.add(w)
    syll = ("ak", "ul", "esh", "om", "ir", "tav", "nek", "ru", "zi", "ob", "an", "yl")
    lexicon: dict[str, str] = {}
    used: set[str] = set()
    for w in sorted(words):
        while True:
            new = "".join(seed_rng.choice(syll) for _ in range(seed_rng.randint(1, 3)))
            if new not in used:
                used.add(new)
                lexicon[w] = new
                break
    return lexicon


def to_zarnic(sentence: str, lexicon: dict[str, str]) -> str:
    """Drop "the"/"a"/"an", map every lower-case word, move verbs to the end.

    Capitalised words are names and stay as they are ("Rindra Works" too), except a
    sentence-initial template word such as "The" or "Many".
    """
    words = sentence.rstrip(".").replace(",", "").split()
    if words and (words[0].lower() in lexicon or words[0].lower() in ARTICLES):
        words[0] = words[0].lower()
    kept = [w for w in words if w not in ARTICLES]
    verbs = [w for w in kept if w in VERBS]
    rest = [w for w in kept if w not in VERBS]
    return " ".join(lexicon.get(w, w) if w.islower() else w for w in rest + verbs) + "."


def build_translation(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    lexicon = zarnic_lexicon(world, random.Random(world.seed))

    def one(rng: random.Random) -> Record:
        sentence = statement(rng.choice(world.facts), rng)
        return {"english": sentence, "zarnic": to_zarnic(sentence, lexicon)}

    return unique_splits(one, sizes, rng, key=lambda r: r["english"])

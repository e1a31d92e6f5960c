"""A small invented world: entities, their attributes, and the facts that state them.

Everything is generated from a seed with invented names (built from syllables), so nothing is
copied from real data and every task can draw on the same facts. A ``Fact`` is a
(subject, relation, value) triple; ``RELATIONS`` holds, per relation, several sentence templates
and question templates. Every template writes the value verbatim, so a stated fact can serve as
a reading-comprehension span and a closed-book answer can be looked up in the corpus.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from taskmix.data.task import stable_seed

KINDS = ("country", "city", "person", "company", "animal", "product")

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "dra",
    "tis",
    "zu",
    "bel",
    "nor",
    "qua",
    "sel",
    "tor",
    "va",
    "gri",
    "mon",
    "fen",
    "lu",
    "sar",
    "vek",
    "pim",
    "dor",
    "ila",
    "yun",
    "bra",
    "cel",
    "od",
    "ru",
    "tam",
    "wex",
    "fi",
    "gal",
    "hon",
    "ost",
    "pel",
    "rin",
    "sto",
    "uv",
    "zel",
    "mar",
    "kin",
]

CONTINENTS_N = 4
COUNTRIES_N = 16
CITIES_PER_COUNTRY = 4
PEOPLE_N = 96
COMPANIES_N = 30
ANIMALS_N = 30
PRODUCTS_N = 60

POPULATION = ("small", "medium", "large")
INDUSTRIES = ("fishing", "weaving", "glassmaking", "mining", "farming", "shipbuilding", "printing")
PROFESSIONS = [
    "painter",
    "engineer",
    "farmer",
    "doctor",
    "sailor",
    "poet",
    "baker",
    "teacher",
    "scientist",
    "merchant",
    "architect",
    "musician",
]
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown", "orange", "purple")
HABITATS = ("forest", "desert", "river", "mountains", "sea", "grassland", "swamp")
DIETS = ("herbivore", "carnivore", "omnivore")
SIZES = ("tiny", "small", "large", "huge")
PRICES = ("cheap", "affordable", "expensive")
# product category (singular) -> what a company in that line "makes" (plural)
CATEGORIES = {
    "toy": "toys",
    "tool": "tools",
    "drink": "drinks",
    "bicycle": "bicycles",
    "instrument": "instruments",
    "lamp": "lamps",
}


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str  # "<kind>.<attribute>", a key of RELATIONS
    value: str

    @property
    def kind(self) -> str:
        return self.relation.split(".")[0]

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.relation}"


@dataclass(frozen=True)
class Relation:
    statements: tuple[str, ...]  # "{s}" subject, "{v}" value
    questions: tuple[str, ...]
    query: str  # the semantic-parsing operator, e.g. "capital_of"


def _r(statements: str, questions: str, query: str) -> Relation:
    return Relation(tuple(statements.split(" | ")), tuple(questions.split(" | ")), query)


RELATIONS: dict[str, Relation] = {
    "country.capital": _r(
        "The capital of {s} is {v}. | {v} is the capital city of {s}. | {s} is governed from its capital, {v}.",
        "What is the capital of {s}? | Which city is the capital of {s}?",
        "capital_of",
    ),
    "country.continent": _r(
        "{s} lies on the continent of {v}. | {s} is a country in {v}.",
        "On which continent is {s}? | Where is the country {s}?",
        "continent_of",
    ),
    "country.language": _r(
        "People in {s} speak {v}. | The main language of {s} is {v}.",
        "What language is spoken in {s}? | What do people in {s} speak?",
        "language_of",
    ),
    "country.currency": _r(
        "The currency of {s} is the {v}. | In {s} people pay with the {v}.",
        "What is the currency of {s}? | What do people in {s} pay with?",
        "currency_of",
    ),
    "city.country": _r(
        "{s} is a city in {v}. | The city of {s} lies in {v}.",
        "In which country is {s}? | Which country is the city of {s} in?",
        "country_of",
    ),
    "city.population": _r(
        "{s} is a {v} city. | The population of {s} is {v}.",
        "How big is the population of {s}? | Is {s} a small, medium or large city?",
        "population_of",
    ),
    "city.industry": _r(
        "{s} is known for {v}. | Many people in {s} work in {v}.",
        "What is {s} known for? | Which trade is {s} famous for?",
        "industry_of",
    ),
    "person.profession": _r(
        "{s} is a {v}. | {s} works as a {v}.",
        "What is the profession of {s}? | What does {s} do for a living?",
        "profession_of",
    ),
    "person.birth_city": _r(
        "{s} was born in {v}. | {s} comes from the city of {v}.",
        "Where was {s} born? | Which city does {s} come from?",
        "birthplace_of",
    ),
    "person.birth_year": _r(
        "{s} was born in the year {v}. | {s} came into the world in {v}.",
        "In which year was {s} born? | When was {s} born?",
        "birth_year_of",
    ),
    "company.founder": _r(
        "{s} was founded by {v}. | {v} founded {s}. | {v} started the company {s}.",
        "Who founded {s}? | Who started the company {s}?",
        "founder_of",
    ),
    "company.hq": _r(
        "{s} has its headquarters in {v}. | The company {s} is based in {v}.",
        "Where is {s} based? | In which city are the headquarters of {s}?",
        "headquarters_of",
    ),
    "company.industry": _r(
        "{s} makes {v}. | The company {s} produces {v}.",
        "What does {s} make? | What does the company {s} produce?",
        "products_of",
    ),
    "animal.colour": _r(
        "The {s} is {v}. | The {s} has a {v} coat.",
        "What colour is the {s}? | Which colour does the {s} have?",
        "colour_of",
    ),
    "animal.habitat": _r(
        "The {s} lives in the {v}. | The {s} is found in the {v}.",
        "Where does the {s} live? | In what kind of place is the {s} found?",
        "habitat_of",
    ),
    "animal.diet": _r(
        "The {s} is a {v}. | Biologists describe the {s} as a {v}.",
        "Is the {s} a herbivore, a carnivore or an omnivore? | What kind of eater is the {s}?",
        "diet_of",
    ),
    "animal.size": _r(
        "The {s} is a {v} animal. | Compared with other animals, the {s} is {v}.",
        "How big is the {s}? | Is the {s} a tiny, small, large or huge animal?",
        "size_of",
    ),
    "product.maker": _r(
        "The {s} is made by {v}. | {v} makes the {s}.",
        "Which company makes the {s}? | Who makes the {s}?",
        "maker_of",
    ),
    "product.colour": _r(
        "The {s} is {v}. | The {s} comes in {v}.",
        "What colour is the {s}? | In which colour does the {s} come?",
        "colour_of",
    ),
    "product.category": _r(
        "The {s} is a {v}. | The {s} is a kind of {v}.",
        "What kind of product is the {s}? | What is the {s}?",
        "category_of",
    ),
    "product.price": _r(
        "The {s} is {v}. | In most shops the {s} is {v}.",
        "Is the {s} cheap, affordable or expensive? | What is the price band of the {s}?",
        "price_of",
    ),
}


@dataclass
class World:
    """Entities by kind (name -> attributes) and every fact, in a fixed order."""

    seed: int
    entities: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
    language_name: str = ""
    continents: list[str] = field(default_factory=list)

    def kind_of(self, name: str) -> str:
        self._index()
        return self._kinds[name]

    def _index(self) -> None:
        if getattr(self, "_indexed", 0) == len(self.facts):
            return
        self._by_subject: dict[str, list[Fact]] = {}
        self._by_value: dict[str, list[Fact]] = {}
        values: dict[str, set[str]] = {}
        for f in self.facts:
            self._by_subject.setdefault(f.subject, []).append(f)
            self._by_value.setdefault(f.value, []).append(f)
            values.setdefault(f.relation, set()).add(f.value)
        self._values = {r: sorted(v) for r, v in values.items()}
        self._kinds = {name: kind for kind, table in self.entities.items() for name in table}
        self._indexed = len(self.facts)

    def facts_about(self, subject: str) -> list[Fact]:
        self._index()
        return list(self._by_subject.get(subject, []))

    def facts_pointing_to(self, value: str) -> list[Fact]:
        """Facts whose value is ``value`` (the company a person founded, a city's country...)."""
        self._index()
        return list(self._by_value.get(value, []))

    def values_of(self, relation: str) -> list[str]:
        """All distinct values a relation takes (the pool for distractors), sorted."""
        self._index()
        return list(self._values[relation])

    def names(self, kind: str) -> list[str]:
        return list(self.entities[kind])

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "language_name": self.language_name,
            "continents": self.continents,
            "entities": self.entities,
        }


class _NameMaker:
    """Unique invented words made of 2-3 syllables; no word is handed out twice."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            n = self.rng.randint(*syllables)
            word = "".join(self.rng.choice(SYLLABLES) for _ in range(n))
            if word not in self.used and 4 <= len(word) <= 10:
                self.used.add(word)
                return word

    def name(self) -> str:
        return self.word().capitalize()


def build_world(seed: int) -> World:
    """The world of one seed; the same seed always gives the same world."""
    rng = random.Random(stable_seed("world", seed))
    names = _NameMaker(rng)
    world = World(seed=seed)
    world.language_name = names.name() + "ic"
    world.continents = [names.name() + "ia" for _ in range(CONTINENTS_N)]
    ent: dict[str, dict[str, dict[str, str]]] = {k: {} for k in KINDS}

    for _ in range(COUNTRIES_N):
        country = names.name()
        cities = [names.name() for _ in range(CITIES_PER_COUNTRY)]
        ent["country"][country] = {
            "capital": cities[0],
            "continent": rng.choice(world.continents),
            "language": country + "ish",
            "currency": names.word((2, 2)),
        }
        for i, city in enumerate(cities):
            ent["city"][city] = {
                "country": country,
                "population": "large" if i == 0 else rng.choice(POPULATION),
                "industry": rng.choice(INDUSTRIES),
            }
    city_names = list(ent["city"])

    given = [names.name() for _ in range(PEOPLE_N // 2)]
    family = [names.name() for _ in range(PEOPLE_N // 2)]
    while len(ent["person"]) < PEOPLE_N:
        person = f"{rng.choice(given)} {rng.choice(family)}"
        if person in ent["person"]:
            continue
        ent["person"][person] = {
            "profession": rng.choice(PROFESSIONS),
            "birth_city": rng.choice(city_names),
            "birth_year": str(rng.randint(1820, 1990)),
        }
    people = list(ent["person"])
    founders = rng.sample(people, COMPANIES_N)

    categories = list(CATEGORIES)
    for i in range(COMPANIES_N):
        company = names.name() + rng.choice(("", " Works", " & Sons", " Company"))
        ent["company"][company] = {
            "founder": founders[i],
            "hq": rng.choice(city_names),
            "industry": CATEGORIES[categories[i % len(categories)]],
        }
    companies = list(ent["company"])

    for _ in range(ANIMALS_N):
        ent["animal"][names.word()] = {
            "colour": rng.choice(COLOURS),
            "habitat": rng.choice(HABITATS),
            "diet": rng.choice(DIETS),
            "size": rng.choice(SIZES),
        }
    for i in range(PRODUCTS_N):
        maker = companies[i % COMPANIES_N]
        category = categories[(i % COMPANIES_N) % len(categories)]
        ent["product"][names.name()] = {
            "maker": maker,
            "colour": rng.choice(COLOURS),
            "category": category,
            "price": rng.choice(PRICES),
        }

    world.entities = ent
    for kind in KINDS:
        for subject, attrs in ent[kind].items():
            for attr, value in attrs.items():
                world.facts.append(Fact(subject, f"{kind}.{attr}", value))
    return world


def statement(fact: Fact, rng: random.Random, index: int | None = None) -> str:
    """A sentence stating ``fact`` (template ``index``, or a random one)."""
    templates = RELATIONS[fact.relation].statements
    template = templates[index % len(templates)] if index is not None else rng.choice(templates)
    return articles(_cap(template.format(s=fact.subject, v=fact.value)))


def articles(text: str) -> str:
    """'a engineer' -> 'an engineer' (templates write "a {v}" for every value)."""
    return _A_VOWEL.sub(r"\1n ", text) if "a " in text or "A " in text else text


_A_VOWEL = re.compile(r"\b([Aa]) (?=[aeiou])")


def question(fact: Fact, rng: random.Random, index: int | None = None) -> str:
    templates = RELATIONS[fact.relation].questions
    template = templates[index % len(templates)] if index is not None else rng.choice(templates)
    return _cap(template.format(s=fact.subject, v=fact.value))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]

"""Generators of the tasks with their own small grammars: summaries, dialogues, reviews,
shopping commands and commonsense choices. They use world names so vocabulary is shared, but
their answers follow from the input (and a few general rules), not from world facts.
"""

from __future__ import annotations

import random

from taskmix.default_data.spec import Record, Splits, unique_splits
from taskmix.default_data.world import CATEGORIES, COLOURS, PRICES, World, articles, statement

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class _NewPeople:
    """Names built from world name parts that are not world people (new, unknown people)."""

    def __init__(self, world: World):
        people = world.names("person")
        self.known = set(people)
        self.firsts = sorted({p.split()[0] for p in people})
        self.lasts = sorted({p.split()[1] for p in people})

    def __call__(self, rng: random.Random) -> str:
        while True:
            name = f"{rng.choice(self.firsts)} {rng.choice(self.lasts)}"
            if name not in self.known:
                return name


# --- summarization ------------------------------------------------------------------------------


def build_profile_summary(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    new_person = _NewPeople(world)
    professions = world.values_of("person.profession")
    cities = world.names("city")

    def one(rng: random.Random) -> Record:
        name, job, city = new_person(rng), rng.choice(professions), rng.choice(cities)
        year = str(rng.randint(1820, 1990))
        sentences = [
            rng.choice(
                (f"{name} was born in {city} in {year}.", f"In {year}, {name} was born in {city}.")
            ),
            rng.choice(
                (
                    f"{name} worked as a {job} for many years.",
                    f"As a {job}, {name} became well known.",
                )
            ),
        ]
        for _ in range(rng.randint(1, 3)):
            sentences.append(statement(rng.choice(world.facts_about(city) + world.facts), rng))
        rng.shuffle(sentences)
        summary = f"{name} is a {job} born in {city} in {year}."
        return {"document": articles(" ".join(sentences)), "summary": articles(summary)}

    return unique_splits(one, sizes, rng, key=lambda r: r["document"])


def build_news_headline(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    companies, cities, products = (
        world.names("company"),
        world.names("city"),
        world.names("product"),
    )
    days = ("On Monday", "Last week", "Yesterday", "This spring", "Earlier today")

    def one(rng: random.Random) -> Record:
        company, city, when = rng.choice(companies), rng.choice(cities), rng.choice(days)
        event = rng.randrange(4)
        if event == 0:
            product = rng.choice(products)
            body = f"{when}, {company} showed the {product} to buyers at a fair in {city}."
            headline = f"{company} launches {product} in {city}"
        elif event == 1:
            body = f"{when}, {company} opened new offices in {city}, hiring dozens of workers."
            headline = f"{company} opens office in {city}"
        elif event == 2:
            other = rng.choice([c for c in companies if c != company])
            body = f"{when}, {company} agreed to buy its rival {other} after long talks in {city}."
            headline = f"{company} buys {other}"
        else:
            body = f"{when}, {company} closed its old factory in {city}, blaming high costs."
            headline = f"{company} closes factory in {city}"
        extra = [statement(rng.choice(world.facts_about(company)), rng)]
        if rng.random() < 0.5:
            extra.append(statement(rng.choice(world.facts_about(city)), rng))
        return {"article": " ".join([body, *extra]), "headline": headline}

    return unique_splits(one, sizes, rng, key=lambda r: r["article"])


def build_dialogue_summary(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    new_person = _NewPeople(world)
    cities = world.names("city")

    def one(rng: random.Random) -> Record:
        a, b = new_person(rng).split()[0], new_person(rng).split()[0]
        if a == b:
            b = "Sam"
        city, day = rng.choice(cities), rng.choice(DAYS)
        turns = [f"{a}: Shall we meet in {city} on {day}?"]
        if rng.random() < 0.5:
            day = rng.choice([d for d in DAYS if d != day])
            turns += [f"{b}: I cannot come then. What about {day}?", f"{a}: {day} works for me."]
        else:
            turns += [f"{b}: Yes, {day} is fine."]
        if rng.random() < 0.4:
            city = rng.choice([c for c in cities if c != city])
            turns += [f"{b}: Can we meet in {city} instead?", f"{a}: Sure, {city} then."]
        return {
            "dialogue": " ".join(turns),
            "summary": f"{a} and {b} will meet in {city} on {day}.",
        }

    return unique_splits(one, sizes, rng, key=lambda r: r["dialogue"])


# --- dialogue ----------------------------------------------------------------------------------


def build_dialog_state(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """Shopping dialogues; the target is the belief state after the last user turn."""
    categories = list(CATEGORIES)

    def one(rng: random.Random) -> Record:
        state: dict[str, str] = {}
        turns: list[str] = []
        for _ in range(rng.randint(1, 4)):
            slot = rng.choice(("category", "colour", "price", "drop"))
            if slot == "category":
                value = rng.choice(categories)
                turns.append(articles(f"user: I am looking for a {value}."))
            elif slot == "colour":
                value = rng.choice(COLOURS)
                said = "Actually, make it" if "colour" in state else "It should be"
                turns.append(f"user: {said} {value}.")
            elif slot == "price":
                value = rng.choice(PRICES)
                turns.append(f"user: Something {value}, please.")
            else:
                if "colour" not in state:
                    continue
                turns.append("user: The colour does not matter.")
                del state["colour"]
                turns.append("system: Noted.")
                continue
            state[slot] = value
            turns.append(rng.choice(("system: Sure.", "system: Anything else?", "system: Noted.")))
        if not turns:
            turns = ["user: Hello.", "system: Hi, how can I help?"]
        text = " ".join(turns[:-1]) if turns[-1].startswith("system") else " ".join(turns)
        order = ("category", "colour", "price")
        target = " ".join(f"{k}={state[k]}" for k in order if k in state) or "none"
        return {"dialogue": text, "state": target}

    return unique_splits(one, sizes, rng, key=lambda r: r["dialogue"])


DIALOG_ACTS = {
    "greet": ("Hello there!", "Good morning.", "Hi, nice to meet you."),
    "inform": (
        "I need a {c}.",
        "My budget is small.",
        "I live in {city}.",
        "I want something {col}.",
    ),
    "request": ("Where is {co} based?", "Can you tell me the price?", "Who makes the {p}?"),
    "confirm": ("Yes, exactly.", "That is right.", "Yes, the {p} is what I meant."),
    "deny": ("No, not that one.", "That is wrong.", "No, I never said {city}."),
    "thank": ("Thanks a lot!", "Thank you, that helps.", "Many thanks for the {p}."),
    "bye": ("Goodbye.", "See you later.", "Bye, and greetings to {city}."),
}
SYSTEM_TURNS = (
    "How can I help?",
    "Is this the {p} you wanted?",
    "Anything else?",
    "{co} makes it.",
)


def build_dialog_act(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    def fill(template: str, rng: random.Random) -> str:
        return template.format(
            c=rng.choice(list(CATEGORIES)),
            city=rng.choice(world.names("city")),
            col=rng.choice(COLOURS),
            co=rng.choice(world.names("company")),
            p=rng.choice(world.names("product")),
        )

    def one(rng: random.Random) -> Record:
        act = rng.choice(tuple(DIALOG_ACTS))
        return {
            "context": "system: " + fill(rng.choice(SYSTEM_TURNS), rng),
            "utterance": fill(rng.choice(DIALOG_ACTS[act]), rng),
            "act": act,
        }

    return unique_splits(one, sizes, rng)


def build_knowledge_reply(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    from taskmix.default_data.world import question

    def one(rng: random.Random) -> Record:
        facts = rng.sample(world.facts, 3)
        asked = facts[0]
        rng.shuffle(facts)
        knowledge = " ".join(statement(f, rng) for f in facts)
        opener = rng.choice(("", "Hi! ", "Quick question: "))
        reply = rng.choice(("", "Good question. ", "Sure. ")) + statement(asked, rng, 0)
        return {
            "knowledge": knowledge,
            "dialogue": f"user: {opener}{question(asked, rng)}",
            "response": reply,
        }

    return unique_splits(one, sizes, rng, key=lambda r: (r["knowledge"], r["dialogue"]))


# --- classification ----------------------------------------------------------------------------

GOOD = (
    "works perfectly",
    "is wonderful",
    "feels very solid",
    "was worth every coin",
    "makes me happy",
)
BAD = (
    "broke after a week",
    "is a waste of money",
    "feels cheap and flimsy",
    "was a disappointment",
    "stopped working",
)
MILD_GOOD = ("is not bad at all", "did not disappoint me", "has no real flaws")
MILD_BAD = ("is not great", "did not impress me", "is far from good")


def build_review_sentiment(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """Reviews whose label is set by the last clause (after "but") or by negated phrases."""

    def one(rng: random.Random) -> Record:
        product = rng.choice(world.names("product"))
        label = rng.choice(("positive", "negative"))
        good = rng.choice(GOOD + MILD_GOOD)
        bad = rng.choice(BAD + MILD_BAD)
        form = rng.randrange(3)
        if form == 0:
            text = f"The {product} {good if label == 'positive' else bad}."
        elif form == 1:  # contrast: the clause after "but" decides
            first, last = (bad, good) if label == "positive" else (good, bad)
            text = f"At first the {product} {first}, but in the end it {last}."
        else:
            colour = world.entities["product"][product]["colour"]
            verdict = (
                rng.choice(("I recommend it.", "Would buy again."))
                if label == "positive"
                else rng.choice(("I want a refund.", "Avoid it."))
            )
            text = f"I bought the {colour} {product}. {verdict}"
        return {"review": text, "label": label}

    return unique_splits(one, sizes, rng)


# --- semantic parsing --------------------------------------------------------------------------


def build_shop_command(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    companies = world.names("company")

    def one(rng: random.Random) -> Record:
        category = rng.choice(list(CATEGORIES))
        slots = {"category": category}
        colour = rng.choice(COLOURS) if rng.random() < 0.6 else None
        price = rng.choice(PRICES) if rng.random() < 0.5 else None
        maker = rng.choice(companies) if rng.random() < 0.4 else None
        if colour:
            slots["colour"] = colour
        if price:
            slots["price"] = price
        if maker:
            slots["maker"] = maker
        noun = CATEGORIES[category]
        adjs = " ".join(a for a in (price, colour) if a)
        by = f" made by {maker}" if maker else ""
        template = rng.choice(
            (
                "show me {a} {n}{b}",
                "find {a} {n}{b}",
                "I want to see {a} {n}{b}",
                "list all {a} {n}{b}",
            )
        )
        command = " ".join(template.format(a=adjs, n=noun, b=by).split())
        program = "filter " + " ".join(f"{k}={v}" for k, v in slots.items())
        return {"command": command, "program": program}

    return unique_splits(one, sizes, rng, key=lambda r: r["command"])


# --- commonsense -------------------------------------------------------------------------------

CAUSE_EFFECT = (
    ("{p} left the {thing} out in the rain.", "The {thing} got wet.", "The {thing} caught fire."),
    ("{p} skipped breakfast.", "{p} was hungry by noon.", "{p} was full all day."),
    ("The road in {city} was covered in ice.", "The cars drove slowly.", "The cars raced faster."),
    ("{p} dropped the glass lamp.", "The lamp shattered.", "The lamp grew brighter."),
    (
        "{p} practised the instrument every day.",
        "{p} played it well at the concert.",
        "{p} forgot how to play.",
    ),
    (
        "The shop in {city} lowered its prices.",
        "More customers came in.",
        "The shop lost all its customers.",
    ),
    ("{p} stayed up all night.", "{p} was tired the next day.", "{p} felt fully rested."),
    ("The river near {city} flooded.", "The fields were under water.", "The fields dried out."),
    ("{p} forgot to water the plants.", "The plants wilted.", "The plants grew taller."),
    ("{p} won a prize in {city}.", "{p} celebrated with friends.", "{p} felt ashamed."),
    ("The factory in {city} closed.", "Many workers lost their jobs.", "Many workers got a raise."),
    ("{p} lost the key to the house.", "{p} could not get in.", "{p} painted the door."),
)


def build_cause_effect(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """COPA-style: pick the more plausible cause or effect of a premise."""
    new_person = _NewPeople(world)

    def one(rng: random.Random) -> Record:
        cause, effect, wrong = rng.choice(CAUSE_EFFECT)
        slots = {
            "p": new_person(rng).split()[0],
            "city": rng.choice(world.names("city")),
            "thing": rng.choice(world.names("product")),
        }
        cause, effect, wrong = (x.format(**slots) for x in (cause, effect, wrong))
        if rng.random() < 0.5:
            premise, asked, right = cause, "effect", effect
        else:
            premise, asked, right = effect, "cause", cause
            wrong = rng.choice(CAUSE_EFFECT)[0].format(**slots)
            if wrong == right:
                wrong = f"{slots['p']} went to sleep early."
        choices = [right, wrong]
        rng.shuffle(choices)
        label = "choice1" if choices[0] == right else "choice2"
        return {
            "premise": premise,
            "question": asked,
            "choice1": choices[0],
            "choice2": choices[1],
            "label": label,
        }

    return unique_splits(one, sizes, rng)


BEHAVIOUR = {
    "diet": {
        "herbivore": "graze on leaves",
        "carnivore": "hunt smaller animals",
        "omnivore": "eat both berries and insects",
    },
    "habitat": {
        "forest": "hide among the trees",
        "desert": "go for days without water",
        "river": "swim in fresh water",
        "mountains": "climb steep rocks",
        "sea": "dive deep in salt water",
        "grassland": "run across open plains",
        "swamp": "wade through mud",
    },
    "size": {
        "tiny": "hide under a leaf",
        "small": "fit in a basket",
        "large": "carry a person",
        "huge": "push over a tree",
    },
}


def build_animal_sense(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """From a described animal, pick the behaviour that follows from one of its traits."""
    new_person = _NewPeople(world)
    from taskmix.default_data.world import DIETS, HABITATS, SIZES

    pools = {"diet": DIETS, "habitat": HABITATS, "size": SIZES}

    def one(rng: random.Random) -> Record:
        if rng.random() < 0.5:
            name = rng.choice(world.names("animal"))
            traits = {k: world.entities["animal"][name][k] for k in pools}
        else:
            name = new_person(rng).split()[1].lower()
            traits = {k: rng.choice(v) for k, v in pools.items()}
        aspect = rng.choice(tuple(pools))
        right = BEHAVIOUR[aspect][traits[aspect]]
        wrong = BEHAVIOUR[aspect][rng.choice([v for v in pools[aspect] if v != traits[aspect]])]
        options = [right, wrong]
        rng.shuffle(options)
        desc = f"The {name} is a {traits['size']} {traits['diet']} that lives in the {traits['habitat']}."
        return {
            "description": desc,
            "options": f"(A) {options[0]} (B) {options[1]}",
            "answer": "A" if options[0] == right else "B",
        }

    return unique_splits(one, sizes, rng)


GOALS = (
    ("To dry the wet {c} {t},", "hang it in the sun.", "put it in a bucket of water."),
    ("To keep the {c} {t} clean,", "wipe it with a soft cloth.", "rub it with mud."),
    ("To carry the heavy {t} home,", "use a cart with wheels.", "hold it with one finger."),
    ("To find the {c} {t} in a dark room,", "turn on a lamp.", "close your eyes."),
    ("To stop the {t} from rolling away,", "put a stone in front of it.", "push it down a hill."),
    ("To cool a hot drink quickly,", "add a little ice.", "put it on the stove."),
    ("To send the {t} to {city},", "pack it in a box and post it.", "leave it on the floor."),
    ("To paint the {t} {c},", "use {c} paint and a brush.", "soak it in milk."),
    ("To keep the {t} safe from thieves,", "lock it in a cupboard.", "leave it in the street."),
    ("To learn where {city} is,", "look at a map.", "count your fingers."),
)


def build_physical_goal(world: World, rng: random.Random, sizes: dict[str, int]) -> Splits:
    """PIQA-style: which of two solutions reaches the goal."""

    def one(rng: random.Random) -> Record:
        goal, right, wrong = rng.choice(GOALS)
        slots = {
            "c": rng.choice(COLOURS),
            "t": rng.choice(list(CATEGORIES)),
            "city": rng.choice(world.names("city")),
        }
        goal, right, wrong = (x.format(**slots) for x in (goal, right, wrong))
        options = [right, wrong]
        rng.shuffle(options)
        return {
            "goal": goal,
            "solution1": options[0],
            "solution2": options[1],
            "label": "1" if options[0] == right else "2",
        }

    return unique_splits(one, sizes, rng)

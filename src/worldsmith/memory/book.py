"""A generated long-context benchmark: a "book" whose later pages depend on facts stated early.

Part one introduces people (a made-up name each) with their attributes (town, work, pet) and
meetings between them (on a numbered day, in a town). The story that follows mentions the people
again and again with their attributes ("Alder Vosk, the potter from Trevholt, ..."), so the text
after a name is predictable only to a reader who remembers part one: at a given window size, a
memory that has learnt part one lowers the perplexity of the story. The book ends with recall
questions about the early facts, in the shape of LoCoMo's categories:

* ``single_hop``: one stated attribute ("Where did Alder Vosk live?");
* ``multi_hop``: an attribute of the person met on a given day ("What work did the person Alder
  Vosk met on day 12 do?");
* ``temporal``: when a meeting happened ("On which day did Alder Vosk meet Mira Tolle?").

Every question has a fixed set of candidate answers (all values of its kind), so a model is scored
by which candidate it finds most likely. Names are drawn per book, so no backbone can know them in
advance. Text is plain ASCII; its length is set in characters (``chars``), about one token per
character for a character tokenizer.

>>> book = generate_book(seed=0, chars=20_000)
>>> book.text[:60], book.questions[0].text
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

WORKS = ("baker", "potter", "smith", "weaver", "miller", "tailor", "carpenter", "fisher", "mason",
         "brewer", "cooper", "tanner", "farmer", "glazier", "chandler", "scribe", "herder", "roofer")
COLOURS = ("grey", "black", "white", "red", "brown", "golden", "spotted", "striped")
ANIMALS = ("owl", "cat", "goat", "dog", "heron", "hare", "crow", "pony", "ferret", "goose")
_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gr", "kl", "st", "tr", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io")
_CODAS = ("", "", "n", "r", "l", "s", "k", "th", "m")
_TOWN_ENDS = ("holt", "mere", "ford", "wick", "stead", "moor", "dale", "by")
FILLER = (
    "The rain came in from the hills and stayed until evening.",
    "A cart rolled past the well and nobody looked up.",
    "Smoke rose from the chimneys in the cold morning.",
    "The bells rang twice at noon, as they always did.",
    "Wind moved through the long grass by the road.",
    "The market was quiet and the stalls were half empty.",
)
QUESTION_KINDS = ("single_hop", "multi_hop", "temporal")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


@dataclass(frozen=True)
class Person:
    name: str
    town: str
    work: str
    pet: str


@dataclass(frozen=True)
class Meeting:
    day: int
    a: str
    b: str
    town: str


@dataclass(frozen=True)
class Question:
    """A question about an early fact, its answer and the candidates it is chosen among."""

    kind: str
    text: str
    answer: str
    choices: tuple[str, ...]

    def prompt(self) -> str:
        return f"Question: {self.text}\nAnswer:"


@dataclass
class Book:
    """The text, where part one (the facts) ends, and the recall questions."""

    seed: int
    text: str
    facts_end: int
    people: list[Person] = field(default_factory=list)
    meetings: list[Meeting] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"seed": self.seed, "chars": len(self.text), "facts_end": self.facts_end,
                "people": [asdict(p) for p in self.people], "meetings": [asdict(m) for m in self.meetings],
                "questions": [asdict(q) for q in self.questions]}

    def questions_text(self) -> str:
        return "".join(f"{q.prompt()} {q.answer}\n" for q in self.questions)


def _unique(rng: random.Random, make, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = make()
        if w not in out:
            out.append(w)
    return out


def generate_book(seed: int, chars: int = 300_000, people: int = 24, meetings: int = 16,
                  questions_per_kind: int = 8) -> Book:
    """A book of about ``chars`` characters (part one, then story up to the size); see the module doc."""
    if chars < 1000:
        raise ValueError(f"a book needs at least 1000 characters, got {chars}")
    rng = random.Random(f"memory-book:{seed}")
    towns = _unique(rng, lambda: (_word(rng, 1) + rng.choice(_TOWN_ENDS)).capitalize(), max(6, people // 3))
    names = _unique(rng, lambda: f"{_word(rng, 2).capitalize()} {_word(rng, 1).capitalize()}", people)
    pets = [f"{c} {a}" for c in COLOURS for a in ANIMALS]
    cast = [Person(n, rng.choice(towns), rng.choice(WORKS), rng.choice(pets)) for n in names]
    days = rng.sample(range(1, 100), meetings)
    met = [Meeting(d, *(p.name for p in rng.sample(cast, 2)), rng.choice(towns)) for d in sorted(days)]
    by_name = {p.name: p for p in cast}

    intro = ["Part one. The people of the valley.\n\n"]
    for p in cast:
        intro.append(f"{p.name} lived in {p.town}. {p.name} worked as a {p.work}. {p.name} kept a {p.pet}.\n")
    intro.append("\n")
    for m in met:
        intro.append(f"On day {m.day}, {m.a} met {m.b} in {m.town}.\n")
    intro.append("\nPart two. The story.\n\n")
    head = "".join(intro)

    def sentence() -> str:
        p = rng.choice(cast)
        kind = rng.random()
        if kind < 0.12:
            return rng.choice(FILLER)
        if kind < 0.24:
            m = rng.choice(met)
            return f"{m.a} remembered day {m.day}, when {m.a} met {m.b} in {m.town}."
        return rng.choice((
            f"{p.name}, the {p.work} from {p.town}, went out with the {p.pet}.",
            f"In {p.town}, {p.name} the {p.work} told a long story.",
            f"{p.name} fed the {p.pet} and walked back to {p.town}.",
            f"People in {p.town} knew {p.name} as a good {p.work}.",
            f"{p.name} the {p.work} kept a {p.pet} at home in {p.town}.",
        ))

    story: list[str] = []
    size = len(head)
    while size < chars:
        para = " ".join(sentence() for _ in range(rng.randint(3, 6))) + "\n\n"
        story.append(para)
        size += len(para)

    qs: list[Question] = []
    for p in rng.sample(cast, min(questions_per_kind, len(cast))):
        ask = rng.choice(("town", "work", "pet"))
        text = {"town": f"Where did {p.name} live?", "work": f"What work did {p.name} do?",
                "pet": f"What animal did {p.name} keep?"}[ask]
        choices = {"town": towns, "work": sorted({c.work for c in cast}), "pet": sorted({c.pet for c in cast})}[ask]
        qs.append(Question("single_hop", text, getattr(p, ask), tuple(choices)))
    for m in rng.sample(met, min(questions_per_kind, len(met))):
        other = by_name[m.b]
        qs.append(Question("multi_hop", f"Where did the person {m.a} met on day {m.day} live?", other.town,
                           tuple(towns)))
    for m in rng.sample(met, min(questions_per_kind, len(met))):
        qs.append(Question("temporal", f"On which day did {m.a} meet {m.b}?", f"day {m.day}",
                           tuple(f"day {x.day}" for x in met)))
    text = head + "".join(story) + "Part three. Questions.\n\n"
    return Book(seed=seed, text=text, facts_end=len(head), people=cast, meetings=met, questions=qs)

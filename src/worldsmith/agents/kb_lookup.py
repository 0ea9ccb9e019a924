"""Multi-hop look-up over a generated knowledge base: ``search`` for titles, ``open`` a page,
follow the chain of links the question names, ``answer`` the last page's fact.

A question such as "In which city was the mentor of the author of Silver Road born?" walks a
chain of pages (book -> author -> mentor -> city); every page holds one link of the chain among
distractor facts, and the base holds look-alike pages. Difficulty sets the number of hops (1 to
3) and the number of distractor pages (4 to 24). Exact progress counts the chain pages whose
title has been seen (half) or which have been opened (whole); the expert opens the next chain page
when its title is known and searches for it otherwise.
"""

from __future__ import annotations

import random

from worldsmith.agents.contract import Action, AgentEnvironment, ToolError
from worldsmith.envs.contract import lerp_int

SYLLABLES = ("ka", "lo", "mi", "ru", "ta", "ve", "no", "si", "da", "pe", "zu", "ri")
CITIES = ("Arvel", "Brisk", "Corran", "Dunmoor", "Elst", "Farrow", "Galt", "Hollin", "Istra", "Jorvik")
RELATIONS = ("author", "mentor", "rival")
MAX_HITS = 3


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(2)).capitalize() + " " + \
        "".join(rng.choice(SYLLABLES) for _ in range(2)).capitalize()


class KBLookup(AgentEnvironment):
    name = "agent_kb_lookup"
    description = "Answer a multi-hop question by searching and opening pages of a generated knowledge base."
    tools = {"search": "words of a title; lists matching titles", "open": "an exact title; shows the page"}
    answer_format = "the city"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        hops = lerp_int(difficulty, 1, 3)
        names: set[str] = set()
        while len(names) < hops + 1 + lerp_int(difficulty, 4, 24):
            names.add(_name(rng))
        names_list = sorted(names)
        rng.shuffle(names_list)
        book = "The " + rng.choice(("Silver", "Hollow", "Quiet", "Amber")) + " " + rng.choice(("Road", "Gate", "Tide"))
        chain = [book, *names_list[: hops]]
        relations = ["author", *[rng.choice(RELATIONS[1:]) for _ in range(hops - 1)]]
        city = rng.choice(CITIES)
        pages: dict[str, str] = {}
        for i, title in enumerate(chain):
            if i < hops:
                pages[title] = f"{title}. Its {relations[i]} is {chain[i + 1]}." if i == 0 else \
                    f"{title}, a scholar. Their {relations[i]} is {chain[i + 1]}. Born in {rng.choice(CITIES)}."
            else:
                pages[title] = f"{title}, a scholar. Born in {city}."
        for other in names_list[hops:]:
            pages[other] = f"{other}, a scholar. Their {rng.choice(RELATIONS[1:])} is {rng.choice(names_list)}. " \
                           f"Born in {rng.choice(CITIES)}."
        return {"chain": chain, "relations": relations, "city": city, "pages": pages}

    def render(self, instance: dict) -> str:
        rel = instance["relations"]
        path = " of the ".join(reversed(rel))
        return f"In which city was the {path} of {instance['chain'][0]} born?"

    def solve(self, instance: dict) -> str:
        return instance["city"]

    def turn_limit(self, instance: dict) -> int:
        return max(self.max_turns, 2 * len(instance["chain"]) + 4)

    def initial_state(self, instance: dict) -> dict:
        return {"seen": [instance["chain"][0]], "opened": []}

    def execute(self, instance: dict, state: dict, action: Action) -> tuple[dict, str]:
        pages = instance["pages"]
        arg = action.argument.strip()
        if action.name == "search":
            words = [w for w in arg.lower().split() if w]
            if not words:
                raise ToolError("search needs words")
            hits = sorted(t for t in pages if all(w in t.lower() for w in words))[:MAX_HITS]
            seen = sorted(set(state["seen"]) | set(hits))
            return {"seen": seen, "opened": list(state["opened"])}, "titles: " + ("; ".join(hits) or "none")
        if arg not in pages:
            raise ToolError(f"no page titled {arg[:40]!r}")
        text = pages[arg]
        seen = set(state["seen"]) | {arg} | {t for t in pages if t in text}
        opened = sorted(set(state["opened"]) | {arg})
        return {"seen": sorted(seen), "opened": opened}, text

    def expert(self, instance: dict, state: dict) -> str:
        for title in instance["chain"]:
            if title not in state["opened"]:
                return f"open({title})" if title in state["seen"] else f"search({title})"
        return f"answer({instance['city']})"

    def progress(self, instance: dict, state: dict) -> float:
        chain = instance["chain"]
        credit = 0.0
        for title in chain:  # in chain order: a page counts only after the ones before it
            if title in state["opened"]:
                credit += 1.0
            else:
                credit += 0.5 if title in state["seen"] else 0.0
                break
        return 0.9 * credit / len(chain) * 0.99

    def action_menu(self, instance: dict, state: dict) -> list[str]:
        """Every action worth considering in ``state`` (offline alternatives for CSO)."""
        menu = [f"open({t})" for t in state["seen"]] + [f"search({t.split()[-1]})" for t in state["seen"]]
        if set(instance["chain"]) <= set(state["opened"]):
            menu.append(f"answer({instance['city']})")
        return menu

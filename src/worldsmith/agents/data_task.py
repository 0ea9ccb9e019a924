"""A data task solved by code actions: answer a question about a CSV file by running Python
against it in the sandbox.

The instance holds ``sales.csv`` (region, product, amount); the question asks for the total of one
product in one region, or (harder) the region with the largest total of a product. ``head(file)``
shows the first lines; a ```` ```python``` ```` block runs in a fresh sandbox process (bubblewrap,
rlimits, wall clock; see ``worldsmith.sandbox``) whose working folder holds the task's files, and
its standard output is the observation. Nothing persists between code actions, so an episode's
state is a function of its actions and replaying them restores it. Difficulty grows the file (6 to
60 rows) and switches to the arg-max question above 0.5. Exact progress: 0.3 once the file was
looked at (``head`` or any code that ran), 0.6 once a code action printed the answer as its last line; the expert
looks, computes, answers.
"""

from __future__ import annotations

import json
import random

from worldsmith.agents.contract import Action, AgentEnvironment, ToolError
from worldsmith.envs.contract import lerp_int

REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("apples", "pears", "plums", "figs")
FILE = "sales.csv"
#: Limits of one code action. PROPOSED: a data task needs well under a second.
CODE_WALL_S = 5.0  # class attribute code_wall_s overrides it per environment
CODE_CPU_S = 5


def _totals(rows: list[list], product: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for region, prod, amount in rows:
        if prod == product:
            out[region] = out.get(region, 0) + amount
    return out


class DataTask(AgentEnvironment):
    name = "agent_data_task"
    description = "Answer a question about a CSV file by running Python on it in the sandbox."
    tools = {"head": "a file name; shows its first lines"}
    accepts_code = True
    answer_format = "the number or the region"
    #: sandbox isolation mode of code actions ("auto": bubblewrap, see worldsmith.sandbox)
    sandbox_mode = "auto"
    #: wall clock of one code action, seconds
    code_wall_s = CODE_WALL_S

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 6, 60)
        rows = [[rng.choice(REGIONS), rng.choice(PRODUCTS), rng.randint(1, 99)] for _ in range(n)]
        product = rng.choice([r[1] for r in rows])
        if difficulty > 0.5:
            totals = _totals(rows, product)
            best = max(totals.values())
            if list(totals.values()).count(best) > 1:  # a unique arg-max: bump the first leader
                leader = min(r for r, v in totals.items() if v == best)
                rows.append([leader, product, 1])
            return {"rows": rows, "kind": "argmax", "product": product}
        region = rng.choice([r[0] for r in rows if r[1] == product])
        return {"rows": rows, "kind": "total", "product": product, "region": region}

    def render(self, instance: dict) -> str:
        if instance["kind"] == "argmax":
            q = f"Which region has the largest total amount of {instance['product']}?"
        else:
            q = f"What is the total amount of {instance['product']} in the {instance['region']} region?"
        return f"File {FILE} has columns region,product,amount ({len(instance['rows'])} rows). {q}"

    def solve(self, instance: dict) -> str:
        totals = _totals(instance["rows"], instance["product"])
        if instance["kind"] == "argmax":
            return max(totals, key=lambda r: (totals[r], r))
        return str(totals[instance["region"]])

    def files(self, instance: dict) -> dict[str, str]:
        lines = ["region,product,amount", *(f"{r},{p},{a}" for r, p, a in instance["rows"])]
        return {FILE: "\n".join(lines) + "\n"}

    def initial_state(self, instance: dict) -> dict:
        return {"looked": False, "found": False}

    def execute(self, instance: dict, state: dict, action: Action) -> tuple[dict, str]:
        if action.kind == "code":
            observation = self.run_code(instance, action.argument)
            ran = not observation.startswith(("code error", "code timeout"))
        else:
            name = action.argument.strip().strip("'\"")
            files = self.files(instance)
            if name not in files:
                raise ToolError(f"no file {name[:40]!r}; files: {', '.join(files)}")
            observation, ran = "\n".join(files[name].splitlines()[:4]), True
        found = state["found"] or (action.kind == "code" and _states(observation, self.solve(instance)))
        return {"looked": state["looked"] or ran, "found": found}, observation

    def run_code(self, instance: dict, code: str) -> str:
        """Run ``code`` in a fresh sandbox whose working folder holds the task's files; its
        standard output, or ``code error: ...`` / ``code timeout ...``."""
        from worldsmith.sandbox.runner import Limits, run

        program = ("import os\n"
                   f"for _name, _text in {json.dumps(self.files(instance))}.items():\n"
                   "    open(_name, 'w').write(_text)\n"
                   f"exec(compile({json.dumps(code)}, '<action>', 'exec'), {{'__name__': '__main__'}})\n")
        result = run(program, {"op": "exec"}, Limits(wall_s=self.code_wall_s, cpu_s=CODE_CPU_S, memory_mb=256),
                     mode=self.sandbox_mode)
        if result.status == "timeout":
            return f"code timeout after {self.code_wall_s:g}s"
        if not result.ok:
            detail = result.value if result.value else result.reason
            return f"code error: {result.status} {str(detail)[:200]}".strip()
        return result.stdout.strip() or "(no output)"

    def expert(self, instance: dict, state: dict) -> str:
        if not state["looked"]:
            return f"head({FILE})"
        if not state["found"]:
            p = instance["product"]
            if instance["kind"] == "argmax":
                body = ("import csv\nt = {}\nfor r in csv.DictReader(open('sales.csv')):\n"
                        f"    if r['product'] == {p!r}:\n"
                        "        t[r['region']] = t.get(r['region'], 0) + int(r['amount'])\n"
                        "print(max(t, key=lambda k: (t[k], k)))")
            else:
                body = ("import csv\nprint(sum(int(r['amount']) for r in csv.DictReader(open('sales.csv'))"
                        f" if r['product'] == {p!r} and r['region'] == {instance['region']!r}))")
            return f"```python\n{body}\n```"
        return f"answer({self.solve(instance)})"

    def progress(self, instance: dict, state: dict) -> float:
        return 0.6 if state["found"] else 0.3 if state["looked"] else 0.0


def _states(observation: str, answer: str) -> bool:
    """Whether the last line of a code action's output is the answer."""
    lines = observation.strip().splitlines()
    return bool(lines) and lines[-1].strip().lower() == answer.lower()

    def action_menu(self, instance: dict, state: dict) -> list[str]:
        """Every action worth considering in ``state`` (offline alternatives for CSO)."""
        menu = [f"head({FILE})", "```python\nprint(open('sales.csv').read())\n```", self.expert(instance, state)]
        if state["found"]:
            menu.append(f"answer({self.solve(instance)})")
        return menu

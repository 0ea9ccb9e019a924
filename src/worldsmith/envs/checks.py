"""The contract battery: what every environment must satisfy, run by tests and `worldsmith envs check`.

Each check returns a ``CheckResult``; ``run_checks`` runs them all on one environment. The battery
is the same for built-in and user environments, so a new environment is checked the moment it is
registered.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from worldsmith.envs.answers import parse_int, split_items
from worldsmith.envs.contract import Environment, SplitExhausted, problem_split, split_seed

DIFFICULTIES = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def _seeds(n: int, split: str = "train") -> list[int]:
    return [split_seed(split, i) for i in range(n)]


def check_determinism(env: Environment, n: int) -> CheckResult:
    fresh = type(env)()
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            if env.sample(seed, d) != fresh.sample(seed, d):
                return CheckResult("determinism", False, f"seed {seed} difficulty {d} differs between calls")
    return CheckResult("determinism", True, f"{n * len(DIFFICULTIES)} (seed, difficulty) pairs repeat exactly")


def check_json(env: Environment, n: int) -> CheckResult:
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            data = env.generate(env.rng_for(seed), d)
            try:
                again = json.loads(json.dumps(data))
            except (TypeError, ValueError) as exc:
                return CheckResult("json", False, f"seed {seed}: instance is not JSON-serialisable ({exc})")
            if again != data:
                return CheckResult("json", False, f"seed {seed}: instance changes through JSON (tuples? int keys?)")
    return CheckResult("json", True, "instances survive a JSON round trip unchanged")


def check_reference_passes(env: Environment, n: int) -> CheckResult:
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            inst = env.sample(seed, d)
            score = env.grade(inst, env.wrap(inst.reference))
            if not score.passed:
                return CheckResult("reference", False, f"seed {seed} d={d}: reference fails ({score.reason})")
    return CheckResult("reference", True, "the wrapped reference always passes")


def perturbations(reference: str, rng: random.Random) -> dict[str, str]:
    """Near-miss answers derived from a reference; each names the kind of change.

    ``structural`` kinds change the answer's content (a value, the item count), so they fail for any
    oracle; ``reorder`` kinds keep the content and fail only under an equality oracle that cares about
    order.
    """
    out: dict[str, str] = {}
    value = parse_int(reference)
    if value is not None:
        out["structural:plus_one"] = str(value + 1)
        out["structural:minus_one"] = str(value - 1)
        out["structural:times_ten"] = str(value * 10)
        return out
    items = split_items(reference)
    if items is not None and len(items) > 1:
        sep = ", " if "," in reference else " "
        out["structural:drop_last"] = sep.join(items[:-1])
        out["structural:repeat_last"] = sep.join(items + items[-1:])
        if items[0] != items[1]:
            swapped = [items[1], items[0], *items[2:]]
            out["reorder:swap_first_two"] = sep.join(swapped)
        numbers = [parse_int(x) for x in items]
        if all(v is not None for v in numbers):
            k = rng.randrange(len(items))
            bumped = list(items)
            bumped[k] = str(numbers[k] + 1)  # type: ignore[operator]
            out["value:bump_one"] = sep.join(bumped)
        return out
    # a single token: change its last character, cut it, extend it
    last = reference[-1]
    replacement = "1" if last == "0" else "0" if last.isdigit() else ("b" if last != "b" else "c")
    out["value:last_char"] = reference[:-1] + replacement
    if len(reference) > 1:
        out["structural:drop_last_char"] = reference[:-1]
    out["structural:extra_char"] = reference + reference[-1]
    return out


def check_perturbations(env: Environment, n: int) -> CheckResult:
    """Equality oracles: every perturbation fails. Feasibility oracles, where a changed answer can be
    genuinely valid: structural changes always fail, and at most half of the value changes pass."""
    rng = random.Random(0)
    value_total = value_passed = 0
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            inst = env.sample(seed, d)
            for kind, answer in perturbations(inst.reference, rng).items():
                if answer == inst.reference:
                    continue
                passed = env.grade(inst, env.wrap(answer)).passed
                if env.oracle == "equality" and passed:
                    return CheckResult("perturbations", False, f"seed {seed} d={d}: {kind} {answer!r} passes")
                if kind.startswith("structural") and passed:
                    return CheckResult("perturbations", False, f"seed {seed} d={d}: {kind} {answer!r} passes")
                if kind.startswith("value"):
                    value_total += 1
                    value_passed += passed
    if value_total and value_passed / value_total > 0.5:
        return CheckResult("perturbations", False, f"{value_passed}/{value_total} value changes pass")
    extra = f"; value changes passing {value_passed}/{value_total}" if env.oracle == "feasibility" else ""
    return CheckResult("perturbations", True, f"near-miss answers fail{extra}")


def malformed_answers(reference: str) -> dict[str, str]:
    """Responses that must score 0 for any environment (safety rows 14, 15, 17)."""
    return {
        "empty response": "",
        "whitespace": "   \n\t ",
        "empty answer tag": "<answer></answer>",
        "blank answer tag": "<answer>   </answer>",
        "format only": "<answer>answer</answer>",
        "no anchor": f"I worked it out and the result is {reference}.",
        "unclosed tag": f"<answer>{reference}",
        "buried in junk": f"<answer>I think it is {reference}, probably</answer>",
        "trailing junk": f"<answer>{reference} because</answer>",
        "repeated": f"<answer>{reference}{reference}</answer>",
        "either-or": f"<answer>{reference} or 7</answer>",
        "spray": "<answer>" + " ".join(str(i) for i in range(1, 101)) + "</answer>",
        "boxed spray": f"<answer>\\boxed{{{reference}}}\\boxed{{7}}</answer>",
        "code injection": "<answer>__import__('os').system('true')</answer>",
        "boolean injection": "<answer>4) or (True</answer>",
        "oversized": "<answer>" + "9" * 100_000 + "</answer>",
    }


def check_malformed(env: Environment, n: int) -> CheckResult:
    for seed in _seeds(n):
        inst = env.sample(seed, 0.5)
        for kind, response in malformed_answers(inst.reference).items():
            score = env.grade(inst, response)
            if score.value != 0.0:
                return CheckResult("malformed", False, f"seed {seed}: {kind} scores {score.value}")
    return CheckResult("malformed", True, f"{len(malformed_answers('x'))} malformed forms score 0")


def reference_leaks(prompt: str, reference: str) -> bool:
    """Whether the prompt states the reference as a delimited token (short answers excepted)."""
    if len(reference) < 4:
        return False
    start = prompt.find(reference)
    while start != -1:
        before = prompt[start - 1] if start else " "
        end = start + len(reference)
        after = prompt[end] if end < len(prompt) else " "
        if not (before.isalnum() or after.isalnum()):
            return True
        start = prompt.find(reference, start + 1)
    return False


def check_no_leak(env: Environment, n: int) -> CheckResult:
    """A reference of 4+ characters may appear in the prompt by coincidence in at most 5% of
    instances; more than that means the prompt gives the answer away."""
    leaks = total = 0
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            inst = env.sample(seed, d)
            total += 1
            leaks += reference_leaks(inst.prompt, inst.reference)
    ok = leaks <= 0.05 * total
    return CheckResult("no_leak", ok, f"reference appears in {leaks}/{total} prompts")


def check_difficulty_scales(env: Environment, n: int) -> CheckResult:
    """Difficulty changes the instance, and the hardest instances are larger than the easiest."""
    changed = 0
    size = {0.0: 0, 1.0: 0}
    for seed in _seeds(n):
        easy, hard = env.sample(seed, 0.0), env.sample(seed, 1.0)
        changed += easy.data != hard.data
        size[0.0] += len(json.dumps(easy.data))
        size[1.0] += len(json.dumps(hard.data))
    if changed < 0.9 * n:
        return CheckResult("difficulty", False, f"difficulty 0 and 1 give the same instance for {n - changed}/{n} seeds")
    if size[1.0] <= size[0.0]:
        return CheckResult("difficulty", False, "instances at difficulty 1 are not larger than at 0")
    ratio = size[1.0] / max(size[0.0], 1)
    return CheckResult("difficulty", True, f"difficulty 1 instances are {ratio:.1f}x the size of difficulty 0")


def distinct_fraction(env: Environment, n: int, difficulty: float) -> float:
    seen = {json.dumps(env.sample(seed, difficulty).data, sort_keys=True) for seed in _seeds(n)}
    return len(seen) / n


def check_distinct(env: Environment, n: int) -> CheckResult:
    """At difficulty 0.5, at least 90% of instances across seeds are distinct."""
    n = max(n, 200)
    mid, easy = distinct_fraction(env, n, 0.5), distinct_fraction(env, n, 0.0)
    ok = mid >= 0.9
    return CheckResult("distinct", ok, f"distinct instances over {n} seeds: {mid:.0%} at d=0.5, {easy:.0%} at d=0")


def problem_ids(env: Environment, split: str, n: int, difficulty: float) -> list[str]:
    """The problem identities of the first ``n`` seeds of ``split`` at ``difficulty``."""
    return [env.sample(seed, difficulty).problem_id for seed in _seeds(n, split)]


def distinct_problems(env: Environment, n: int, difficulty: float, split: str = "eval") -> int:
    """How many distinct problems ``n`` draws of ``split`` at ``difficulty`` hold: about ``n`` on a
    large problem space, far fewer on a small one (a difficulty whose eval split holds a few dozen
    problems measures little)."""
    return len(set(problem_ids(env, split, n, difficulty)))


def check_splits(env: Environment, n: int) -> CheckResult:
    """Train and eval seeds draw disjoint problems: at each difficulty, ``max(n, 200)`` draws of
    each split share no problem identity and every problem belongs to its seed's split. The detail
    gives the distinct eval problems per difficulty and names the small problem spaces (fewer
    distinct eval problems than half the draws)."""
    n = max(n, 200)
    counts = []
    for d in DIFFICULTIES:
        try:
            train, evals = problem_ids(env, "train", n, d), problem_ids(env, "eval", n, d)
        except SplitExhausted as exc:
            return CheckResult("splits", False, str(exc))
        shared = set(train) & set(evals)
        if shared:
            return CheckResult("splits", False, f"d={d:g}: {len(shared)} problems drawn by both train and eval seeds")
        strays = sum(problem_split(p) != "train" for p in train) + sum(problem_split(p) != "eval" for p in evals)
        if strays:
            return CheckResult("splits", False, f"d={d:g}: {strays} problems drawn by a seed of the other split")
        distinct = len(set(evals))
        counts.append(f"d={d:g} {distinct}" + (" (small problem space)" if distinct < n / 2 else ""))
    return CheckResult("splits", True, f"{n} train and {n} eval draws share no problem; "
                                       f"distinct eval problems: {', '.join(counts)}")


def check_steps(env: Environment, n: int) -> CheckResult:
    if not env.has_steps():
        return CheckResult("steps", True, "no step checker (optional)")
    for seed in _seeds(n):
        for d in DIFFICULTIES:
            inst = env.sample(seed, d)
            steps = env.steps(inst.data) or []
            if not steps:
                return CheckResult("steps", False, f"seed {seed}: steps() returned nothing")
            for k, step in enumerate(steps):
                if not env.check_step(inst.data, steps[:k], step):
                    return CheckResult("steps", False, f"seed {seed}: reference step {k} {step!r} rejected")
                for wrong in (step + "0", "", "?"):
                    if wrong != step and env.check_step(inst.data, steps[:k], wrong):
                        return CheckResult("steps", False, f"seed {seed}: wrong step {wrong!r} accepted at {k}")
    return CheckResult("steps", True, "reference steps accepted in order, corrupted steps rejected")


CHECKS: tuple[Callable[[Environment, int], CheckResult], ...] = (
    check_determinism,
    check_json,
    check_reference_passes,
    check_perturbations,
    check_malformed,
    check_no_leak,
    check_difficulty_scales,
    check_distinct,
    check_splits,
    check_steps,
)


def run_checks(env: Environment, n: int = 30) -> list[CheckResult]:
    """Run the whole battery on ``env`` over ``n`` seeds per difficulty. Never raises for a broken
    environment: an exception inside a check is that check's failure."""
    results = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            results.append(check(env, n))
        except Exception as exc:
            results.append(CheckResult(name, False, f"raised {type(exc).__name__}: {str(exc)[:200]}"))
    return results

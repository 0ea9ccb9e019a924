"""Admission gates L1-L5 (worldsmith.synth.gates) and `worldsmith validate`.

Two correct programs (an equality and a feasibility oracle) are admitted; each broken program is
rejected at the gate that owns its failure, with a recognisable reason (safety.md rows 10-12, 20,
21). Every candidate runs in the sandbox; small seed counts keep the file fast.
"""

import json
import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from worldsmith.envs.contract import split_seed
from worldsmith.synth.gates import GATE_NAMES, GateConfig, lint, validate
from worldsmith.synth.sandboxed_env import SandboxedEnvironment

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")

FAST = GateConfig(seeds=4, probe_seeds=1, probe_difficulties=(0.5,), wall_s=5.0, cpu_s=5)

EQUALITY = '''
from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of


class ListSum(Environment):
    name = "list_sum"
    description = "Sum a list of integers."
    answer_format = "the sum as an integer"

    def generate(self, rng, difficulty):
        n = lerp_int(difficulty, 3, 9)
        return {"values": [rng.randint(-50, 99) for _ in range(n)]}

    def solve(self, instance):
        return str(sum(instance["values"]))

    def render(self, instance):
        return prompt_of("Add up: " + " + ".join(map(str, instance["values"])), self.answer_format)

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == sum(instance["values"]) else 0.0
'''

FEASIBILITY = '''
from worldsmith.envs.answers import parse_int_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of


class PlantedSubset(Environment):
    name = "planted_subset"
    description = "Pick distinct indices whose values sum to a target."
    oracle = "feasibility"
    answer_format = "the chosen 0-based indices, comma-separated"

    def generate(self, rng, difficulty):
        n = lerp_int(difficulty, 5, 12)
        values = [rng.randint(1, 60) for _ in range(n)]
        chosen = sorted(rng.sample(range(n), max(2, n // 3)))
        return {"values": values, "target": sum(values[i] for i in chosen), "planted": chosen}

    def solve(self, instance):
        return ", ".join(map(str, instance["planted"]))

    def render(self, instance):
        body = f"Values: {instance['values']}. Choose indices summing to {instance['target']}."
        return prompt_of(body, self.answer_format)

    def score(self, instance, answer):
        idx = parse_int_list(answer)
        if not idx or len(set(idx)) != len(idx):
            return 0.0
        if any(i < 0 or i >= len(instance["values"]) for i in idx):
            return 0.0
        return 1.0 if sum(instance["values"][i] for i in idx) == instance["target"] else 0.0
'''


def mutate(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


def rejected_at(code: str, gate: str, *words: str, config: GateConfig = FAST):
    verdict = validate(code, config)
    assert not verdict.admitted
    assert verdict.failed_gate == gate, [(g.name, g.reason) for g in verdict.gates]
    reason = next(g.reason for g in verdict.gates if g.name == gate)
    for word in words:
        assert word in reason, reason
    later = verdict.gates[GATE_NAMES.index(gate) + 1:]
    assert all(g.skipped and not g.passed for g in later)
    return verdict


EQ_SCORE = "        value = parse_int(answer)\n        return 1.0 if value is not None and value == sum(instance[\"values\"]) else 0.0"
EQ_GENERATE = '        return {"values": [rng.randint(-50, 99) for _ in range(n)]}'

BROKEN = {
    "syntax error": ("class ListSum(Environment:\n    pass\n", "L1_parse", ("syntax error",)),
    "no Environment subclass": ("class ListSum:\n    name = 'x'\n", "L1_parse", ("exactly one",)),
    "imports socket": ("import socket\n" + EQUALITY, "L1_parse", ("forbidden import 'socket'",)),
    "missing routine": (mutate(EQUALITY, "    def solve(", "    def solved("), "L1_parse", ("solve",)),
    "generator raises": (mutate(EQUALITY, EQ_GENERATE, "        raise RuntimeError('boom')"),
                         "L2_execution", ("RuntimeError", "boom")),
    "non-JSON instance": (mutate(EQUALITY, EQ_GENERATE, '        return {"values": {1, 2, n}}'),
                          "L2_execution", ("invalid_result",)),
    "huge instance": (mutate(EQUALITY, EQ_GENERATE, '        return {"values": list(range(20000)), "n": n}'),
                      "L2_execution", ("bytes of JSON",)),
    "enormous instance": (mutate(EQUALITY, EQ_GENERATE, '        return {"values": [n], "pad": "x" * 5_000_000}'),
                          "L2_execution", ("too large",)),
    "infinite loop": (mutate(EQUALITY, EQ_GENERATE, "        while True:\n            pass"),
                      "L2_execution", ("timeout",)),
    "global random": (mutate(EQUALITY, EQ_GENERATE,
                             '        import random\n        return {"values": [random.randint(0, 10**9)] * n}'),
                      "L3_determinism", ("differs",)),
    "time-based": (mutate(EQUALITY, EQ_GENERATE,
                          '        import time\n        return {"values": [time.perf_counter_ns() % 997] * n}'),
                   "L3_determinism", ("differs",)),
    "constant across seeds": (mutate(EQUALITY, EQ_GENERATE, '        return {"values": list(range(n))}'),
                              "L4_non_triviality", ("distinct",)),
    "difficulty ignored": (mutate(EQUALITY, "lerp_int(difficulty, 3, 9)", "5"),
                           "L4_non_triviality", ("difficulty ignored",)),
    # the instances differ, the answer never does: answering "7" would win every time
    "constant reference": (mutate(mutate(EQUALITY, 'return str(sum(instance["values"]))', 'return "7"'),
                                  EQ_SCORE, "        return 1.0 if parse_int(answer) == 7 else 0.0"),
                           "L4_non_triviality", ("1/4 distinct references",)),
    # "7" and "07" are one value: references are compared as values, not as strings
    "one value, two spellings": (
        mutate(mutate(EQUALITY, 'return str(sum(instance["values"]))', 'return "07" if instance["values"][0] % 2 else "7"'),
               EQ_SCORE, "        return 1.0 if answer.strip() in ('7', '07') else 0.0"),
        "L4_non_triviality", ("1/4 distinct references",)),
    "accepts everything": (mutate(EQUALITY, EQ_SCORE, "        return 1.0"),
                           "L5_scorer", ("scorer accepts",)),
    "accepts empty": (mutate(EQUALITY, EQ_SCORE, "        if not answer.strip():\n            return 1.0\n" + EQ_SCORE),
                      "L5_scorer", ("empty",)),
    "accepts a spray": (mutate(EQUALITY, EQ_SCORE, "        return 1.0 if str(sum(instance['values'])) in answer else 0.0"),
                        "L5_scorer", ("malformed",)),
    "tolerance abuse": (mutate(EQUALITY, EQ_SCORE,
                               "        try:\n            return 1.0 if abs(float(answer) - sum(instance['values'])) < 1 else 0.0\n"
                               "        except ValueError:\n            return 0.0"),
                        "L5_scorer", ("tolerance",)),
    "returns True": (mutate(EQUALITY, EQ_SCORE, "        return parse_int(answer) == sum(instance['values'])"),
                     "L5_scorer", ("bool",)),
    "returns '1'": (mutate(EQUALITY, EQ_SCORE, "        return '1'"), "L5_scorer", ("str",)),
    "returns NaN": (mutate(EQUALITY, EQ_SCORE, "        return float('nan')"), "L5_scorer", ("JSON compliant",)),
    "returns 2": (mutate(EQUALITY, EQ_SCORE, "        return 2.0"), "L5_scorer", ("[0, 1]",)),
    "answer leaked": (mutate(mutate(EQUALITY, "rng.randint(-50, 99)", "rng.randint(1000, 3000)"),
                             '" + ".join(map(str, instance["values"]))',
                             '" + ".join(map(str, instance["values"])) + f" (it is {sum(instance[\'values\'])})"'),
                      "L5_scorer", ("leaked",)),
    "sys.exit in score": (mutate(EQUALITY, EQ_SCORE, "        import sys\n        sys.exit(0)"),
                          "L5_scorer", ("no_result",)),
    "wrong reference": (mutate(EQUALITY, 'return str(sum(instance["values"]))', 'return str(sum(instance["values"]) + 1)'),
                        "L5_scorer", ("reference scores 0",)),
}


@pytest.mark.parametrize("source", [EQUALITY, FEASIBILITY], ids=["equality", "feasibility"])
def test_correct_programs_are_admitted(source):
    verdict = validate(source, FAST)
    assert verdict.admitted, [(g.name, g.reason) for g in verdict.gates]
    assert [g.name for g in verdict.gates] == list(GATE_NAMES)
    assert all(g.passed and not g.skipped and g.seconds >= 0 for g in verdict.gates)
    assert verdict.isolation in ("bwrap", "fallback")


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_programs_are_rejected_at_their_gate(kind):
    code, gate, words = BROKEN[kind]
    config = GateConfig(**{**FAST.model_dump(), "wall_s": 1.5, "cpu_s": 2}) if kind == "infinite loop" else FAST
    rejected_at(code, gate, *words, config=config)


def test_feasibility_scorer_that_ignores_the_target_is_rejected():
    code = mutate(FEASIBILITY, '== instance["target"]', ">= 0")
    rejected_at(code, "L5_scorer", "scorer accepts", "random answers of the reference's shape")


FEAS_CHECK = "        idx = parse_int_list(answer)\n        if not idx or len(set(idx)) != len(idx):\n            return 0.0"
FEAS_SOLVE = 'return ", ".join(map(str, instance["planted"]))'
FEAS_SUM = '        return 1.0 if sum(instance["values"][i] for i in idx) == instance["target"] else 0.0'
#: The same problem judged by a correct verifier that accepts the indices in any order and reads a
#: repeated index as one; its reference is not sorted, so reorderings and repeats of it pass. A
#: changed answer that passes is another valid answer.
ANY_ORDER = mutate(mutate(FEASIBILITY, FEAS_CHECK, "        idx = parse_int_list(answer)\n        if not idx:\n"
                          "            return 0.0\n        idx = sorted(set(idx))"),
                   FEAS_SOLVE, 'return ", ".join(map(str, reversed(instance["planted"])))')
#: Every seed probed at both probe difficulties.
WIDE = GateConfig(**{**FAST.model_dump(), "probe_seeds": 4, "probe_difficulties": (0.5, 1.0)})


def test_a_verifier_that_accepts_other_valid_answers_is_admitted():
    verdict = validate(ANY_ORDER, WIDE)
    assert verdict.admitted, [(g.name, g.reason) for g in verdict.gates]
    passed, total = _chance_passes(verdict)
    assert total >= 40 and passed / total <= WIDE.max_chance_pass_fraction
    # it does accept answers other than the reference: sorted, with an index repeated
    env = SandboxedEnvironment(ANY_ORDER)
    inst = env.sample(split_seed("train", 0), 0.5)
    items = inst.reference.split(", ")
    other = ", ".join(sorted(items) + items[:1])
    assert other != inst.reference and env.grade(inst, f"<answer>{other}</answer>").passed


def _chance_passes(verdict) -> tuple[int, int]:
    """(passed, total) of L5's random and other instances' answers, read from its reason."""
    reason = verdict.gates[-1].reason
    words = reason.split("answers pass ")[1] if "answers pass " in reason else reason.split("scorer accepts ")[1]
    passed, total = words.split(" ")[0].split("/")
    return int(passed), int(total)


@pytest.mark.parametrize("new", ['        return 1.0 if len(idx) == len(instance["planted"]) else 0.0', "        return 1.0"],
                         ids=["checks only the count", "checks only the range"])
def test_a_weak_verifier_of_many_valid_answers_is_rejected(new):
    verdict = rejected_at(mutate(ANY_ORDER, FEAS_SUM, new), "L5_scorer", "random answers of the reference's shape",
                          config=WIDE)
    passed, total = _chance_passes(verdict)
    assert passed / total > WIDE.max_chance_pass_fraction


#: Remainders, about a third of them 0; the scorer reads the answer with int(), so "00" is 0 too.
REMAINDER = '''
from worldsmith.envs.contract import Environment, lerp_int, prompt_of


class Remainder(Environment):
    name = "remainder"
    description = "The remainder of a division."
    answer_format = "the remainder as an integer"

    def generate(self, rng, difficulty):
        m = rng.randint(7, 10 ** lerp_int(difficulty, 2, 4))
        r = 0 if rng.random() < 0.3 else rng.randint(1, m - 1)
        return {"a": rng.randint(5, 99) * m + r, "m": m}

    def solve(self, instance):
        return str(instance["a"] % instance["m"])

    def render(self, instance):
        return prompt_of(f"The remainder of {instance['a']} divided by {instance['m']}.", self.answer_format)

    def score(self, instance, answer):
        try:
            value = int(answer)
        except ValueError:
            return 0.0
        return 1.0 if value == instance["a"] % instance["m"] else 0.0
'''


def test_the_reference_written_another_way_is_not_a_probe():
    # the malformed "repeated" answer to reference 0 is "00": the right value, not a spray
    verdict = validate(REMAINDER, WIDE)
    assert verdict.admitted, [(g.name, g.reason) for g in verdict.gates]
    assert "0" in _probed_references(REMAINDER, WIDE)


def _probed_references(code: str, config: GateConfig) -> list[str]:
    seeds = [split_seed("train", i) for i in range(config.probe_seeds)]
    grid = SandboxedEnvironment(code).sample_grid(seeds, config.probe_difficulties)
    return [inst.reference for d in config.probe_difficulties for inst in grid[d]]


def test_lint_is_static_and_names_the_import():
    # parsing never executes: a module-level side effect cannot happen during L1
    assert lint("import os\nos.system('false')\n" + EQUALITY, FAST) == "ListSum"
    for bad in ("from subprocess import run", "import urllib.request", "__import__('ctypes')", "import threading"):
        with pytest.raises(Exception, match="forbidden import"):
            lint(bad + "\n" + EQUALITY, FAST)


def test_config_is_validated():
    with pytest.raises(ValidationError):
        GateConfig(distinct_difficulty=0.3)
    with pytest.raises(ValidationError):
        GateConfig(seeds=2, probe_seeds=3)
    with pytest.raises(ValidationError):
        GateConfig(bogus=1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", "validate", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_exit_codes_and_json(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(textwrap.dedent(EQUALITY))
    out = _cli(str(good), "--json", "--seeds", "3", "--probe-seeds", "1")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["admitted"] is True and body["isolation"] in ("bwrap", "fallback")
    assert [g["name"] for g in body["gates"]] == list(GATE_NAMES)
    assert all({"name", "passed", "reason", "seconds"} <= set(g) for g in body["gates"])

    bad = tmp_path / "bad.py"
    bad.write_text(BROKEN["constant across seeds"][0])
    out = _cli(str(bad), "--seeds", "3", "--probe-seeds", "1")
    assert out.returncode == 1
    assert "rejected at L4_non_triviality" in out.stdout

    for args in ([str(tmp_path / "missing.py")], [str(good), "--mode", "nowhere"], [str(good), "--timeout", "-1"]):
        out = _cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error:")


def test_a_candidate_takes_a_handful_of_runs():
    # L2 one run (describe + every difficulty), L3 one fresh run, L5 one run for the references
    # and one for every probe answer
    verdict = validate(EQUALITY, FAST)
    assert verdict.admitted and verdict.runs == 4, verdict.to_json()
    small = validate(EQUALITY, GateConfig(**{**FAST.model_dump(), "score_batch": 5}))
    assert small.admitted and small.runs > 4
    assert [g.reason for g in small.gates] == [g.reason for g in verdict.gates]


def test_a_scorer_that_raises_on_some_answers_scores_them_zero():
    code = mutate(EQUALITY, EQ_SCORE,
                  "        if not answer.strip().lstrip('-').isdigit():\n"
                  "            raise ValueError('not an integer')\n" + EQ_SCORE)
    verdict = validate(code, FAST)
    assert verdict.admitted, [(g.name, g.reason) for g in verdict.gates]


def test_a_scorer_that_hangs_on_one_probe_is_rejected():
    code = mutate(EQUALITY, EQ_SCORE, "        while answer == 'abc':\n            pass\n" + EQ_SCORE)
    config = GateConfig(**{**FAST.model_dump(), "wall_s": 1.5, "cpu_s": 2})
    rejected_at(code, "L5_scorer", "timeout", config=config)


def test_a_scorer_that_changes_within_a_process_is_rejected():
    code = mutate(EQUALITY, EQ_SCORE,
                  "        CALLS.append(1)\n        if len(CALLS) > 3:\n            return 0.0\n" + EQ_SCORE)
    rejected_at(code + "\nCALLS = []\n", "L5_scorer", "scored again", "not pure")


def test_an_oversized_source_is_rejected_before_parsing_and_a_huge_file_is_never_read(tmp_path):
    padded = textwrap.dedent(EQUALITY) + "#" * 50_000 + "\n"
    verdict = validate(padded, FAST)
    assert not verdict.admitted and verdict.failed_gate == "L1_parse" and verdict.runs == 0
    assert verdict.gates[0].reason.startswith(f"source is {len(padded)} characters; the limit is 40000")
    huge = tmp_path / "huge.py"
    huge.write_text("x = 1\n" * 40_000)  # 240 kB: over 4 bytes x 40,000 characters
    out = _cli(str(huge))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "is 240000 bytes; a candidate program has at most 40000 characters" in out.stderr


def test_a_bad_timeout_names_the_flag_the_user_typed(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(textwrap.dedent(EQUALITY))
    out = _cli(str(good), "--timeout", "0")
    assert out.returncode == 2 and out.stderr.startswith("error: validate: --timeout:"), out.stderr
    assert "wall" not in out.stderr

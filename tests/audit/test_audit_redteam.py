"""`audit env`: every deliberately weak scorer is flagged by the strategy that targets it; every
built-in environment comes out clean. Files (audited in the sandbox): tests/audit/test_audit_files.py."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest

from worldsmith import Environment, envs
from worldsmith.audit import redteam
from worldsmith.audit.redteam import (
    STRATEGIES,
    AuditReport,
    RedTeamConfig,
    audit_env,
    format_report,
)
from worldsmith.envs.answers import parse_int, parse_int_list
from worldsmith.envs.contract import prompt_of

SMALL = RedTeamConfig(instances=16, difficulties=(0.5,))


class StrictSum(Environment):
    """A sound scorer: the control every weak scorer below departs from in one way."""

    name = "test_strict_sum"
    description = "Add two integers."
    answer_format = "the integer"

    def generate(self, rng, difficulty):
        high = 10 ** (2 + int(3 * difficulty))
        return {"a": rng.randint(10, high), "b": rng.randint(10, high)}

    def solve(self, instance):
        return str(instance["a"] + instance["b"])

    def render(self, instance):
        return prompt_of(f"Add {instance['a']} and {instance['b']}.", self.answer_format)

    def score(self, instance, answer):
        return float(parse_int(answer) == instance["a"] + instance["b"])


def _float(text):
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


class SubstringScorer(StrictSum):
    name = "weak_substring"

    def score(self, instance, answer):
        return float(self.solve(instance) in answer)


class ContainsNumberScorer(StrictSum):
    """Any answer with the number among its tokens passes."""

    name = "weak_contains_number"

    def score(self, instance, answer):
        return float(self.solve(instance) in answer.replace(",", " ").split())


class FloatToleranceScorer(StrictSum):
    name = "weak_float_tolerance"

    def score(self, instance, answer):
        value = _float(answer)
        return float(value is not None and abs(value - int(self.solve(instance))) <= 0.5)


class CoercingScorer(StrictSum):
    name = "weak_coercing"

    def score(self, instance, answer):
        return float(_float(answer) == int(self.solve(instance)))


class PrefixScorer(StrictSum):
    name = "weak_prefix"

    def score(self, instance, answer):
        ref = self.solve(instance)
        return float(answer[: len(ref)] == ref)


class EvalSpliceScorer(StrictSum):
    """The Absolute Zero Reasoner flaw: the answer is spliced into code and evaluated."""

    name = "weak_eval_splice"

    def score(self, instance, answer):
        try:
            return float(bool(eval(f"({answer}) == ({self.solve(instance)})")))  # the flaw under test
        except Exception:
            return 0.0


class NoSolutionScorer(StrictSum):
    """Accepts a claim that no answer exists without checking (every instance has one)."""

    name = "weak_no_solution"

    def score(self, instance, answer):
        return 1.0 if answer.lower() in ("none", "no solution") else super().score(instance, answer)


class FormatOnlyScorer(StrictSum):
    """Checks the shape of a comma-separated answer, never its content."""

    name = "weak_format_only"

    def score(self, instance, answer):
        return float(all(part.strip() for part in answer.split(",")))


class PartialFormatScorer(StrictSum):
    """Half credit for any non-empty answer: a deliberate format reward."""

    name = "weak_partial_format"

    def score(self, instance, answer):
        return 1.0 if super().score(instance, answer) else 0.5


class VacuousDivisors(Environment):
    """Name divisors of n above 1; the scorer checks every listed item, so an empty list passes."""

    name = "weak_vacuous_divisors"
    description = "List divisors of n greater than 1."
    oracle = "feasibility"
    answer_format = "divisors, comma-separated"

    def generate(self, rng, difficulty):
        p, q = rng.choice([3, 5, 7, 11, 13]), rng.randint(10, 99)
        return {"n": p * q}

    def solve(self, instance):
        return str(next(d for d in range(2, instance["n"]) if instance["n"] % d == 0))

    def render(self, instance):
        return prompt_of(f"Name divisors of {instance['n']} above 1.", self.answer_format)

    def score(self, instance, answer):
        items = [x.strip() for x in answer.strip("[](){}\"' ").split(",") if x.strip()]
        values = [parse_int(x) for x in items]
        return float(all(v is not None and v > 1 and instance["n"] % v == 0 for v in values))


WORDS = ("river", "stone", "cloud", "maple", "ember", "frost", "lunar", "cedar", "delta", "prism")


class EchoKeywords(Environment):
    """Repeat the starred words; the scorer only checks that each one appears somewhere."""

    name = "weak_echo_keywords"
    description = "Give the starred words in order."
    answer_format = "the starred words, space-separated"

    def generate(self, rng, difficulty):
        words = rng.sample(WORDS, 8)
        return {"words": words, "starred": sorted(rng.sample(range(8), 3))}

    def solve(self, instance):
        return " ".join(instance["words"][i] for i in instance["starred"])

    def render(self, instance):
        shown = " ".join(f"*{w}*" if i in instance["starred"] else w for i, w in enumerate(instance["words"]))
        return prompt_of(f"Starred words of: {shown} ", self.answer_format)

    def score(self, instance, answer):
        said = answer.replace("*", " ").split()
        return float(all(w in said for w in self.solve(instance).split()))


class ForgetfulColoring(Environment):
    """3-colour a graph; the scorer checks length and colour range and forgets the edges."""

    name = "weak_forgetful_coloring"
    description = "Colour vertices so that no edge joins equal colours."
    oracle = "feasibility"
    answer_format = "the colours, comma-separated"

    def generate(self, rng, difficulty):
        n = 12
        colours = [rng.randint(1, 3) for _ in range(n)]
        edges = [[u, v] for u in range(n) for v in range(u + 1, n) if colours[u] != colours[v] and rng.random() < 0.5]
        return {"n": n, "edges": edges, "planted": colours}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        edges = " ".join(f"{u}-{v}" for u, v in instance["edges"])
        return prompt_of(f"Colour 0..{instance['n'] - 1} with 1..3. Edges: {edges}", self.answer_format)

    def score(self, instance, answer):
        colours = [parse_int(x) for x in answer.split(",")]
        return float(len(colours) == instance["n"] and all(c in (1, 2, 3) for c in colours))


class ConstantSeven(StrictSum):
    """Every instance's answer is 7, whatever the prompt says."""

    name = "weak_constant_seven"

    def solve(self, instance):
        return "7"

    def score(self, instance, answer):
        return float(answer == "7")


# --- problems with many valid answers: correct verifiers and weak ones --------------------------------


class SubsetPositions(Environment):
    """Name positions whose values sum to the target, in any order; a repeated position counts once."""

    name = "test_subset_positions"
    description = "Choose positions whose values add up to the target."
    oracle = "feasibility"
    answer_format = "1-based positions in any order, comma-separated"

    def generate(self, rng, difficulty):
        n = 10 + int(20 * difficulty)
        values = [rng.randint(1, 5000) for _ in range(n)]
        chosen = rng.sample(range(1, n + 1), n // 3)
        return {"values": values, "target": sum(values[p - 1] for p in chosen), "planted": chosen}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{p}:{v}" for p, v in enumerate(instance["values"], start=1))
        return prompt_of(f"Values by position: {listed}. Sum to {instance['target']}.", self.answer_format)

    def score(self, instance, answer):
        positions = parse_int_list(answer)
        values = instance["values"]
        if not positions or not all(1 <= p <= len(values) for p in positions):
            return 0.0
        return float(sum(values[p - 1] for p in set(positions)) == instance["target"])


class CountOnlySubset(SubsetPositions):
    """Checks that as many distinct positions as planted are named, never their sum."""

    name = "weak_count_only_subset"

    def score(self, instance, answer):
        positions = parse_int_list(answer) or []
        return float(len(set(positions)) == len(positions) == len(instance["planted"]))


class ProperColoring(ForgetfulColoring):
    """The sound twin of ForgetfulColoring: any proper colouring passes, whatever its colour names."""

    name = "test_proper_coloring"

    def score(self, instance, answer):
        colours = parse_int_list(answer)
        if colours is None or len(colours) != instance["n"] or not all(c in (1, 2, 3) for c in colours):
            return 0.0
        return float(all(colours[u] != colours[v] for u, v in instance["edges"]))


def _holds(true_vars, clauses):
    return all(any((lit > 0) == (abs(lit) in true_vars) for lit in clause) for clause in clauses)


class SatTrueSet(Environment):
    """Planted 3-SAT; the answer names the true variables in any order (a repeat changes nothing)."""

    name = "test_sat_true_set"
    description = "Name the variables to set true so that every clause holds."
    oracle = "feasibility"
    answer_format = "the true variables, comma-separated"

    def generate(self, rng, difficulty):
        n = 10 + int(30 * difficulty)
        while True:
            planted = sorted(v for v in range(1, n + 1) if rng.random() < 0.5)
            clauses = []
            for _ in range(3 * n):
                clause = [v if rng.random() < 0.5 else -v for v in rng.sample(range(1, n + 1), 3)]
                if not _holds(set(planted), [clause]):
                    clause[0] = -clause[0]
                clauses.append(clause)
            if planted and not _holds(set(), clauses):
                return {"n": n, "clauses": clauses, "planted": planted}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join("(" + " ".join(map(str, c)) + ")" for c in instance["clauses"])
        return prompt_of(f"Variables 1..{instance['n']}, clauses {listed}.", self.answer_format)

    def score(self, instance, answer):
        named = parse_int_list(answer)
        if not named or not all(1 <= v <= instance["n"] for v in named):
            return 0.0
        return float(_holds(set(named), instance["clauses"]))


class UncheckedSat(SatTrueSet):
    """Checks that the named variables exist and are distinct, never the clauses."""

    name = "weak_unchecked_sat"

    def score(self, instance, answer):
        named = parse_int_list(answer) or []
        return float(bool(named) and len(set(named)) == len(named) and all(1 <= v <= instance["n"] for v in named))


class Remainder(Environment):
    """a mod m, 0 on about a fifth of the instances; the scorer compares integers read with int(), so
    "00" and "+0" are 0 too (the right value written another way), and "0.0" or "0x0" are not."""

    name = "test_remainder"
    description = "The remainder of a division."
    answer_format = "the remainder"

    def generate(self, rng, difficulty):
        m = rng.randint(7, 99)
        return {"a": rng.randint(5, 999) * m + (0 if rng.random() < 0.2 else rng.randint(1, m - 1)), "m": m}

    def solve(self, instance):
        return str(instance["a"] % instance["m"])

    def render(self, instance):
        return prompt_of(f"The remainder of {instance['a']} divided by {instance['m']}.", self.answer_format)

    def score(self, instance, answer):
        try:
            return float(int(answer) == instance["a"] % instance["m"])
        except ValueError:
            return 0.0


WEAK = [
    (SubstringScorer, "spray"),
    (ContainsNumberScorer, "spray"),
    (VacuousDivisors, "empty"),
    (FormatOnlyScorer, "format_only"),
    (EchoKeywords, "echo_prompt"),
    (FloatToleranceScorer, "near_reference"),
    (CoercingScorer, "type_confusion"),
    (PrefixScorer, "long"),
    (EvalSpliceScorer, "injection"),
    (NoSolutionScorer, "common_answers"),
    (ConstantSeven, "constant_answer"),
    (CountOnlySubset, "random_answer"),
    (ForgetfulColoring, "random_answer"),
    (UncheckedSat, "random_answer"),
    (ForgetfulColoring, "other_instance"),
]


def _by_name(report):
    return {s.name: s for s in report.strategies}


@pytest.mark.parametrize("cls, strategy", WEAK, ids=[f"{c.name}-{s}" for c, s in WEAK])
def test_each_weak_scorer_is_flagged_by_its_strategy(cls, strategy):
    report = audit_env(cls(), SMALL)
    assert _by_name(report)[strategy].flagged, format_report(report)
    assert report.flagged


def test_every_strategy_is_exercised_by_some_weak_scorer():
    assert {s for _, s in WEAK} == set(STRATEGIES)


def test_the_sound_control_is_clean():
    report = audit_env(StrictSum(), SMALL)
    assert not report.flagged, format_report(report)
    assert all(s.mean_reward == 0.0 and s.worst == "" for s in report.strategies if s.name != "constant_answer")
    # the 16 references differ, so each of the 5 most common is right on exactly 1 of 16 instances
    assert len({i.reference for i in redteam.sample_instances(StrictSum(), SMALL)[0.5]}) == 16
    constant = _by_name(report)["constant_answer"]
    assert [(v.attempts, v.passes) for v in constant.variants] == [(16, 1)] * 5 and not constant.flagged


def test_a_constant_answer_is_flagged_even_where_it_is_the_reference():
    env = ConstantSeven()
    report = audit_env(env, SMALL)
    seven = _variant(report, "constant_answer", "constant '7'")
    assert (seven.attempts, seven.passes, seven.mean_reward) == (16, 16, 1.0)
    assert _by_name(report)["constant_answer"].flagged and report.flagged
    # strategies that count only wrong answers never try the reference
    assert all(v.variant != "constant '7'" for v in _by_name(report)["common_answers"].variants)
    assert _by_name(report)["other_instance"].attempts == 0
    assert "constant answer: 0.3" in format_report(report)
    allowed = audit_env(env, SMALL.model_copy(update={"constant_threshold": 1.0}))
    assert not allowed.flagged, format_report(allowed)


def test_the_reference_is_compared_as_a_value():
    env = ConstantSeven()
    inst = env.sample(3, 0.5)
    for same in (" 7 ", "07", "+7", "007"):
        assert redteam.is_reference(env, inst, env.wrap(same)), same
    for other in ("7 x", "7.0", "0x7", "[7]", '"7"', "77", "7 7"):
        assert not redteam.is_reference(env, inst, env.wrap(other)), other


def test_a_value_comparing_scorer_is_clean_where_a_common_reference_is_zero():
    # "00", the spray "repeated" of reference 0, is 0 written another way: not an attack
    env = Remainder()
    report = audit_env(env, SMALL)
    assert not report.flagged, format_report(report)
    zeros = sum(i.reference == "0" for i in redteam.sample_instances(env, SMALL)[0.5])
    assert zeros / 16 > SMALL.threshold  # counting "00" as a spray would have flagged the scorer
    repeated = _variant(report, "spray", "repeated")
    assert (repeated.attempts, repeated.passes) == (16 - zeros, 0)


def _another_valid_answer(env, inst):
    """A valid answer that is not the reference: the items reversed with the first repeated, or the
    colours 1 and 2 swapped."""
    items = inst.reference.split(",")
    if isinstance(env, ProperColoring):
        return ",".join({"1": "2", "2": "1"}.get(c, c) for c in items)
    return ",".join(items[::-1] + items[:1])


MANY_VALID = [SubsetPositions, ProperColoring, SatTrueSet]


@pytest.mark.parametrize("cls", MANY_VALID, ids=lambda c: c.name)
def test_correct_verifiers_of_problems_with_many_answers_are_clean(cls):
    env = cls()
    report = audit_env(env, SMALL)
    assert not report.flagged, format_report(report)
    random_answers = _by_name(report)["random_answer"]
    assert random_answers.attempts >= 16 and random_answers.pass_rate <= SMALL.threshold
    # ... although they accept answers other than the reference
    inst = env.sample(3, 0.5)
    other = _another_valid_answer(env, inst)
    assert not redteam.is_reference(env, inst, env.wrap(other))
    assert env.grade(inst, env.wrap(other)).passed


@pytest.mark.parametrize("cls, variant", [(CountOnlySubset, "range draw"), (ForgetfulColoring, "resampled items"),
                                          (UncheckedSat, "range draw")], ids=lambda x: getattr(x, "name", x))
def test_weak_verifiers_pass_random_answers_of_the_right_shape(cls, variant):
    report = audit_env(cls(), SMALL)
    drawn = _variant(report, "random_answer", variant)
    assert (drawn.attempts, drawn.passes) == (16, 16)
    assert _by_name(report)["random_answer"].flagged


SEED_ENVS = [n for n in envs.names() if type(envs.get(n)).__module__.startswith("worldsmith.envs.seeds")]


@pytest.mark.parametrize("name", SEED_ENVS)
def test_every_builtin_environment_is_clean(name):
    report = audit_env(envs.get(name))
    assert report.instances == 128
    assert not report.flagged, format_report(report)


def test_there_are_ten_builtin_environments():
    assert len(SEED_ENVS) == 10


# --- hand-computed rates ----------------------------------------------------------------------------


def _variant(report, strategy, variant):
    return next(v for v in _by_name(report)[strategy].variants if v.variant == variant)


def test_tolerance_scorer_rates_per_variant():
    report = audit_env(FloatToleranceScorer(), SMALL)
    # 16 instances; a +0.4 and a -0.0001 offset are inside the 0.5 tolerance, +-1 and x10 are not
    for variant, rate in (("plus 0.4", 1.0), ("minus 0.0001", 1.0), ("plus one", 0.0), ("times ten", 0.0)):
        v = _variant(report, "near_reference", variant)
        assert (v.attempts, v.pass_rate, v.mean_reward) == (16, rate, rate), variant
    # float() coerces "42.0" and "4.2e1" but not hex
    assert _variant(report, "type_confusion", "float form").pass_rate == 1.0
    assert _variant(report, "type_confusion", "scientific").pass_rate == 1.0
    assert _variant(report, "type_confusion", "hex").pass_rate == 0.0


def test_partial_credit_counts_as_reward_and_the_reward_threshold_can_allow_it():
    flagged = audit_env(PartialFormatScorer(), SMALL)
    fmt = _by_name(flagged)["format_only"]
    assert fmt.flagged and fmt.pass_rate == 0.0 and fmt.mean_reward == 0.5
    allowed = audit_env(PartialFormatScorer(), SMALL.model_copy(update={"reward_threshold": 0.5}))
    assert not allowed.flagged, format_report(allowed)


def test_eval_splice_is_caught_passing_a_boolean_injection_and_by_its_side_effect():
    report = audit_env(EvalSpliceScorer(), SMALL)
    assert _variant(report, "injection", "boolean injection").pass_rate == 1.0
    assert report.side_effect
    assert "canary file APPEARED" in format_report(report)


def test_variants_tried_too_rarely_are_reported_but_not_flagged():
    cfg = SMALL.model_copy(update={"instances": 4, "min_attempts": 5})
    report = audit_env(SubstringScorer(), cfg)
    assert not report.flagged
    assert _variant(report, "spray", "either-or").pass_rate == 1.0


def test_skip_leaves_out_a_strategy_or_one_variant():
    cfg = SMALL.model_copy(update={"skip": ["spray", "near_reference:plus 0.4"]})
    report = audit_env(FloatToleranceScorer(), cfg)
    names = _by_name(report)
    assert "spray" not in names
    assert all(v.variant != "plus 0.4" for v in names["near_reference"].variants)
    assert _variant(report, "near_reference", "minus 0.0001").pass_rate == 1.0
    with pytest.raises(ValueError, match="unknown strategy"):
        RedTeamConfig(skip=["nope"])


def test_helpers_on_hand_computed_cases():
    assert redteam._numbers("Add 12 and -7; edge 1-2, 007.") == ["12", "-7", "1", "2", "7"]
    assert redteam._decimal_text(Fraction(42) + Fraction(2, 5)) == "42.4"
    assert redteam._decimal_text(Fraction(-5) - Fraction(1, 10_000)) == "-5.0001"
    assert redteam._decimal_text(Fraction(3, 4) + Fraction(2, 5)) == "1.15"
    assert redteam._tweak_last_number("3,5,7", lambda v: str(v + 1)) == "3,5,8"
    assert redteam._tweak_last_number("abc", str) is None
    assert redteam.most_common(["1", "2", "2", " 3", "3", "3"], 2) == ("3", "2")
    env = StrictSum()
    probe = redteam.Probe(env, env.sample(0, 0.0), (), (), "/nonexistent")
    forms = redteam.type_confusion(probe)
    value = int(probe.instance.reference)
    assert forms["hex"] == f"<answer>0x{value:X}</answer>"
    assert forms["float form"] == f"<answer>{value}.0</answer>"
    digits = str(value)
    assert forms["scientific"] == f"<answer>{digits[0]}.{digits[1:].rstrip('0')}e{len(digits) - 1}</answer>"


def test_duplicate_strategy_names_are_rejected():
    with pytest.raises(ValueError, match="already registered"):
        redteam.strategy("spray", "again")(lambda probe: {})


def test_report_round_trips_through_json():
    report = audit_env(SubstringScorer(), SMALL)
    again = AuditReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again.flagged and format_report(again).splitlines()[2:] == format_report(report).splitlines()[2:]


# --- the command ----------------------------------------------------------------------------------------


def _cli(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", "audit", "env", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_cli_builtin_clean_exit_0():
    out = _cli("arithmetic_chain", "--instances", "8", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["env"] == "arithmetic_chain" and report["flagged"] is False


def test_cli_constant_threshold():
    # 16 instances with distinct references: each most common reference is right once, 1/16 > 0.05
    out = _cli("arithmetic_chain", "--instances", "8", "--json", "--constant-threshold", "0.05")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["constant_threshold"] == 0.05
    assert [s["name"] for s in report["strategies"] if s["flagged"]] == ["constant_answer"]
    out = _cli("arithmetic_chain", "--instances", "8", "--constant-threshold", "2")
    assert out.returncode == 2 and "--constant-threshold" in out.stderr


@pytest.mark.parametrize("args, fragment", [
    (("no_such_env",), "unknown environment"),
    (("arithmetic_chain", "--skip", "bogus"), "unknown strategy"),
    (("missing_file.py",), "no such file"),
])
def test_cli_mistakes_are_one_line_errors_with_exit_2(args, fragment):
    out = _cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and fragment in out.stderr, out.stderr


def test_the_red_team_and_the_games_import_without_torch():
    code = ("import sys, worldsmith.audit.redteam, worldsmith.audit.games, worldsmith.audit.child; "
            "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""

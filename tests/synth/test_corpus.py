"""The offline corpus of candidate programs (worldsmith.synth.corpus) against gates L1-L5.

Every correct program is admitted (no false rejections) and every buggy one is rejected at the gate
its manifest names. The fast suite runs a representative subset with a small GateConfig; the whole
corpus runs under both the default and the small config in the slow suite, which also shows that
the small config reaches the same verdicts.
"""

from importlib import resources

import pytest

from worldsmith.audit.files import audit_file
from worldsmith.audit.redteam import RedTeamConfig, format_report
from worldsmith.synth.corpus import CorpusItem, load
from worldsmith.synth.gates import GATE_NAMES, GateConfig, lint, validate

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")

SMALL = GateConfig(seeds=3, probe_seeds=1, wall_s=5.0, cpu_s=5)

#: Three correct programs (two equality oracles, one feasibility) and one reject per cheap gate.
FAST_SUBSET = (
    "mod_power",
    "reverse_words",
    "two_sum_indices",
    "bug_forbidden_subprocess",
    "bug_global_random",
    "bug_tuple_keys",
    "bug_float_tolerance",
)

ITEMS = load()
BY_NAME = {item.name: item for item in ITEMS}


def check(item: CorpusItem, config: GateConfig | None) -> None:
    verdict = validate(item.source, config)
    reasons = "; ".join(f"{g.name}: {g.reason}" for g in verdict.gates if not g.passed and not g.skipped)
    if item.expected == "admit":
        assert verdict.admitted, f"{item.name} falsely rejected: {reasons}"
    else:
        assert not verdict.admitted, f"{item.name} admitted despite: {item.bug}"
        assert verdict.failed_gate == item.gate, f"{item.name} rejected at {verdict.failed_gate}, not {item.gate}: {reasons}"


def test_manifest_lists_every_program_once():
    root = resources.files("worldsmith.synth.corpus")
    files = {p.name for p in root.iterdir() if p.name.endswith(".py") and p.name != "__init__.py"}
    names = [item.name for item in ITEMS]
    assert len(names) == len(set(names))
    assert {f"{n}.py" for n in names} == files


def test_corpus_size_and_split():
    admits = [i for i in ITEMS if i.expected == "admit"]
    rejects = [i for i in ITEMS if i.expected == "reject"]
    assert len(ITEMS) >= 30
    assert abs(len(admits) - len(rejects)) <= 0.2 * len(ITEMS)
    assert all(i.gate is None and i.bug is None for i in admits)
    assert all(i.gate in GATE_NAMES and i.bug for i in rejects)
    # every gate owns at least one buggy program
    assert {i.gate for i in rejects} == set(GATE_NAMES)


@pytest.mark.parametrize("item", [i for i in ITEMS if i.gate != "L1_parse"], ids=lambda i: i.name)
def test_programs_other_than_l1_rejects_pass_lint(item):
    lint(item.source, GateConfig())


@pytest.mark.parametrize("name", FAST_SUBSET)
def test_fast_subset_small_config(name):
    check(BY_NAME[name], SMALL)


#: Problems with many valid answers: correct verifiers (positions in any order, any proper
#: colouring, any satisfying assignment) and weak ones (the count only, the colour range only, the
#: constraint never checked).
MANY_VALID = (
    "subset_positions",
    "coloring_any_proper",
    "sat_true_variables",
    "bug_subset_count_only",
    "bug_coloring_range_only",
    "bug_sat_unchecked",
)
AUDIT = RedTeamConfig(instances=16, difficulties=(0.5, 1.0))


@pytest.mark.parametrize("name", MANY_VALID)
def test_verifiers_of_many_valid_answers_are_admitted_or_rejected(name):
    item = BY_NAME[name]
    assert item.source.count('oracle = "feasibility"') == 1
    check(item, SMALL)
    if item.expected == "reject":
        verdict = validate(item.source, SMALL)
        assert "random answers of the reference's shape" in verdict.gates[-1].reason


@pytest.mark.parametrize("name", MANY_VALID)
def test_verifiers_of_many_valid_answers_audit_clean_or_flagged(name):
    item = BY_NAME[name]
    path = resources.files("worldsmith.synth.corpus").joinpath(f"{name}.py")
    (report,) = audit_file(str(path), AUDIT, timeout_s=120)
    strategies = {s.name: s for s in report.strategies}
    if item.expected == "admit":
        assert not report.flagged, format_report(report)
        assert strategies["random_answer"].attempts >= 32
    else:
        assert strategies["random_answer"].flagged and strategies["random_answer"].pass_rate == 1.0, \
            format_report(report)


def test_fast_subset_is_representative():
    chosen = [BY_NAME[n] for n in FAST_SUBSET]
    assert sum(i.expected == "admit" for i in chosen) >= 3
    assert sum(i.expected == "reject" for i in chosen) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("item", ITEMS, ids=lambda i: i.name)
def test_corpus_default_config(item):
    check(item, None)


@pytest.mark.slow
@pytest.mark.parametrize("item", ITEMS, ids=lambda i: i.name)
def test_corpus_small_config(item):
    check(item, SMALL)

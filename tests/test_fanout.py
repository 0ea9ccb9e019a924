"""Fan-out over Ray: sandbox validation, grading and sampling give the same verdicts as serial runs."""

import contextlib
import io
import pathlib
import random
import sys

import pytest

from worldsmith import cli, envs
from worldsmith.envs.checks import perturbations
from worldsmith.fanout import Fanout, grade_many, sample_many, validate_many
from worldsmith.synth.gates import GateConfig, validate

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "src" / "worldsmith" / "synth" / "corpus"
PROGRAMS = ["base_conversion", "bug_answer_leak", "caesar_decode", "bug_constant_instance"]
FAST_GATES = GateConfig(seeds=2, probe_seeds=1)


def verdict_key(v):
    """Everything a verdict decides (gate timings aside)."""
    return v.admitted, v.isolation, [(g.name, g.passed, g.reason, g.skipped) for g in v.gates]


def responses_for(instances):
    """References, near misses and sprays: a mix of passing and failing responses."""
    rng = random.Random(0)
    out = []
    for i, inst in enumerate(instances):
        near = next(iter(perturbations(inst.reference, rng).values()), inst.reference + "0")
        out.append([f"<answer>{inst.reference}</answer>", f"<answer>{near}</answer>", "no answer"][i % 3])
    return out


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_serial_chunks_equal_the_plain_calls():
    sources = [(CORPUS / f"{name}.py").read_text() for name in PROGRAMS[:2]]
    assert [verdict_key(v) for v in validate_many(sources, FAST_GATES, chunk=1)] == \
        [verdict_key(validate(s, FAST_GATES)) for s in sources]
    env = envs.get("gcd_euclid")
    seeds = [envs.split_seed("eval", i) for i in range(7)]
    instances = sample_many("gcd_euclid", seeds, 0.5, chunk=3)
    assert instances == [env.sample(s, 0.5) for s in seeds]
    texts = responses_for(instances)
    assert grade_many("gcd_euclid", instances, texts, chunk=2) == [env.grade(i, t) for i, t in zip(instances, texts)]


def test_without_ray_the_flag_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, out, err = run_cli("validate", CORPUS / "base_conversion.py", "--ray")
    assert code == 2 and err == "error: validate: --ray needs the ray package: pip install 'ray>=2.9'\n"


@pytest.fixture(scope="module")
def ray_pool():
    pytest.importorskip("ray")
    pool = Fanout.ray(workers=2)
    yield pool
    pool.close()


@pytest.mark.slow
def test_ray_gives_the_serial_verdicts(ray_pool):
    assert ray_pool.distributed and ray_pool.workers == 2
    sources = [(CORPUS / f"{name}.py").read_text() for name in PROGRAMS]
    fanned = validate_many(sources, FAST_GATES, pool=ray_pool, chunk=1)
    serial = [validate(s, FAST_GATES) for s in sources]
    assert [verdict_key(v) for v in fanned] == [verdict_key(v) for v in serial]
    assert [v.admitted for v in fanned] == [True, False, True, False]  # both kinds are in the comparison
    for name in ("gcd_euclid", "graph_coloring", "fraction_sum"):
        env = envs.get(name)
        seeds = [envs.split_seed("eval", i) for i in range(24)]
        instances = sample_many(name, seeds, 0.5, pool=ray_pool)
        assert instances == [env.sample(s, 0.5) for s in seeds]
        texts = responses_for(instances)
        scores = grade_many(name, instances, texts, pool=ray_pool)
        assert scores == [env.grade(i, t) for i, t in zip(instances, texts)]
        assert 0 < sum(s.passed for s in scores) < len(scores)


@pytest.mark.slow
def test_the_command_fans_out_over_a_local_cluster(ray_pool):
    """A command run inside a process that already joined a cluster uses it (and leaves it running)."""
    files = [CORPUS / f"{name}.py" for name in PROGRAMS[:2]]
    code, out, err = run_cli("validate", *files, "--ray", "--seeds", "2", "--probe-seeds", "1")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == f"PASS  {files[0]}: admitted" and lines[1] == f"FAIL  {files[1]}: rejected at L5_scorer"
    assert "1 of 2 admitted" in lines[2] and "over Ray" in lines[2]
    import ray

    assert ray.is_initialized()

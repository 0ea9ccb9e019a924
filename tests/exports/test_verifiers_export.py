"""The verifiers export: a taskset that verifiers loads, runs and scores with worldsmith's grades.

The fast test scores traces through verifiers' own ``Task.score``; the slow one runs ``vf-eval``
(verifiers' evaluation entry point, its plain chat harness in a local subprocess) on an export
against ``OracleServerDouble``, a test double of an OpenAI-compatible model server that answers
a known share of the problems right, and checks every recorded reward against worldsmith's grade
of the recorded reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verifiers")

from oracle_server import OracleServerDouble, answers_right  # noqa: E402

from worldsmith import envs  # noqa: E402
from worldsmith.cli import main  # noqa: E402
from worldsmith.exports.common import parse_env_specs, problems  # noqa: E402

MIX = "gcd_euclid,arithmetic_chain@0.5"


def _grade(env: str, seed: int, difficulty: float, text: str) -> float:
    environment = envs.get(env)
    return environment.grade(environment.sample(seed, difficulty), text).value


def test_the_taskset_loads_and_verifiers_scores_traces_with_the_grade():
    import verifiers.v1 as vf

    from worldsmith.exports.verifiers_env import taskset

    tasks = list(taskset(MIX, 6, "eval"))
    rows = problems(parse_env_specs(MIX), 6, "eval")
    assert [t.data.prompt for t in tasks] == [r.prompt for r in rows]
    assert [(t.data.env, t.data.seed, t.data.difficulty) for t in tasks] == [(r.env, r.seed, r.difficulty) for r in rows]
    for task, row in zip(tasks, rows):
        for reply in (f"<answer>{row.reference}</answer>", f"<answer>{row.reference}9</answer>", "no answer"):
            trace = vf.Trace.model_construct(rewards={}, metrics={}, nodes=[], root_reply=reply)
            asyncio.run(task.score(trace))
            assert trace.rewards["worldsmith_grade"].score == _grade(row.env, row.seed, row.difficulty, reply)
    assert trace.rewards["worldsmith_grade"].score == 0.0


@pytest.mark.slow
def test_vf_eval_runs_an_export_and_records_worldsmiths_grades(tmp_path):
    vf_eval = shutil.which("vf-eval", path=str(Path(sys.executable).parent)) or shutil.which("vf-eval")
    if vf_eval is None:
        pytest.skip("vf-eval is not installed")
    n = 8
    assert main(["export", "verifiers", "--env", MIX, "--n", str(n), "--split", "eval", "--out", str(tmp_path / "vf")]) == 0
    rows = problems(parse_env_specs(MIX), n, "eval")
    instances = [envs.get(r.env).sample(r.seed, r.difficulty) for r in rows]
    expected = sum(answers_right(i) for i in instances) / n
    assert 0 < expected < 1
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "WORLDSMITH_TEST_VF_KEY": "k", "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "vf"), str(src), os.environ.get("PYTHONPATH", "")])}
    with OracleServerDouble(instances, key="k") as server:
        out = subprocess.run([vf_eval, "@", "eval.toml", "-m", "oracle", "--client.base-url", f"{server.url}/v1",
                              "--client.api-key-var", "WORLDSMITH_TEST_VF_KEY", "--no-push", "-c", "4",
                              "--sampling.temperature", "0", "--sampling.max-tokens", "64",
                              "--output-dir", str(tmp_path / "runs")],
                             cwd=tmp_path / "vf", env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    traces = [json.loads(line) for f in (tmp_path / "runs").rglob("traces.jsonl") for line in f.read_text().splitlines()]
    assert len(traces) == n
    rewards = []
    for episode in traces:
        trace = episode["traces"][0]
        data = trace["task"]["data"]
        reply = [node["message"]["content"] for node in trace["nodes"] if node.get("message", {}).get("role") == "assistant"][-1]
        reward = trace["rewards"]["worldsmith_grade"]["score"]
        assert reward == _grade(data["env"], data["seed"], data["difficulty"], reply)
        rewards.append(reward)
    print(f"vf-eval on a worldsmith export: mean reward {sum(rewards) / n:.3f} (expected {expected:.3f})")
    assert sum(rewards) / n == pytest.approx(expected, abs=1e-12)

"""Benchmarks that need a peer library stop with one line naming it and the fix when it is missing."""

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

# Hiding a module: with sys.modules[name] = None, both ``import name`` and find_spec(name) fail.
RUN_WITHOUT = """
import runpy, sys
for name in {hidden!r}:
    sys.modules[name] = None
sys.path.insert(0, {bench!r})
sys.argv = [{script!r}, "--quick"]
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.mark.parametrize("script,hidden", [
    ("rl_step_vs_trl.py", ["trl", "datasets"]),
    ("rl_step_vs_trl.py", ["trl"]),
    ("env_throughput.py", ["reasoning_gym"]),
])
def test_a_missing_extra_is_one_line_not_a_traceback(script, hidden):
    code = RUN_WITHOUT.format(hidden=hidden, bench=str(BENCH), script=str(BENCH / script))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    needs = lines[0].split("needs ", 1)[1].split(" (the bench extra)", 1)[0].split(", ")
    assert set(hidden) <= set(needs) and "make bench" in lines[0]
    assert proc.stdout == ""


def test_make_bench_installs_the_bench_extra():
    makefile = (BENCH.parent / "Makefile").read_text()
    recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert "'.[bench]'" in recipe or '".[bench]"' in recipe

"""`audit env FILE.py`: a file is audited only inside the sandbox, in one run; where no isolation
works the command refuses unless the user opts in with --unsafe-no-isolation."""

import json
import os
import subprocess
import sys
import time

import pytest
from isolation import needs_bwrap

import worldsmith
from worldsmith.audit import files
from worldsmith.audit.files import ISOLATION, AuditFileError, AuditTimeout, audit_file
from worldsmith.audit.redteam import RedTeamConfig, format_report
from worldsmith.sandbox import NO_ISOLATION, SandboxUnavailable, bwrap_available

SMALL = RedTeamConfig(instances=16, difficulties=(0.5,))
EXPECTED_ISOLATION = ISOLATION["bwrap" if bwrap_available() else "fallback"]

WEAK_FILE = '''
import os
from worldsmith import Environment
from worldsmith.envs.contract import prompt_of

if "WORLDSMITH_PLANTED_SECRET" in os.environ:
    raise RuntimeError("the parent's environment leaked into the sandbox")
print("noise on stdout that must not be mistaken for the result")

class FileSubstring(Environment):
    name = "file_substring"
    description = "Add two integers; substring scorer."
    def generate(self, rng, difficulty):
        return {"a": rng.randint(10, 999), "b": rng.randint(10, 999)}
    def solve(self, instance):
        return str(instance["a"] + instance["b"])
    def render(self, instance):
        return prompt_of(f"Add {instance['a']} and {instance['b']}.", "the integer")
    def score(self, instance, answer):
        return float(self.solve(instance) in answer)
'''

#: Writes into a host folder and into the installed package when imported and when scoring.
HOSTILE_FILE = '''
from worldsmith import Environment
from worldsmith.envs.contract import prompt_of

TARGETS = {targets!r}

def _write_everywhere():
    for path in TARGETS:
        try:
            with open(path, "w") as fh:
                fh.write("hostile")
        except OSError:
            pass

_write_everywhere()

class Hostile(Environment):
    name = "hostile"
    description = "exact match, but writes files"
    def generate(self, rng, difficulty):
        return {{"n": rng.randint(0, 10**6)}}
    def solve(self, instance):
        return str(instance["n"])
    def render(self, instance):
        return prompt_of(f"Say {{instance['n']}}.", "the integer")
    def score(self, instance, answer):
        _write_everywhere()
        return float(answer.strip() == self.solve(instance))
'''

#: A scorer that evaluates the answer: the injection canary must be seen inside the sandbox.
EVAL_FILE = '''
from worldsmith import Environment
from worldsmith.envs.contract import prompt_of

class Evaluator(Environment):
    name = "evaluator"
    description = "add two integers; evaluates the answer"
    def generate(self, rng, difficulty):
        return {"a": rng.randint(10, 99), "b": rng.randint(10, 99)}
    def solve(self, instance):
        return str(instance["a"] + instance["b"])
    def render(self, instance):
        return prompt_of(f"Add {instance['a']} and {instance['b']}.", "the integer")
    def score(self, instance, answer):
        try:
            return float(eval(answer) == instance["a"] + instance["b"])
        except Exception:
            return 0.0
'''


def _write(tmp_path, text, name="env_file.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_weak_file_is_flagged_from_the_sandbox_in_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDSMITH_PLANTED_SECRET", "hunter2")
    launches = []
    real_run = files.run
    monkeypatch.setattr(files, "run", lambda *a, **k: launches.append(1) or real_run(*a, **k))
    reports = audit_file(_write(tmp_path, WEAK_FILE), SMALL, timeout_s=120)
    assert [r.env for r in reports] == ["file_substring"]
    assert reports[0].flagged and reports[0].isolation == EXPECTED_ISOLATION
    assert sum(s.attempts for s in reports[0].strategies) > 500 and launches == [1]
    assert "sandbox" in format_report(reports[0])


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
def test_a_scorer_that_evaluates_answers_leaves_a_canary_in_the_sandbox(tmp_path):
    report = audit_file(_write(tmp_path, EVAL_FILE), SMALL, timeout_s=120)[0]
    assert report.side_effect and report.flagged


@needs_bwrap
def test_a_hostile_file_writes_neither_the_host_folder_nor_the_package(tmp_path):
    """On the code as it was (a child process on the host) both files were written."""
    host_file = tmp_path / "written_by_the_file"
    package_file = os.path.join(os.path.dirname(worldsmith.__file__), "written_by_the_file.py")
    path = _write(tmp_path, HOSTILE_FILE.format(targets=[str(host_file), package_file]))
    try:
        reports = audit_file(path, SMALL, timeout_s=120)
        assert reports[0].env == "hostile" and not reports[0].flagged
        assert not host_file.exists() and not os.path.exists(package_file)
    finally:
        if os.path.exists(package_file):
            os.remove(package_file)


def test_a_file_is_never_imported_in_the_calling_process(tmp_path):
    audit_file(_write(tmp_path, WEAK_FILE, "weak_env.py"), SMALL, timeout_s=120)
    assert not any("weak_env" in name for name in sys.modules)


def test_a_hanging_file_is_stopped_at_its_limit(tmp_path):
    path = _write(tmp_path, "import time\nwhile True:\n    time.sleep(0.01)\n")
    started = time.monotonic()
    with pytest.raises(AuditTimeout, match="ran past"):
        audit_file(path, SMALL, timeout_s=3)
    assert time.monotonic() - started < 15


def test_the_audit_runs_under_hard_limits(tmp_path):
    path = _write(tmp_path, "import resource\n"
                            "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
                            f"assert soft == hard == {files.AUDIT_MEMORY_MB * 1024 * 1024}, ('limits', soft, hard)\n")
    with pytest.raises(AuditFileError, match="no Environment subclass"):  # the assert held
        audit_file(path, SMALL, timeout_s=60)
    path.write_text("blob = bytearray(8 * 1024 ** 3)\n")
    with pytest.raises(AuditFileError, match="MemoryError"):
        audit_file(path, SMALL, timeout_s=60)


@pytest.mark.parametrize("text, fragment", [
    ("x = 1\n", "no Environment subclass"),
    ("def broken(:\n", "SyntaxError"),
    ("raise RuntimeError('boom')\n", "boom"),
])
def test_unusable_files_are_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(AuditFileError, match=fragment) as info:
        audit_file(_write(tmp_path, text), SMALL, timeout_s=60)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [
    {"reports": [{"env": {"not": "a string"}}]},
    {"reports": []},
    {"reports": [{"env": "x", "oracle": "equality", "instances": True, "threshold": 0.1, "reward_threshold": 0.1,
                  "isolation": "", "side_effect": False, "slow_grades": 0, "seconds": 0.0, "difficulties": [0.5],
                  "strategies": []}]},
    ["not", "an", "object"],
])
def test_a_forged_or_malformed_report_is_a_one_line_error(tmp_path, value):
    with pytest.raises(AuditFileError, match="no well-formed report"):
        files._reports(tmp_path / "x.py", value, "bwrap")


def test_a_well_formed_report_carries_the_isolation_chosen_here(tmp_path):
    report = audit_file(_write(tmp_path, WEAK_FILE), SMALL, timeout_s=120)[0].to_json()
    report["isolation"] = "claimed by the file"
    again = files._reports(tmp_path / "x.py", {"reports": [report]}, "bwrap")[0]
    assert again.isolation == ISOLATION["bwrap"] and again.flagged


def test_without_isolation_the_audit_refuses(tmp_path, no_isolation):
    with pytest.raises(SandboxUnavailable, match="--unsafe-no-isolation"):
        audit_file(_write(tmp_path, WEAK_FILE), SMALL, timeout_s=60)


# --- the command ----------------------------------------------------------------------------------------


def _cli(*args, env=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", "audit", "env", *args],
                          capture_output=True, text=True, timeout=180, env=env)


def test_cli_weak_file_exit_1_in_the_sandbox(tmp_path):
    out = _cli(str(_write(tmp_path, WEAK_FILE)), "--instances", "8")
    assert out.returncode == 1, out.stderr
    assert "EXPLOITABLE" in out.stdout and f"isolation: {EXPECTED_ISOLATION}" in out.stdout


def test_cli_without_isolation_refuses_then_runs_with_the_opt_in(tmp_path):
    """PATH without bwrap, no opt-in: exit 2 with one line; --unsafe-no-isolation: fallback + warning."""
    from isolation import path_without_bwrap

    path = str(_write(tmp_path, WEAK_FILE))
    env = {"PATH": path_without_bwrap()}
    clean = {k: v for k, v in os.environ.items() if k != "WORLDSMITH_UNSAFE_NO_ISOLATION"}
    out = subprocess.run([sys.executable, "-m", "worldsmith.cli", "audit", "env", path, "--instances", "8"],
                         capture_output=True, text=True, timeout=180, env={**clean, **env})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"error: audit env {path}: {NO_ISOLATION}\n"
    out = subprocess.run([sys.executable, "-m", "worldsmith.cli", "audit", "env", path, "--instances", "8",
                          "--unsafe-no-isolation", "--json"],
                         capture_output=True, text=True, timeout=180, env={**clean, **env})
    assert out.returncode == 1, out.stderr
    assert "sandbox fallback mode: accident protection, not a security boundary" in out.stderr
    report = json.loads(out.stdout)
    assert report["flagged"] and report["isolation"] == ISOLATION["fallback"]

"""Architecture rules from DESIGN.md, held by tests."""

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "worldsmith"


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_importing_the_contract_stays_light():
    code = "import sys, worldsmith; from worldsmith import Environment, envs; envs.names(); " \
           "heavy = [m for m in ('torch', 'transformers', 'numpy', 'math_verify', 'reasoning_gym') if m in sys.modules]; " \
           "print(','.join(heavy))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing worldsmith pulled in: {out.stdout}"


def test_envs_never_import_models_or_higher_layers():
    forbidden = ("torch", "transformers", "worldsmith.rl", "worldsmith.policy", "worldsmith.cli")
    for path in (SRC / "envs").rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith(forbidden)]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_policy_knows_nothing_of_rl():
    for path in (SRC / "policy").rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith("worldsmith.rl")]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_no_eval_or_exec_outside_the_sandbox():
    for path in SRC.rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile"}, f"{path.relative_to(SRC)}:{node.lineno}"


def test_the_contract_a_sandboxed_program_imports_stays_small():
    """Every sandboxed run imports the contract in a fresh interpreter: keep it to what it needs."""
    code = ("import sys; before = set(sys.modules); import worldsmith.envs.contract, worldsmith.envs.answers; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(SRC.parent)!r}); {code}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert "worldsmith.envs.contract" in loaded
    unwanted = {"typing", "fractions", "decimal", "difflib", "torch", "numpy", "pydantic", "worldsmith.envs.seeds"}
    assert not loaded & unwanted, sorted(loaded & unwanted)

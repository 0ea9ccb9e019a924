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


# --- the spine and its plug-ins ----------------------------------------------------------------------
METHOD_WORDS = ("cuts", "mssr", "g2rl", "vppo", "cso", "deltarubric", "locas", "evoenv", "synth", "generator")


def test_the_spine_names_no_method():
    """The trainer and the plug-in interface call hooks; each method lives in its own file."""
    for rel in ("rl/trainer.py", "rl/methods.py"):
        text = (SRC / rel).read_text().lower()
        named = [w for w in METHOD_WORDS if w in text]
        assert not named, f"{rel} names the methods {named}"


def test_every_builtin_method_is_a_registered_plugin_in_its_own_file():
    from worldsmith.rl.methods import Method
    from worldsmith.rl.registry import METHODS

    files = {}
    for cls in METHODS.values():
        assert issubclass(cls, Method) and cls.name, cls
        files.setdefault(cls.__module__, []).append(cls.name)
    assert sorted(METHODS.names()) == ["cuts", "deltarubric_roles", "g2rl", "mssr", "prm_mix", "vppo"]
    assert all(len(names) == 1 for names in files.values()), files


APPLICATION = ("cli.py", "commands.py", "recipes.py", "compare.py", "__main__.py")


def _library_modules():
    """Modules below the application layer: everything but the CLI modules and the recipes
    (``recipes.py``, and ``compare.py`` which runs recipes per method and seed)."""
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.name in APPLICATION or rel.name.endswith("_cli.py"):
            continue
        yield rel, path


def test_no_library_module_imports_the_cli_or_the_recipes():
    for rel, path in _library_modules():
        bad = [m for m in _imports(path) if m in ("worldsmith.cli", "worldsmith.recipes")
               or m.startswith(("worldsmith.cli.", "worldsmith.recipes."))]
        tree = ast.parse(path.read_text())
        bad += [f"from worldsmith import {a.name}" for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "worldsmith"
                for a in node.names if a.name in ("cli", "recipes")]
        assert not bad, f"{rel} imports {bad}"


def test_no_module_imports_another_modules_private_names():
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("worldsmith"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.relative_to(SRC)}:{node.lineno} imports {private} from {node.module}"


def test_no_module_reaches_into_a_worldsmith_module_for_private_names():
    """``cli._Parser``-style access: a private attribute of an imported worldsmith module."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module and node.module.startswith("worldsmith") for a in node.names}
        modules |= {(a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for a in node.names if a.name.startswith("worldsmith")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                raise AssertionError(f"{path.relative_to(SRC)}:{node.lineno} uses {node.value.id}.{node.attr}")


def test_every_table_of_plug_ins_is_one_registry_class():
    from worldsmith.audit import games, redteam
    from worldsmith.commands import COMMANDS
    from worldsmith.envs.registry import ENVIRONMENTS, FAMILIES
    from worldsmith.registry import Registry
    from worldsmith.rl.registry import ADVANTAGES, LOSSES, METHODS

    for table in (ENVIRONMENTS, FAMILIES, games.GAMES, redteam.STRATEGIES, ADVANTAGES, LOSSES, METHODS, COMMANDS):
        assert isinstance(table, Registry), table


def test_families_exist_without_importing_their_modules_and_the_registry_imports_no_builtin():
    code = ("from worldsmith import envs; env = envs.get('game:tampering'); import sys; "
            "print(env.name, 'worldsmith.audit.games' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["game:tampering", "True"]
    assert not {m for m in _imports(SRC / "envs" / "registry.py") if m.startswith("worldsmith.")} - {
        "worldsmith.envs.contract", "worldsmith.registry"}

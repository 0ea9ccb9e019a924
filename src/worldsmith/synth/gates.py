"""Admission gates L1-L5 for candidate environment programs (specs/rl-algorithms.md §1.4).

A candidate is one Python source file defining one ``Environment`` subclass. It is executed only
through ``worldsmith.sandbox.run`` (a fresh, limited process per call); every verdict is computed
here, on the trusted side, from the plain JSON the sandbox returns, with type-strict comparisons
(``1`` is not ``1.0`` is not ``True``). Nothing a candidate says about itself counts as success.

- L1 parse and shape: ``ast.parse`` (parsing, not executing), exactly one ``Environment``
  subclass with literal ``name``/``description`` and the four routines, no forbidden import.
- L2 execution: ``describe``, then ``sample`` over the configured seeds at every configured
  difficulty, in one run within the time and memory limits; instance, prompt and reference sizes.
- L3 determinism: the same (seed, difficulty) twice in one run and again in a fresh process
  gives identical JSON.
- L4 non-triviality: instances differ across seeds, references differ across seeds (compared as
  values: a constant answer must not win), and difficulty changes the instance.
- L5 scorer contract: the reference scores exactly 1; malformed, empty, sprayed, tolerance-abusing
  and type-mismatched answers score 0; the prompt does not give the reference away; every score is
  a finite JSON number in [0, 1]. Equality oracles: near misses, random answers of the reference's
  shape and other instances' answers score 0 too. Feasibility oracles (many valid answers; the
  scorer is a verifier): a changed answer may be another valid one, so near misses are not judged;
  random answers of the reference's shape and other instances' answers, which a correct verifier
  accepts only by chance, may pass at most ``max_chance_pass_fraction`` of the time. A probe that
  is the reference written another way ("00" for "0") is the right answer and is not sent. The
  answers are scored in batches (``score_many``, one run per ``score_batch`` answers) and the
  references are scored again at the end of the probe run, so a scorer that changes its verdict
  within a process is rejected.

Gates run in order; once one fails, the later ones are marked skipped (the spec's "first failure
stops the check").
"""

from __future__ import annotations

import ast
import json
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from worldsmith.configuration import Strict
from worldsmith.envs.answer_forms import random_answers, same_value, value_key
from worldsmith.envs.answers import MAX_ANSWER_CHARS, extract_answer, parse_int
from worldsmith.envs.checks import malformed_answers, perturbations, reference_leaks
from worldsmith.envs.contract import split_seed
from worldsmith.sandbox import FALLBACK_WARNING, Limits, RunResult, resolve_mode, run
from worldsmith.synth.sandboxed_env import instance_shape_error

GATE_NAMES = ("L1_parse", "L2_execution", "L3_determinism", "L4_non_triviality", "L5_scorer")
ROUTINES = ("generate", "solve", "render", "score")

#: Modules a candidate may not import: models, network, processes, threads, foreign code. This is
#: a lint that gives an early, readable reason; the security boundary is the sandbox.
FORBIDDEN_IMPORTS = (
    "torch", "transformers", "numpy", "socket", "ssl", "http", "urllib", "requests", "ftplib",
    "smtplib", "subprocess", "pty", "multiprocessing", "concurrent", "threading", "_thread",
    "asyncio", "ctypes", "importlib", "marshal",
)


class GateConfig(Strict):
    """Every threshold of the gates. Tags: READ (the spec states it), INFERRED (follows from the
    spec or the in-process contract battery, envs/checks.py), PROPOSED (the spec's proposal or
    ours where the spec gives no number)."""

    max_source_chars: int = Field(40_000, ge=100, description=(
        "L1: longest source accepted, characters; longer sources are rejected before parsing (parsing "
        "a multi-megabyte file costs gigabytes). PROPOSED (the proposers' cap on extracted programs)."))
    seeds: int = Field(5, ge=2, le=200, description=(
        "Train-split seeds sampled per difficulty in L2-L4. PROPOSED (spec: seeds {0..4})."))
    difficulties: tuple[float, ...] = Field((0.0, 0.5, 1.0), min_length=2, description=(
        "Difficulties sampled in L2-L4. PROPOSED (spec: {0, mid, max})."))
    wall_s: float = Field(10.0, gt=0.0, le=600.0, description=(
        "Wall-clock limit of one sandbox run (L2 samples every difficulty in one run, L5 scores "
        "up to ``score_batch`` answers in one run; they share it). PROPOSED (spec: 10 s timeout)."))
    cpu_s: int = Field(10, ge=1, le=600, description="CPU-seconds limit of one sandbox run. PROPOSED.")
    memory_mb: int = Field(512, ge=64, description="Address-space limit of one sandbox run. PROPOSED.")
    max_instance_bytes: int = Field(100_000, ge=1, description=(
        "Largest instance (``data`` as compact JSON), bytes. PROPOSED."))
    max_prompt_chars: int = Field(8_000, ge=1, description="Longest rendered prompt, characters. PROPOSED.")
    min_distinct_fraction: float = Field(0.6, ge=0.0, le=1.0, description=(
        "L4: share of distinct instances across the seeds at ``distinct_difficulty``. PROPOSED "
        "(spec: >= 3 distinct of 5 seeds)."))
    min_distinct_references: float = Field(0.6, ge=0.0, le=1.0, description=(
        "L4: share of distinct references across the seeds at ``distinct_difficulty``, compared as "
        "values ('7' and '07' are one). PROPOSED (spec: >= 3 distinct references across 5 seeds)."))
    distinct_difficulty: float = Field(0.5, ge=0.0, le=1.0, description=(
        "L4: the difficulty (one of ``difficulties``) at which distinctness is measured. INFERRED "
        "(checks.py measures at 0.5)."))
    min_difficulty_changed: float = Field(0.8, ge=0.0, le=1.0, description=(
        "L4: share of seeds whose instance at the lowest difficulty differs from the highest. "
        "PROPOSED (spec: instances differ across difficulties; checks.py uses 0.9 over 30 seeds)."))
    probe_seeds: int = Field(2, ge=1, description="L5: instances probed per probe difficulty. PROPOSED.")
    probe_difficulties: tuple[float, ...] = Field((0.5, 1.0), min_length=1, description=(
        "L5: difficulties (each one of ``difficulties``) whose instances are probed. PROPOSED "
        "(difficulty 0 instances are small enough that a feasibility near miss is often valid)."))
    score_batch: int = Field(128, ge=1, le=10_000, description=(
        "L5: most answers scored in one sandbox run (``score_many``); they share that run's "
        "limits. PROPOSED."))
    near_miss_max_score: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "L5: the highest score a near miss, malformed, tolerance-abusing or type-mismatched answer "
        "may get. PROPOSED (spec: 'fail'; 0 leaves no partial credit for them)."))
    random_rounds: int = Field(3, ge=0, le=50, description=(
        "L5: rounds of random answers of the reference's shape per probed instance, one answer per "
        "applicable kind each round (``envs.answer_forms.random_answers``). PROPOSED."))
    other_answers: int = Field(2, ge=0, description=(
        "L5: other instances' references (same difficulty) tried on each probed instance. PROPOSED."))
    max_chance_pass_fraction: float = Field(0.1, ge=0.0, le=1.0, description=(
        "L5, feasibility oracles: share of random answers of the reference's shape and of other "
        "instances' answers that may pass. A correct verifier accepts them only by chance (tiny for "
        "a planted problem at difficulty 0.5 and above); one that checks only the answer's shape "
        "accepts most. PROPOSED."))
    max_leak_fraction: float = Field(0.05, ge=0.0, le=1.0, description=(
        "L5: share of sampled prompts that may state the reference as a token (4+ characters). "
        "INFERRED (checks.py)."))
    forbidden_imports: tuple[str, ...] = Field(FORBIDDEN_IMPORTS, description=(
        "L1: top-level modules a candidate may not import (a lint, not the boundary). PROPOSED "
        "(safety.md row 21 names torch and the network)."))

    @field_validator("difficulties", "probe_difficulties")
    @classmethod
    def _unit_interval(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= d <= 1.0 for d in values):
            raise ValueError(f"difficulties must be in [0, 1], got {values}")
        if len(set(values)) != len(values):
            raise ValueError(f"difficulties must be distinct, got {values}")
        return tuple(float(d) for d in values)

    @model_validator(mode="after")
    def _known_difficulties(self) -> GateConfig:
        known = set(self.difficulties)
        if self.distinct_difficulty not in known:
            raise ValueError(f"distinct_difficulty {self.distinct_difficulty} is not one of {self.difficulties}")
        missing = [d for d in self.probe_difficulties if d not in known]
        if missing:
            raise ValueError(f"probe_difficulties {missing} are not among {self.difficulties}")
        if self.probe_seeds > self.seeds:
            raise ValueError(f"probe_seeds ({self.probe_seeds}) exceeds seeds ({self.seeds})")
        return self

    def limits(self) -> Limits:
        return Limits(wall_s=self.wall_s, cpu_s=self.cpu_s, memory_mb=self.memory_mb)


@dataclass
class GateResult:
    """One gate's verdict. ``skipped`` gates did not run because an earlier one failed."""

    name: str
    passed: bool
    reason: str
    seconds: float
    skipped: bool = False


@dataclass
class Verdict:
    admitted: bool
    gates: list[GateResult]
    isolation: str
    runs: int = 0

    @property
    def failed_gate(self) -> str | None:
        return next((g.name for g in self.gates if not g.passed and not g.skipped), None)

    def to_json(self) -> dict:
        return {"admitted": self.admitted, "gates": [asdict(g) for g in self.gates],
                "isolation": self.isolation, "runs": self.runs}


class Rejected(Exception):
    """A gate's failure, carrying its reason."""


def _canon(value: object) -> str:
    """A type-strict canonical form of plain JSON (``1``, ``1.0`` and ``true`` all differ)."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


# --- L1 ---------------------------------------------------------------------------------------


def _is_environment_base(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "Environment") or (
        isinstance(node, ast.Attribute) and node.attr == "Environment")


def _class_strings(cls: ast.ClassDef) -> dict[str, object]:
    found: dict[str, object] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            targets, value = [stmt.target.id], stmt.value
        else:
            continue
        for name in targets:
            found[name] = value.value if isinstance(value, ast.Constant) else None
    return found


def lint(code: str, config: GateConfig) -> str:
    """L1 on source text: parse it (never executes it) and check its shape and imports. Returns the
    environment class name; raises ``Rejected``. A lint for early, readable reasons: a determined
    program can import anything at run time, which the sandbox contains."""
    if len(code) > config.max_source_chars:
        raise Rejected(f"source is {len(code)} characters; the limit is {config.max_source_chars} "
                       "(max_source_chars)")
    try:
        tree = ast.parse(code, filename="<candidate>")
    except SyntaxError as exc:
        raise Rejected(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise Rejected(f"source does not parse: {type(exc).__name__}") from None
    forbidden = set(config.forbidden_imports)
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise Rejected(f"line {node.lineno}: relative import")
            modules = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            modules = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if not modules:
                raise Rejected(f"line {node.lineno}: __import__ of a computed name")
        for module in modules:
            if module.split(".")[0] in forbidden:
                raise Rejected(f"line {getattr(node, 'lineno', '?')}: forbidden import {module!r}")
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and any(map(_is_environment_base, n.bases))]
    if len(classes) != 1:
        names = ", ".join(c.name for c in classes) or "none"
        raise Rejected(f"expected exactly one top-level Environment subclass, found {names}")
    cls = classes[0]
    strings = _class_strings(cls)
    for attr in ("name", "description"):
        value = strings.get(attr)
        if not isinstance(value, str) or not value.strip():
            raise Rejected(f"class {cls.name} must set {attr} to a non-empty string literal")
    methods = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    missing = [r for r in ROUTINES if r not in methods]
    if missing:
        raise Rejected(f"class {cls.name} does not define {', '.join(missing)}")
    return cls.name


# --- the candidate, seen from the trusted side --------------------------------------------------


@dataclass
class _Candidate:
    code: str
    config: GateConfig
    isolation: str
    class_name: str = ""
    info: dict = field(default_factory=dict)
    samples: dict[float, list[dict]] = field(default_factory=dict)
    runs: int = 0
    _scores: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    _batched: dict[tuple[str, str], object] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [split_seed("train", i) for i in range(self.config.seeds)]

    def run(self, task: dict, limits: Limits | None = None) -> RunResult:
        self.runs += 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            return run(self.code, {**task, "class": self.class_name}, limits or self.config.limits(),
                       self.isolation)

    def sample_grid(self, seeds: list[int], describe: bool = False) -> tuple[dict | None, dict[float, list[dict]]]:
        """``sample`` of ``seeds`` at every configured difficulty in one run (after ``describe``
        when asked); returns (describe's value or None, {difficulty: checked instances})."""
        difficulties = self.config.difficulties
        # seed by seed, without the train/eval problem split: L4 judges how many problems there are
        tasks = [{"op": "sample", "seeds": seeds, "difficulty": d, "splits": False} for d in difficulties]
        if describe:
            tasks.insert(0, {"op": "describe"})
        base = self.config.limits()
        # each difficulty keeps the result size one sample run had; time and memory are shared
        limits = replace(base, result_bytes=base.result_bytes * len(difficulties))
        res = self.run({"op": "many", "tasks": tasks}, limits)
        where = ("describe and " if describe else "") + "sample(d=" + ", ".join(f"{d:g}" for d in difficulties) + ")"
        if res.status == "output_exceeded":
            raise Rejected(f"{where}: instances too large to return ({res.reason}; limit "
                           f"{self.config.max_instance_bytes} bytes of JSON per instance)")
        if not res.ok:
            raise Rejected(f"{where}: {res.status}: {res.reason}"[:400])
        values = res.value
        if type(values) is not list or len(values) != len(tasks):
            raise Rejected(f"{where}: expected {len(tasks)} results")
        info = values.pop(0) if describe else None
        out = {}
        for d, items in zip(difficulties, values):
            if type(items) is not list or len(items) != len(seeds):
                raise Rejected(f"sample(d={d:g}): expected a list of {len(seeds)} instances")
            out[d] = items
        return info, out

    def check_samples(self, seeds: list[int], samples: dict[float, list[dict]]) -> None:
        for d, items in samples.items():
            for seed, item in zip(seeds, items):
                self._check_instance(item, seed, d)

    def _check_instance(self, item: object, seed: int, difficulty: float) -> None:
        where = f"seed {seed} d={difficulty:g}"
        problem = instance_shape_error(item, seed, difficulty, nonempty=True)
        if problem:
            raise Rejected(f"{where}: {problem}")
        size = len(json.dumps(item["data"], separators=(",", ":")))
        if size > self.config.max_instance_bytes:
            raise Rejected(f"{where}: instance is {size} bytes of JSON (limit {self.config.max_instance_bytes})")
        if len(item["prompt"]) > self.config.max_prompt_chars:
            raise Rejected(f"{where}: prompt is {len(item['prompt'])} characters "
                           f"(limit {self.config.max_prompt_chars})")
        if len(item["reference"]) > MAX_ANSWER_CHARS:
            raise Rejected(f"{where}: reference longer than {MAX_ANSWER_CHARS} characters")

    def score(self, instance: dict, answer: str) -> tuple[float, str]:
        """(value, note) of the raw ``score`` routine. A scorer that raises counts as 0 (as in the
        framework's ``grade``); any other failure, or a value that is not a finite JSON number in
        [0, 1], rejects the candidate. Answers passed to ``prefetch`` before are not run again."""
        key = (_canon(instance["data"]), answer)
        if key in self._scores:
            return self._scores[key]
        if key in self._batched:
            out = self._interpret(instance, answer, self._batched.pop(key))
            self._scores[key] = out
            return out
        res = self.run({"op": "score", "instance": instance["data"], "answer": answer})
        where = f"score(seed {instance['seed']}, {answer[:40]!r})"
        if res.status == "error" and not ("JSON compliant" in res.reason or "JSON serializable" in res.reason):
            out = (0.0, f"raised {res.reason[:80]}")
        elif not res.ok:
            raise Rejected(f"{where}: {res.status}: {res.reason}"[:400])
        else:
            out = self._checked(where, res.value)
        self._scores[key] = out
        return out

    @staticmethod
    def _checked(where: str, value: object) -> tuple[float, str]:
        if not _is_number(value) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
            shown = json.dumps(value)[:40]
            raise Rejected(f"{where} returned {type(value).__name__} {shown}, "
                           "not a finite number in [0, 1]")
        return float(value), "ok"  # type: ignore[arg-type]

    def _interpret(self, instance: dict, answer: str, item: object) -> tuple[float, str]:
        """(value, note) of one ``score_many`` entry, with the same rules as ``score``."""
        where = f"score(seed {instance['seed']}, {answer[:40]!r})"
        if type(item) is dict and set(item) == {"value"}:
            return self._checked(where, item["value"])
        if type(item) is dict and set(item) == {"error", "message"}:
            return 0.0, f"raised {str(item['error'])[:100]}: {str(item['message'])[:500]}"[:87]
        if type(item) is dict and set(item) == {"unsendable", "message"}:
            error, text = str(item["unsendable"])[:100], str(item["message"])[:500]
            status = "invalid_result" if error == "TypeError" and "JSON serializable" in text else "error"
            raise Rejected(f"{where}: {status}: {error}: {text}"[:400])
        raise Rejected(f"{where}: invalid_result: not a score_many entry")

    def prefetch(self, pairs: list[tuple[dict, str]], recheck: list[tuple[dict, str]] = ()) -> list[object]:
        """Score every (instance, answer) not scored yet in as few sandbox runs as ``score_batch``
        allows (``score_many``); ``score`` then reads them from here. ``recheck`` pairs are scored
        again, in the last run after the others, and their raw entries returned (a pure scorer
        gives the same value). A run that fails as a whole rejects the candidate."""
        todo: dict[tuple[str, str], tuple[dict, str]] = {}
        for inst, answer in pairs:
            key = (_canon(inst["data"]), answer)
            if key not in self._scores and key not in self._batched:
                todo.setdefault(key, (inst, answer))
        items = list(todo.items())
        size = self.config.score_batch
        chunks = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
        again: list[object] = []
        for n, chunk in enumerate(chunks):
            extra = list(recheck) if n == len(chunks) - 1 else []
            sent = [(inst, answer) for _, (inst, answer) in chunk] + extra
            if not sent:
                continue
            res = self.run({"op": "score_many", "items": [[inst["data"], answer] for inst, answer in sent]})
            seeds = sorted({inst["seed"] for inst, _ in sent})
            where = f"score of {len(sent)} answers (seeds {', '.join(map(str, seeds))})"
            if not res.ok:
                raise Rejected(f"{where}: {res.status}: {res.reason}"[:400])
            if type(res.value) is not list or len(res.value) != len(sent):
                raise Rejected(f"{where}: expected a list of {len(sent)} scores")
            for (key, _), item in zip(chunk, res.value):
                self._batched[key] = item
            again = res.value[len(chunk):]
        return again

    def extract(self, response: str) -> tuple[str | None, str]:
        return extract_answer(response, allow_boxed=self.info.get("allow_boxed") is True)

    def grade(self, instance: dict, response: str) -> tuple[float, str]:
        """The framework's grading, with the answer extracted here (trusted) and only the raw
        ``score`` routine run in the sandbox."""
        answer, why = self.extract(response)
        if answer is None:
            return 0.0, why
        return self.score(instance, answer)


# --- the gates ----------------------------------------------------------------------------------


def _gate_l1(c: _Candidate) -> str:
    c.class_name = lint(c.code, c.config)
    return f"one Environment subclass {c.class_name} with the four routines; no forbidden import"


def _gate_l2(c: _Candidate) -> str:
    seeds = c.seeds
    # each seed twice in one process (L3 compares the halves); describe first, in the same run
    info, samples = c.sample_grid(seeds + seeds, describe=True)
    if type(info) is not dict:
        raise Rejected("describe did not return an object")
    for key in ("name", "description"):
        if type(info.get(key)) is not str or not info[key].strip():
            raise Rejected(f"{key} is not a non-empty string at run time")
    if info.get("oracle") not in ("equality", "feasibility"):
        raise Rejected(f"oracle must be 'equality' or 'feasibility', got {info.get('oracle')!r}")
    if type(info.get("allow_boxed")) is not bool:
        raise Rejected("allow_boxed is not a boolean")
    c.info = info
    c.check_samples(seeds + seeds, samples)
    c.samples = samples
    n = len(c.config.difficulties)
    return f"{len(seeds)} seeds x {n} difficulties sample within {c.config.wall_s:g}s per run"


def _gate_l3(c: _Candidate) -> str:
    seeds = c.seeds
    k = len(seeds)
    for d in c.config.difficulties:
        first, again = c.samples[d][:k], c.samples[d][k:]
        for seed, a, b in zip(seeds, first, again):
            if _canon(a) != _canon(b):
                raise Rejected(f"seed {seed} d={d:g}: differs when sampled twice in one process")
    _, fresh = c.sample_grid(seeds)
    c.check_samples(seeds, fresh)
    for d in c.config.difficulties:
        first = c.samples[d][:k]
        for seed, a, b in zip(seeds, first, fresh[d]):
            if _canon(a) != _canon(b):
                raise Rejected(f"seed {seed} d={d:g}: differs between two fresh processes")
        c.samples[d] = first
    return "identical JSON within one process and across two fresh processes"


def _gate_l4(c: _Candidate) -> str:
    cfg = c.config
    data = [_canon(i["data"]) for i in c.samples[cfg.distinct_difficulty]]
    distinct = len(set(data)) / len(data)
    if distinct < cfg.min_distinct_fraction:
        raise Rejected(f"only {len(set(data))}/{len(data)} distinct instances across seeds at "
                       f"d={cfg.distinct_difficulty:g} (need {cfg.min_distinct_fraction:.0%})")
    refs = {value_key(i["reference"]) for i in c.samples[cfg.distinct_difficulty]}
    distinct_refs = len(refs) / len(data)
    if distinct_refs < cfg.min_distinct_references:
        raise Rejected(f"only {len(refs)}/{len(data)} distinct references across seeds at "
                       f"d={cfg.distinct_difficulty:g} (need {cfg.min_distinct_references:.0%}): "
                       "one constant answer would pass most instances")
    low, high = min(cfg.difficulties), max(cfg.difficulties)
    pairs = list(zip(c.samples[low], c.samples[high]))
    changed = sum(_canon(a["data"]) != _canon(b["data"]) for a, b in pairs) / len(pairs)
    if changed < cfg.min_difficulty_changed:
        raise Rejected(f"difficulty ignored: d={low:g} and d={high:g} give the same instance for "
                       f"{1 - changed:.0%} of seeds")
    return (f"{distinct:.0%} distinct instances and {distinct_refs:.0%} distinct references across seeds; "
            f"difficulty changes {changed:.0%} of instances")


def probe_answers(reference: str) -> dict[str, str]:
    """Tolerance-abusing and type-mismatched answers for a reference (each must score 0)."""
    out = {"type:null": "null", "type:true": "true", "type:quoted": json.dumps(reference)}
    value = parse_int(reference)
    if value is not None:
        out["tolerance:plus_0.4"] = f"{value}.4"
        out["tolerance:plus_0.9"] = f"{value}.9"
        out["type:word"] = "abc"
    return {k: v for k, v in out.items() if v.strip() != reference.strip()}


def _sendable(c: _Candidate, responses: list[tuple[dict, str]]) -> list[tuple[dict, str]]:
    """(instance, extracted answer) for every response whose answer extracts (others score 0
    without a run)."""
    out = []
    for inst, response in responses:
        answer, _ = c.extract(response)
        if answer is not None:
            out.append((inst, answer))
    return out


def _wrong_answers(c: _Candidate, pool: list[dict], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(label, answer) pairs a correct scorer of ``pool[n]`` rejects unless many answers are valid:
    random answers of its reference's shape and the references of other instances in ``pool``."""
    ref = pool[n]["reference"]
    out = []
    for _ in range(c.config.random_rounds):
        out += [(f"random ({kind})", answer) for kind, answer in random_answers(ref, rng).items()]
    for k in range(1, min(c.config.other_answers, len(pool) - 1) + 1):
        out.append(("another instance's", pool[(n + k) % len(pool)]["reference"]))
    return out


@dataclass(frozen=True)
class _Probe:
    """One answer L5 sends to the scorer. ``family``: "wrong" (must fail), "chance" (feasibility
    oracles: counted against ``max_chance_pass_fraction``) or "valid?" (feasibility: not judged).
    ``extract``: sent as a response (extracted on the trusted side) rather than scored raw."""

    inst: dict
    label: str
    family: str
    shown: str
    text: str
    extract: bool = True

    def where(self) -> str:
        return f"[seed {self.inst['seed']} d={self.inst['difficulty']:g}]"


def _gate_l5(c: _Candidate) -> str:
    cfg = c.config
    leaks, total = _leaks(c)
    refs = _reference_scores_one(c)
    # Feasibility oracles accept any valid answer: a changed answer may be another valid one, so
    # perturbations are not judged; what exposes a weak verifier is that answers a correct one
    # accepts only by chance (random answers of the reference's shape, other instances' answers)
    # pass too often. Every other probe is wrong for any oracle and must fail on its own.
    feasibility = c.info.get("oracle") == "feasibility"
    probes = _probes(c, feasibility)
    ref_answers = _sendable(c, refs)
    again = c.prefetch([(q.inst, q.text) for q in probes if not q.extract]
                       + _sendable(c, [(q.inst, q.text) for q in probes if q.extract]), recheck=ref_answers)
    chance_passed, chance_total = _judge(c, probes)
    for (inst, answer), item in zip(ref_answers, again):
        value = c._interpret(inst, answer, item)[0]
        if value != 1.0:
            raise Rejected(f"seed {inst['seed']} d={inst['difficulty']:g}: the reference scores {value:g} "
                           "when scored again after the probes in the same process (scorer not pure)")
    probed = len(cfg.probe_difficulties) * cfg.probe_seeds
    if feasibility:
        judged = (f"malformed, empty, tolerance and type answers score 0 on {probed} instances; random answers "
                  f"of the reference's shape and other instances' answers pass {chance_passed}/{chance_total} "
                  f"(limit {cfg.max_chance_pass_fraction:.0%})")
    else:
        judged = (f"near-miss, malformed, empty, tolerance, type, random and other instances' answers score 0 "
                  f"on {probed} instances")
    return f"reference scores 1; {judged}; reference in {leaks}/{total} prompts"


def _leaks(c: _Candidate) -> tuple[int, int]:
    """How many sampled prompts state their reference, of how many; too many is a rejection."""
    cfg = c.config
    everything = [i for d in cfg.difficulties for i in c.samples[d]]
    leaks = sum(reference_leaks(i["prompt"], i["reference"]) for i in everything)
    if leaks > cfg.max_leak_fraction * len(everything):
        raise Rejected(f"answer leaked: the prompt states the reference in {leaks}/{len(everything)} instances")
    return leaks, len(everything)


def _reference_scores_one(c: _Candidate) -> list[tuple[dict, str]]:
    """The references of the probed instances as responses; each must score exactly 1."""
    cfg = c.config
    refs = [(inst, f"<answer>{inst['reference']}</answer>")
            for d in cfg.difficulties for inst in c.samples[d][: cfg.probe_seeds]]
    c.prefetch(_sendable(c, refs))
    for inst, response in refs:
        value, note = c.grade(inst, response)
        if value != 1.0:
            raise Rejected(f"seed {inst['seed']} d={inst['difficulty']:g}: the reference scores {value:g} ({note})")
    return refs


def _probes(c: _Candidate, feasibility: bool) -> list[_Probe]:
    """Empty, malformed, perturbed, typed, random and other instances' answers for each probed
    instance, without the ones that are the reference written another way ("00" for "0")."""
    cfg, rng = c.config, random.Random(0)
    by_chance = "chance" if feasibility else "wrong"
    probes: list[_Probe] = []
    for d in cfg.probe_difficulties:
        for n, inst in enumerate(c.samples[d][: cfg.probe_seeds]):
            ref = inst["reference"]
            probes += [_Probe(inst, "empty (raw)", "wrong", raw, raw, extract=False) for raw in ("", "   ")]
            probes += [_Probe(inst, f"malformed ({kind})", "wrong", response, response)
                       for kind, response in malformed_answers(ref).items()]
            probes += [_Probe(inst, f"perturbed ({kind})", "valid?" if feasibility else "wrong", answer,
                              f"<answer>{answer}</answer>") for kind, answer in perturbations(ref, rng).items()]
            probes += [_Probe(inst, kind.replace(":", " "), "wrong", answer, f"<answer>{answer}</answer>")
                       for kind, answer in probe_answers(ref).items()]
            probes += [_Probe(inst, label, by_chance, answer, f"<answer>{answer}</answer>")
                       for label, answer in _wrong_answers(c, c.samples[d], n, rng)]
    return [q for q in probes if q.family != "valid?" and not _is_reference(c, q.inst, q.text, q.extract)]


def _judge(c: _Candidate, probes: list[_Probe]) -> tuple[int, int]:
    """Reject on any "wrong" probe scoring above ``near_miss_max_score``, or when "chance" probes
    pass more often than ``max_chance_pass_fraction``; returns (chance passed, chance total)."""
    cfg = c.config
    top = cfg.near_miss_max_score
    chance_total = chance_passed = 0
    example = ""
    for q in probes:
        value = (c.grade(q.inst, q.text) if q.extract else c.score(q.inst, q.text))[0]
        if q.family == "chance":
            chance_total += 1
            chance_passed += value > top
            example = example or (f"{q.label} answer {q.shown[:60]!r} {q.where()}" if value > top else "")
        elif value > top:
            raise Rejected(f"scorer accepts {q.label} answer {q.shown[:60]!r} (score {value:g}) {q.where()}")
    if chance_total and chance_passed / chance_total > cfg.max_chance_pass_fraction:
        raise Rejected(f"scorer accepts {chance_passed}/{chance_total} random answers of the reference's shape "
                       f"and other instances' answers, which a correct verifier accepts only by chance, e.g. {example}")
    return chance_passed, chance_total


def _is_reference(c: _Candidate, inst: dict, text: str, extract: bool) -> bool:
    """Whether a probe's final answer is the instance's reference written another way."""
    answer = c.extract(text)[0] if extract else text.strip()
    return answer is not None and answer != "" and same_value(answer, inst["reference"])


GATES: tuple[tuple[str, Callable[[_Candidate], str]], ...] = tuple(
    zip(GATE_NAMES, (_gate_l1, _gate_l2, _gate_l3, _gate_l4, _gate_l5)))


def validate(code: str, config: GateConfig | None = None, mode: str = "auto") -> Verdict:
    """Run gates L1-L5 on the source of a candidate environment program.

    The candidate runs only inside ``worldsmith.sandbox.run`` (``mode``: ``auto``, ``bwrap`` or
    ``fallback``); raises ``SandboxUnavailable`` when ``mode="bwrap"`` cannot run here. Never raises
    for anything the candidate does.
    """
    config = config or GateConfig()
    isolation = resolve_mode(mode)  # type: ignore[arg-type]
    if isolation == "fallback":
        warnings.warn(FALLBACK_WARNING, RuntimeWarning, stacklevel=2)
    candidate = _Candidate(code=code, config=config, isolation=isolation)
    results: list[GateResult] = []
    failed = False
    for name, gate in GATES:
        if failed:
            results.append(GateResult(name, False, "skipped: an earlier gate failed", 0.0, skipped=True))
            continue
        started = time.monotonic()
        try:
            reason, passed = gate(candidate), True
        except Rejected as exc:
            reason, passed = str(exc), False
        results.append(GateResult(name, passed, reason, round(time.monotonic() - started, 3)))
        failed = not passed
    return Verdict(admitted=not failed, gates=results, isolation=isolation, runs=candidate.runs)


def validate_file(path: str | Path, config: GateConfig | None = None, mode: str = "auto") -> Verdict:
    """``validate`` on a file's text (read as UTF-8; OSError/UnicodeDecodeError propagate)."""
    return validate(Path(path).read_text(encoding="utf-8"), config, mode)

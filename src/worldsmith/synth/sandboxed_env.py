"""A candidate environment program used like an ``Environment``, every call run in the sandbox.

``SandboxedEnvironment(code)`` offers ``sample(seed, difficulty) -> Instance`` and
``grade(instance, response) -> Score`` (the framework's types), so calibration and novelty can use
a candidate that was never imported. Work is batched: ``sample_many`` samples many seeds in one
sandbox run (``sample_grid`` many difficulties too), ``grade_many`` scores a batch of responses in
one ``score_many`` run. Sampled instances are kept, so ``sample`` after ``sample_many`` costs no run;
``prefetch_grades`` scores a batch ahead of the ``grade`` calls that will read it.

Trust: as in the gates (docs/synth.md), the answer is extracted on the trusted side
(``envs.answers.extract_answer``) and only the raw ``score`` routine runs in the sandbox. Instances
must have exactly the six ``Instance`` fields with the right types, and a problem of the seed's
split (``envs.contract.problem_split``, checked here again); a score counts only when it is
a plain ``int``/``float`` (never ``bool`` or ``str``), finite and in [0, 1], and anything else
scores 0 with a reason. ``grade`` and ``grade_many`` never raise; ``sample`` raises
``SandboxedEnvError`` when the program cannot produce a well-formed instance.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import replace

from worldsmith.envs.answers import MAX_ANSWER_CHARS, extract_answer
from worldsmith.envs.contract import Instance, Score, check_difficulty, seed_split
from worldsmith.sandbox import FALLBACK_WARNING, Limits, RunResult, resolve_mode, run

INSTANCE_KEYS = frozenset({"env", "seed", "difficulty", "prompt", "reference", "data"})


def instance_shape_error(item: object, seed: int, difficulty: float, nonempty: bool = False) -> str | None:
    """Why a sampled instance that crossed the sandbox boundary is malformed, or None.

    Type-strict: the reported seed and difficulty must match the request exactly, text fields must
    be ``str`` (non-empty when ``nonempty``), and ``data`` a JSON object.
    """
    if type(item) is not dict or set(item) != INSTANCE_KEYS:
        return "not an instance object"
    if type(item["seed"]) is not int or item["seed"] != seed:
        return f"instance reports seed {item['seed']!r}"
    if type(item["difficulty"]) is not float or item["difficulty"] != difficulty:
        return f"instance reports difficulty {item['difficulty']!r}"
    for key in ("env", "prompt", "reference"):
        if type(item[key]) is not str or (nonempty and not item[key].strip()):
            return f"{key} is not a {'non-empty ' if nonempty else ''}string"
    if type(item["data"]) is not dict:
        return f"generate returned {type(item['data']).__name__}, not a JSON object"
    return None


class SandboxedEnvError(RuntimeError):
    """The candidate program failed to describe itself or to sample well-formed instances."""


def _canon(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _fail(reason: str, answer: str | None = None) -> Score:
    return Score(0.0, False, reason[:300], answer)


def check_score_value(value: object, answer: str | None = None) -> Score:
    """The verdict for one raw ``score`` return: a plain, finite ``int``/``float`` in [0, 1]
    counts; anything else (``bool``, ``str``, NaN, out of range) scores 0 with a reason."""
    if type(value) not in (int, float):
        shown = json.dumps(value)[:40] if value is None or isinstance(value, (bool, str)) else "…"
        return _fail(f"scorer returned {type(value).__name__} {shown}, not a number", answer)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return _fail(f"scorer returned {number!r}, outside [0, 1]", answer)
    passed = number == 1.0
    reason = "correct" if passed else ("partial credit" if number > 0 else "incorrect")
    return Score(number, passed, reason, answer)


def interpret_entry(item: object, answer: str) -> Score:
    """One ``score_many`` entry as a ``Score``, type-strict."""
    if type(item) is dict and set(item) == {"value"}:
        return check_score_value(item["value"], answer)
    if type(item) is dict and set(item) == {"error", "message"}:
        return _fail(f"scorer raised {str(item['error'])[:100]}: {str(item['message'])[:150]}", answer)
    if type(item) is dict and set(item) == {"unsendable", "message"}:
        return _fail(f"scorer returned a value that is not plain JSON ({str(item['unsendable'])[:100]})", answer)
    return _fail("invalid score entry from the sandbox", answer)


class SandboxedEnvironment:
    """An environment program run only through ``worldsmith.sandbox.run``.

    code: the program's source (one ``Environment`` subclass). name: a label for messages. mode: ``auto``, ``bwrap`` or ``fallback`` (resolved
    once; ``SandboxUnavailable`` for ``bwrap`` where it cannot run). limits: per run (default
    ``Limits()``). score_batch: most answers per ``score_many`` run.
    """

    def __init__(self, code: str, name: str = "candidate", mode: str = "auto", limits: Limits | None = None,
                 score_batch: int = 128) -> None:
        if not isinstance(code, str) or not code.strip():
            raise ValueError("code must be a non-empty string")
        if score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {score_batch}")
        self.code = code
        self.name = name
        self.limits = limits or Limits()
        self.isolation = resolve_mode(mode)  # type: ignore[arg-type]
        self.score_batch = score_batch
        self.runs = 0
        self.info: dict | None = None
        self._instances: dict[tuple[int, float], Instance] = {}
        self._prefetched: dict[tuple[str, str], Score] = {}

    def __repr__(self) -> str:
        return f"<SandboxedEnvironment {self.name} ({self.isolation})>"

    # --- running -----------------------------------------------------------------------------
    def _run(self, task: dict, limits: Limits | None = None) -> RunResult:
        self.runs += 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            return run(self.code, task, limits or self.limits, self.isolation)

    def _set_info(self, info: object) -> None:
        if type(info) is not dict or type(info.get("allow_boxed")) is not bool:
            raise SandboxedEnvError(f"{self.name}: describe did not return an object with a boolean allow_boxed")
        self.info = info

    def describe(self) -> dict:
        """The program's ``describe`` (name, description, oracle, allow_boxed, ...), one run, kept."""
        if self.info is None:
            res = self._run({"op": "describe"})
            if not res.ok:
                raise SandboxedEnvError(f"{self.name}: describe: {res.status}: {res.reason}"[:400])
            self._set_info(res.value)
        return self.info  # type: ignore[return-value]

    # --- sampling ----------------------------------------------------------------------------
    def _instance(self, item: object, seed: int, difficulty: float) -> Instance:
        problem = instance_shape_error(item, seed, difficulty)
        if problem:
            raise SandboxedEnvError(f"{self.name}: seed {seed} d={difficulty:g}: {problem}")
        inst = Instance(env=item["env"], seed=seed, difficulty=difficulty, prompt=item["prompt"],  # type: ignore[index]
                        reference=item["reference"], data=item["data"])  # type: ignore[index]
        # the framework's ``sample`` in the sandbox keeps each seed to its split's problems; a
        # program that replaced it could not be trusted to, so the split is checked here
        if inst.split != seed_split(seed):
            raise SandboxedEnvError(f"{self.name}: seed {seed} d={difficulty:g}: drew a {inst.split}-split "
                                    f"problem for a seed of the {seed_split(seed)} split")
        return inst

    def sample_grid(self, seeds: Sequence[int], difficulties: Sequence[float]) -> dict[float, list[Instance]]:
        """Instances of every seed at every difficulty, in one sandbox run (``describe`` joins it
        the first time). Instances already sampled are not sampled again."""
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"seed must be an integer, got {seed!r}")
        grid = [check_difficulty(d) for d in difficulties]
        todo = {d: [s for s in dict.fromkeys(seeds) if (s, d) not in self._instances] for d in grid}
        tasks = [{"op": "sample", "seeds": todo[d], "difficulty": d} for d in grid if todo[d]]
        if tasks:
            describe = self.info is None
            if describe:
                tasks.insert(0, {"op": "describe"})
            limits = replace(self.limits, result_bytes=self.limits.result_bytes * len(tasks))
            res = self._run({"op": "many", "tasks": tasks}, limits)
            if not res.ok:
                raise SandboxedEnvError(f"{self.name}: sample: {res.status}: {res.reason}"[:400])
            values = res.value
            if type(values) is not list or len(values) != len(tasks):
                raise SandboxedEnvError(f"{self.name}: sample: expected {len(tasks)} results")
            if describe:
                self._set_info(values.pop(0))
            for d, items in zip([d for d in grid if todo[d]], values):
                if type(items) is not list or len(items) != len(todo[d]):
                    raise SandboxedEnvError(f"{self.name}: sample(d={d:g}): expected {len(todo[d])} instances")
                for seed, item in zip(todo[d], items):
                    self._instances[(seed, d)] = self._instance(item, seed, d)
        return {d: [self._instances[(s, d)] for s in seeds] for d in grid}

    def sample_many(self, seeds: Sequence[int], difficulty: float = 0.0) -> list[Instance]:
        """``sample`` of many seeds in one sandbox run."""
        d = check_difficulty(difficulty)
        return self.sample_grid(seeds, [d])[d]

    def sample(self, seed: int, difficulty: float = 0.0) -> Instance:
        """The instance for (seed, difficulty); raises ``SandboxedEnvError`` when the program
        cannot produce a well-formed one."""
        return self.sample_many([seed], difficulty)[0]

    def forget_instances(self, keep: int = 0) -> None:
        """Drop the kept instances when more than ``keep`` are held (a long training run samples
        fresh seeds every step)."""
        if len(self._instances) > keep:
            self._instances.clear()

    # --- grading -----------------------------------------------------------------------------
    def _score_runs(self, pairs: list[tuple[dict, str]]) -> dict[tuple[str, str], Score]:
        """Score distinct (data, answer) pairs with ``score_many``, ``score_batch`` per run."""
        todo: dict[tuple[str, str], tuple[dict, str]] = {}
        for data, answer in pairs:
            todo.setdefault((_canon(data), answer), (data, answer))
        items = list(todo.items())
        out: dict[tuple[str, str], Score] = {}
        for start in range(0, len(items), self.score_batch):
            chunk = items[start:start + self.score_batch]
            res = self._run({"op": "score_many", "items": [[data, answer] for _, (data, answer) in chunk]})
            if not res.ok or type(res.value) is not list or len(res.value) != len(chunk):
                why = f"{res.status}: {res.reason}" if not res.ok else "malformed score_many result"
                for key, (_, answer) in chunk:
                    out[key] = _fail(f"scoring run failed ({why})", answer)
                continue
            for (key, (_, answer)), entry in zip(chunk, res.value):
                out[key] = interpret_entry(entry, answer)
        return out

    def grade_many(self, instances: Sequence[Instance | dict], responses: Sequence[object]) -> list[Score]:
        """Grade each response against its instance: trusted extraction, then one ``score_many``
        run per ``score_batch`` distinct answers. Never raises; failures score 0 with a reason."""
        try:
            if len(instances) != len(responses):
                raise ValueError(f"{len(instances)} instances for {len(responses)} responses")
            try:
                allow_boxed = self.describe()["allow_boxed"]
            except SandboxedEnvError as exc:
                return [_fail(f"cannot grade: {exc}") for _ in responses]
            verdicts: list[Score | None] = []
            pending: list[tuple[int, dict, str]] = []
            for i, (inst, response) in enumerate(zip(instances, responses)):
                data = inst.data if isinstance(inst, Instance) else inst
                if type(data) is not dict:
                    verdicts.append(_fail("instance data is not a JSON object"))
                    continue
                try:
                    answer, why = extract_answer(response, allow_boxed=allow_boxed, max_answer_chars=MAX_ANSWER_CHARS)
                except Exception as exc:
                    answer, why = None, f"extraction failed: {type(exc).__name__}"
                if answer is None:
                    verdicts.append(_fail(why))
                    continue
                key = (_canon(data), answer)
                if key in self._prefetched:
                    verdicts.append(self._prefetched[key])
                    continue
                verdicts.append(None)
                pending.append((i, data, answer))
            if pending:
                scored = self._score_runs([(data, answer) for _, data, answer in pending])
                for i, data, answer in pending:
                    verdicts[i] = scored[(_canon(data), answer)]
            return [v if v is not None else _fail("not graded") for v in verdicts]
        except Exception as exc:
            return [_fail(f"grading failed: {type(exc).__name__}: {exc}") for _ in responses]

    def grade(self, instance: Instance | dict, response: object) -> Score:
        """Grade one response (reads a verdict ``prefetch_grades`` left, else one sandbox run).
        Never raises."""
        try:
            return self.grade_many([instance], [response])[0]
        except Exception as exc:
            return _fail(f"grading failed: {type(exc).__name__}: {exc}")

    def prefetch_grades(self, instances: Sequence[Instance | dict], responses: Sequence[object]) -> None:
        """Grade a batch now so that the ``grade`` calls for the same (instance, response) pairs
        that follow read the verdicts instead of each starting a run (the latest batch is kept;
        the gates' L5 checked that the scorer is pure). Never raises."""
        try:
            allow_boxed = self.describe()["allow_boxed"]
        except SandboxedEnvError:
            return
        keys = []
        for inst, response in zip(instances, responses):
            data = inst.data if isinstance(inst, Instance) else inst
            try:
                answer, _ = extract_answer(response, allow_boxed=allow_boxed, max_answer_chars=MAX_ANSWER_CHARS)
            except Exception:
                answer = None
            if answer is not None and type(data) is dict:
                keys.append((data, answer))
        if keys:
            self._prefetched = self._score_runs(keys)


__all__ = ["SandboxedEnvError", "SandboxedEnvironment", "check_score_value", "interpret_entry"]

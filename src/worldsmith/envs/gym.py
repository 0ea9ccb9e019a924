"""reasoning-gym datasets as worldsmith environments: ``worldsmith.envs.get("rg:<dataset>")``.

Every dataset reasoning-gym registers becomes an environment named ``rg:<dataset>``:

- **sampling** is deterministic per (seed, difficulty): the environment's RNG (seeded from a stable
  hash of the name and the seed) draws the dataset seed, and the instance is item 0 of the dataset
  built with that seed. Datasets are built once per difficulty level and copied per sample when
  their construction does not depend on the seed (checked, not assumed). As for every environment,
  a question of the other split than the seed's is drawn again (``Environment.sample``), so train
  and eval seeds never share a question.
- **difficulty** in [0, 1] is mapped onto the dataset's curriculum where reasoning-gym defines one:
  each curriculum attribute with ``n`` levels gets level ``min(n - 1, floor(difficulty * n))``, and
  the configuration covers only that level's range. Levels whose configuration reasoning-gym
  cannot build or generate from fall back to the cumulative range, then to the level below.
  Datasets without a curriculum ignore difficulty (their description says so).
- **grading** is worldsmith's strict extraction (the last ``<answer>...</answer>``) followed by an
  exact comparison after trimming and collapsing whitespace: full credit on an exact match, none
  otherwise. reasoning-gym's own ``score_answer`` is never called unless asked for with
  ``make(dataset, use_rg_scorer=True)``: several of its scorers give partial credit and some run
  ``eval`` on the answer (see docs/reasoning-gym.md). Then it runs only in the sandbox
  (``worldsmith.sandbox``), one launch per batch of answers (``grade_many``, ``prefetch_grades``),
  each answer in its own forked process with a wall clock, a CPU limit and a guard that scores 0
  any answer whose scoring tried a side effect (a process, a write, the network).

reasoning-gym is imported only when an ``rg:`` name is resolved, never by ``import worldsmith``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import random
import sysconfig
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from worldsmith.envs.answers import extract_answer
from worldsmith.envs.contract import Environment, Instance, Score, prompt_of
from worldsmith.envs.registry import UnknownEnvironment, register_family
from worldsmith.sandbox import Limits, resolve_mode, run

PREFIX = "rg"
INSTALL_HINT = "reasoning-gym is not installed; pip install 'worldsmith[gym]'"
#: reasoning-gym answers can be long (move lists, grids); still bounded well below a response.
MAX_ANSWER_CHARS = 100_000
#: How many derived dataset seeds a sample tries when reasoning-gym fails to generate an item.
GENERATION_ATTEMPTS = 4
_PROBE_SEED = 1_000_003
_MAX_METADATA_DEPTH = 40

#: reasoning-gym's own scorer (``use_rg_scorer=True``) in the sandbox; every value PROPOSED.
RG_SCORE_WALL_S = 5.0  # wall clock of one answer's scoring (its own forked process)
RG_SCORE_CPU_S = 5  # CPU seconds of one answer's scoring
RG_SCORE_BATCH = 256  # most answers per sandbox launch
RG_SETUP_S = 60.0  # importing reasoning-gym and rebuilding a batch's items, per launch
RG_MEMORY_MB = 2048  # address space: reasoning-gym imports numpy and sympy

#: The program the sandbox runs: the in-sandbox scorer below, picked by the harness.
_SCORER_PROGRAM = """
from worldsmith.envs.gym import InSandboxScorer


class ReasoningGymScorer(InSandboxScorer):
    pass
"""


class ReasoningGymUnavailable(ImportError):
    """reasoning-gym is not installed; the message is one line saying how to install it."""


def _factory():
    try:
        import reasoning_gym.factory as factory
    except ImportError:
        raise ReasoningGymUnavailable(INSTALL_HINT) from None
    return factory


def datasets() -> list[str]:
    """Names of the reasoning-gym datasets (usable as ``rg:<name>``), sorted."""
    return sorted(_factory().DATASETS)


# --- building datasets --------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _state(dataset: object) -> dict:
    skip = {"seed", "config", "size", "_current_idx"}
    return {k: v for k, v in vars(dataset).items() if k not in skip}


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. numpy arrays, whose == is elementwise
        return False


@dataclasses.dataclass
class _Template:
    """A built dataset for one difficulty level; ``make(seed)`` gives the dataset for a seed."""

    dataset_cls: type
    config: Any
    dataset: Any
    copyable: bool
    level_note: str
    answerless: bool = False

    def make(self, seed: int):
        config = dataclasses.replace(self.config, seed=seed)
        if not self.copyable:
            return self.dataset_cls(config=config)
        dataset = copy.copy(self.dataset)
        dataset.seed = seed
        dataset.config = config
        return dataset


class _Source:
    """One reasoning-gym dataset: its classes, its curriculum and its built templates (cached)."""

    def __init__(self, name: str, factory) -> None:
        self.name = name
        self.dataset_cls, self.config_cls = factory.DATASETS[name]
        self.factory = factory
        self.has_curriculum = name in factory.CURRICULA
        self.level_counts: dict[str, int] = {}
        if self.has_curriculum:
            curriculum = factory.create_curriculum(name)
            self.level_counts = {attr: len(d.levels) for attr, d in curriculum.attributes.items()}
        self.lock = threading.Lock()
        self.templates: dict[tuple, _Template] = {}

    def levels_for(self, difficulty: float) -> tuple[tuple[str, int], ...]:
        return tuple(
            (attr, min(n - 1, int(math.floor(difficulty * n)))) for attr, n in self.level_counts.items()
        )

    def template(self, levels: tuple[tuple[str, int], ...]) -> _Template:
        found = self.templates.get(levels)
        if found is not None:
            return found
        with self.lock:
            found = self.templates.get(levels)
            if found is None:
                found = self.templates[levels] = self._build(levels)
        return found

    def _configs(self, levels: tuple[tuple[str, int], ...]):
        """Candidate configurations for ``levels``, best first, each with a note."""
        if self.has_curriculum:
            from reasoning_gym.coaching.base_curriculum import DefaultCurriculumContext, RangeAttributeMode

            modes = (RangeAttributeMode.UPPER_BOUND, RangeAttributeMode.INCLUSIVE)
            top = max((level for _, level in levels), default=0)
            for step in range(top + 1):
                lowered = {attr: max(0, level - step) for attr, level in levels}
                for mode in modes:
                    def build(lowered=lowered, mode=mode):
                        curriculum = self.factory.create_curriculum(self.name)
                        for attr, level in lowered.items():
                            curriculum.set_attr_level(attr, level)
                        context = DefaultCurriculumContext(mode=mode)
                        return curriculum.generate_configuration({"seed": _PROBE_SEED, "size": 1}, context)

                    note = f"levels {lowered} ({mode.value})" if step == 0 else f"levels {lowered} ({mode.value}, lowered)"
                    yield note, build
        yield "default configuration", lambda: self.config_cls(seed=_PROBE_SEED, size=1)

    def _build(self, levels: tuple[tuple[str, int], ...]) -> _Template:
        last: BaseException | None = None
        for note, build in self._configs(levels):
            try:
                config = build()
                dataset = self.dataset_cls(config=config)  # validates the configuration
            except Exception as exc:  # reasoning-gym raises assertion and value errors for bad levels
                last = exc
                continue
            seed, item, failure = self._probe(config)
            if item is None:
                last = failure
                continue
            copyable = self._copyable(config, dataset, seed, item)
            return _Template(self.dataset_cls, config, dataset, copyable, note, item.get("answer") is None)
        assert last is not None
        raise ValueError(f"rg:{self.name}: reasoning-gym could not build the dataset ({_one_line(last)})")

    def _probe(self, config) -> tuple[int, dict | None, BaseException | None]:
        """A seed and the item a fresh build gives for it; generation may fail for some seeds."""
        failure: BaseException | None = None
        for attempt in range(GENERATION_ATTEMPTS):
            seed = _PROBE_SEED + 7919 * attempt
            try:
                return seed, self.dataset_cls(config=dataclasses.replace(config, seed=seed))[0], None
            except Exception as exc:
                failure = exc
        return 0, None, failure

    def _copyable(self, config, dataset, seed: int, item: dict) -> bool:
        """Whether copying ``dataset`` and changing its seed gives what a fresh build gives: the
        state built from a few other seeds must be identical, and the copy must reproduce ``item``."""
        try:
            others = [self.dataset_cls(config=dataclasses.replace(config, seed=seed + k)) for k in (1, 2, 3)]
            if not all(_same(_state(other), _state(others[0])) for other in others[1:]):
                return False
            copied = _Template(self.dataset_cls, config, dataset, True, "").make(seed)[0]
        except Exception:
            return False
        return _same(copied.get("question"), item.get("question")) and _same(copied.get("answer"), item.get("answer"))

    def item(self, levels: tuple[tuple[str, int], ...], seed: int) -> tuple[int, dict, str]:
        """``(dataset seed used, item, configuration note)`` for ``seed``; a seed whose generation
        fails is replaced by derived ones."""
        template = self.template(levels)
        last: BaseException | None = None
        for attempt in range(GENERATION_ATTEMPTS):
            used = seed if attempt == 0 else random.Random(f"{self.name}:{seed}:{attempt}").getrandbits(32)
            try:
                return used, template.make(used)[0], template.level_note
            except Exception as exc:
                last = exc
        assert last is not None
        raise RuntimeError(f"rg:{self.name}: reasoning-gym failed to generate an item ({_one_line(last)})")


_SOURCES: dict[str, _Source] = {}
_SOURCES_LOCK = threading.Lock()


def _source(name: str) -> _Source:
    found = _SOURCES.get(name)
    if found is None:
        factory = _factory()
        with _SOURCES_LOCK:
            found = _SOURCES.get(name)
            if found is None:
                found = _SOURCES[name] = _Source(name, factory)
    return found


# --- plain data ---------------------------------------------------------------------------------

_DROP = object()


def json_safe(value: object, dropped: list[str] | None = None, path: str = "", depth: int = 0) -> object:
    """``value`` as plain JSON data: tuples become lists, numeric keys strings, numpy values
    Python numbers; anything else (objects, non-finite floats, sets of mixed types) is dropped and
    its path appended to ``dropped``. Returns ``_DROP`` for a dropped top-level value."""
    if depth > _MAX_METADATA_DEPTH:
        return _dropped(dropped, path)
    if value is None or isinstance(value, (bool, int, str)):
        return value if type(value) in (bool, int, str, type(None)) else _plain_scalar(value, dropped, path)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _dropped(dropped, path)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = str(key)
            elif isinstance(key, (bool, int, float)) or key is None:
                name = str(key) if not isinstance(key, float) or math.isfinite(key) else None
            else:
                name = None
            if name is None:
                _dropped(dropped, f"{path}.{key!r}")
                continue
            converted = json_safe(item, dropped, f"{path}.{name}", depth + 1)
            if converted is not _DROP:
                out[name] = converted
        return out
    if isinstance(value, (list, tuple)):
        items = (json_safe(x, dropped, f"{path}[{i}]", depth + 1) for i, x in enumerate(value))
        return [x for x in items if x is not _DROP]
    if isinstance(value, (set, frozenset)):
        try:
            ordered = sorted(value)
        except TypeError:
            return _dropped(dropped, path)
        return json_safe(ordered, dropped, path, depth)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return json_safe(value.tolist(), dropped, path, depth + 1)
    return _dropped(dropped, path)


def _plain_scalar(value: object, dropped: list[str] | None, path: str) -> object:
    for kind in (bool, int, str):
        if isinstance(value, kind):
            return kind(value)
    return _dropped(dropped, path)


def _dropped(dropped: list[str] | None, path: str) -> object:
    if dropped is not None:
        dropped.append(path or ".")
    return _DROP


def normalize(text: str) -> str:
    """Trim and collapse runs of whitespace to one space."""
    return " ".join(text.split())


# --- the environment ----------------------------------------------------------------------------


class ReasoningGymEnvironment(Environment):
    """Base class of the ``rg:<dataset>`` environments; ``make`` creates one subclass per dataset."""

    dataset: ClassVar[str] = ""
    use_rg_scorer: ClassVar[bool] = False
    oracle = "equality"
    answer_format = "the final answer"
    max_answer_chars = MAX_ANSWER_CHARS

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        source = _source(self.dataset)
        levels = source.levels_for(difficulty)
        used, item, configuration = source.item(levels, rng.getrandbits(32))
        answer = item.get("answer")
        if answer is None and not self.use_rg_scorer:
            raise ValueError(f"{self.name}: item has no reference answer")
        dropped: list[str] = []
        metadata = json_safe(item.get("metadata") or {}, dropped, "metadata")
        data = {
            "dataset": self.dataset,
            "rg_seed": used,
            "levels": dict(levels),
            "configuration": configuration,
            "question": str(item["question"]),
            "answer": None if answer is None else str(answer),
            "metadata": metadata if isinstance(metadata, dict) else {},
        }
        if dropped:
            data["dropped_metadata"] = dropped
        return data

    def solve(self, instance: dict) -> str:
        answer = instance["answer"]
        return "" if answer is None else answer

    def render(self, instance: dict) -> str:
        return prompt_of(instance["question"], self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if self.use_rg_scorer:
            verdict = self._sandbox_scores([(instance, answer)])[_key(instance, answer)]
            if verdict.reason.startswith(_SCORER_FAILED):
                raise RuntimeError(verdict.reason)
            return verdict.value
        reference = instance["answer"]
        if reference is None:
            return 0.0
        return float(normalize(answer) == normalize(reference))

    # --- reasoning-gym's scorer, in the sandbox ------------------------------------------------
    def grade(self, instance: Instance | dict, response: object) -> Score:
        """The contract's grade; with ``use_rg_scorer`` one sandbox run (or a verdict
        ``prefetch_grades`` left). Never raises."""
        if not self.use_rg_scorer:
            return super().grade(instance, response)
        return self.grade_many([instance], [response])[0]

    def grade_many(self, instances: Sequence[Instance | dict], responses: Sequence[object]) -> list[Score]:
        """Grade a batch: trusted extraction here, then (``use_rg_scorer``) one sandbox launch per
        ``RG_SCORE_BATCH`` distinct answers. Never raises; failures score 0 with a reason."""
        if not self.use_rg_scorer:
            return [super(ReasoningGymEnvironment, self).grade(i, r) for i, r in zip(instances, responses)]
        verdicts: list[Score | None] = []
        pending: list[tuple[dict, str]] = []
        for inst, response in zip(instances, responses):
            data, answer, failed = self._answer_of(inst, response)
            if failed is not None:
                verdicts.append(failed)
                continue
            known = self._prefetched.get(_key(data, answer))
            verdicts.append(known)
            if known is None:
                pending.append((data, answer))
        scored = self._sandbox_scores(pending) if pending else {}
        out = []
        for verdict, (inst, response) in zip(verdicts, zip(instances, responses)):
            if verdict is None:
                data, answer, _ = self._answer_of(inst, response)
                verdict = scored[_key(data, answer)]
            out.append(verdict)
        return out

    def prefetch_grades(self, instances: Sequence[Instance | dict], responses: Sequence[object]) -> None:
        """Score a batch now (one launch per ``RG_SCORE_BATCH`` answers) so that the ``grade``
        calls for the same pairs read the verdicts; the latest batch is kept. Never raises."""
        if not self.use_rg_scorer:
            return
        pairs = []
        for inst, response in zip(instances, responses):
            data, answer, failed = self._answer_of(inst, response)
            if failed is None:
                pairs.append((data, answer))
        self._prefetched = self._sandbox_scores(pairs) if pairs else {}

    def _answer_of(self, instance: Instance | dict, response: object) -> tuple[dict, str, Score | None]:
        data = instance.data if isinstance(instance, Instance) else instance
        if not isinstance(data, dict):
            return {}, "", Score(0.0, False, "instance data is not a JSON object")
        try:
            answer, why = extract_answer(response, allow_boxed=self.allow_boxed, max_answer_chars=self.max_answer_chars)
        except Exception as exc:
            return data, "", Score(0.0, False, f"extraction failed: {type(exc).__name__}")
        if answer is None:
            return data, "", Score(0.0, False, why)
        return data, answer, None

    _prefetched: dict = {}
    #: Sandbox launches this environment object made (one per batch of answers).
    sandbox_runs: int = 0

    def _sandbox_scores(self, pairs: list[tuple[dict, str]]) -> dict[tuple[str, str], Score]:
        """reasoning-gym's ``score_answer`` on distinct (instance, answer) pairs, in the sandbox."""
        todo = {_key(data, answer): (data, answer) for data, answer in pairs}
        items = list(todo.items())
        out: dict[tuple[str, str], Score] = {}
        for start in range(0, len(items), RG_SCORE_BATCH):
            chunk = items[start:start + RG_SCORE_BATCH]
            limits = Limits(wall_s=RG_SETUP_S + RG_SCORE_WALL_S * len(chunk), cpu_s=int(RG_SETUP_S),
                            memory_mb=RG_MEMORY_MB, result_bytes=4 * 1024 * 1024)
            task = {"op": "score_many", "items": [[data, answer] for _, (data, answer) in chunk],
                    "isolate": {"wall_s": RG_SCORE_WALL_S, "cpu_s": RG_SCORE_CPU_S, "guard": True}}
            self.sandbox_runs += 1
            try:
                res = run(_SCORER_PROGRAM, task, limits, resolve_mode("auto"), paths=_site_paths())
            except Exception as exc:  # SandboxUnavailable, a missing folder: nothing was scored
                for key, (_, answer) in chunk:
                    out[key] = Score(0.0, False, f"{_SCORER_FAILED}: {_one_line(exc)}"[:300], answer)
                continue
            if not res.ok or type(res.value) is not list or len(res.value) != len(chunk):
                why = f"{res.status}: {res.reason}" if not res.ok else "malformed result"
                for key, (_, answer) in chunk:
                    out[key] = Score(0.0, False, f"{_SCORER_FAILED} ({why})"[:300], answer)
                continue
            for (key, (_, answer)), entry in zip(chunk, res.value):
                out[key] = _verdict(entry, answer)
        return out


_SCORER_FAILED = "reasoning-gym's scorer could not run"


def _key(data: dict, answer: str) -> tuple[str, str]:
    return json.dumps(data, sort_keys=True, separators=(",", ":")), answer


def _verdict(entry: object, answer: str) -> Score:
    """One isolated ``score_many`` entry as a ``Score``: a plain finite number in [0, 1] counts
    (partial credit included); an error, a refused side effect or a timeout scores 0 with why."""
    if type(entry) is dict and set(entry) == {"value"}:
        value = entry["value"]
        if type(value) in (int, float) and math.isfinite(value) and 0.0 <= value <= 1.0:
            passed = value == 1.0
            reason = "correct" if passed else ("partial credit" if value > 0 else "incorrect")
            return Score(float(value), passed, reason, answer)
        return Score(0.0, False, f"reasoning-gym's scorer returned {str(value)[:40]!r}, not a number in [0, 1]", answer)
    if type(entry) is dict and set(entry) == {"error", "message"}:
        return Score(0.0, False, f"reasoning-gym's scorer: {str(entry['error'])[:60]}: {str(entry['message'])[:200]}",
                     answer)
    return Score(0.0, False, "reasoning-gym's scorer: invalid entry from the sandbox", answer)


def _site_paths() -> tuple[str, ...]:
    """The folders the sandbox binds read-only so reasoning-gym and its dependencies import."""
    import reasoning_gym

    found = [os.path.dirname(os.path.dirname(os.path.abspath(reasoning_gym.__file__)))]
    found += [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    return tuple(p for p in dict.fromkeys(os.path.realpath(p) for p in found) if os.path.isdir(p))


class InSandboxScorer(Environment):
    """reasoning-gym's own ``score_answer``, for the sandbox only: the harness runs it in a forked
    process per answer, after ``prepare_scoring`` rebuilt the batch's items once."""

    name = "rg:scorer"
    description = "reasoning-gym's score_answer on items regenerated from (dataset, levels, rg_seed)"

    def __init__(self) -> None:
        self._items: dict[tuple, tuple[Any, dict]] = {}

    def _item(self, instance: dict) -> tuple[Any, dict]:
        levels = tuple((str(attr), int(level)) for attr, level in instance["levels"].items())
        key = (str(instance["dataset"]), levels, int(instance["rg_seed"]))
        found = self._items.get(key)
        if found is None:
            dataset = _source(key[0]).template(levels).make(key[2])
            found = self._items[key] = (dataset, dataset[0])
        return found

    def prepare_scoring(self, instances: list) -> None:
        for instance in instances:
            try:
                self._item(instance)
            except Exception:  # the item's own scoring reports it
                pass

    def score(self, instance: dict, answer: str) -> float:
        dataset, entry = self._item(instance)
        return float(dataset.score_answer(answer, entry))


_CLASSES: dict[tuple[str, bool], type[ReasoningGymEnvironment]] = {}
_CLASSES_LOCK = threading.Lock()


def _describe(source: _Source) -> str:
    if source.has_curriculum:
        attrs = ", ".join(f"{a} ({n} levels)" for a, n in source.level_counts.items())
        how = f"difficulty maps onto its curriculum: {attrs}"
    else:
        how = "it has no curriculum, so difficulty is ignored"
    return f"reasoning-gym dataset {source.name!r}; {how}; graded by exact match after whitespace normalization"


def make(dataset: str, *, use_rg_scorer: bool = False) -> ReasoningGymEnvironment:
    """The environment ``rg:<dataset>``.

    ``use_rg_scorer=True`` grades with reasoning-gym's ``score_answer`` instead of exact matching:
    partial credit, and for some datasets ``eval`` of the answer text, so it runs only in the
    sandbox (raises ``SandboxUnavailable`` where no isolation works and the user did not opt in
    to unisolated runs).
    """
    factory = _factory()
    if use_rg_scorer:
        resolve_mode("auto")
    if not isinstance(dataset, str) or dataset not in factory.DATASETS:
        names = list(factory.DATASETS)
        close = difflib.get_close_matches(str(dataset), names, n=3, cutoff=0.6) if isinstance(dataset, str) else []
        hint = f"; did you mean {', '.join(f'{PREFIX}:{c}' for c in close)}?" if close else (
            f"; {len(names)} datasets are available, see worldsmith.envs.gym.datasets()"
        )
        raise UnknownEnvironment(f"unknown reasoning-gym dataset {dataset!r}{hint}")
    key = (dataset, bool(use_rg_scorer))
    cls = _CLASSES.get(key)
    if cls is None:
        source = _source(dataset)
        template = source.template(source.levels_for(0.0))  # a dataset that cannot be built fails here
        if template.answerless and not use_rg_scorer:
            raise ValueError(
                f"rg:{dataset} has no reference answers (its scorer checks validity instead), so exact "
                f"grading cannot work; use worldsmith.envs.gym.make({dataset!r}, use_rg_scorer=True)"
            )
        with _CLASSES_LOCK:
            cls = _CLASSES.get(key)
            if cls is None:
                description = _describe(source)
                if use_rg_scorer:
                    description = description.replace(
                        "graded by exact match after whitespace normalization", "graded by reasoning-gym's own scorer"
                    )
                cls = type(
                    f"RG_{dataset}",
                    (ReasoningGymEnvironment,),
                    {
                        "name": f"{PREFIX}:{dataset}",
                        "dataset": dataset,
                        "use_rg_scorer": bool(use_rg_scorer),
                        "description": description,
                        "__module__": __name__,
                    },
                )
                _CLASSES[key] = cls
    return cls()


register_family(PREFIX, make)

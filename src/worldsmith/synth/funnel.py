"""The admission funnel of environment synthesis, without RL (specs/rl-algorithms.md §1.4).

``run_funnel`` takes proposals one by one through every admission contract and records each step
in the archive:

1. archive the program (``Archive.add``; an identical source already decided is not re-judged);
2. gates L1–L5 in the sandbox (``gates.validate``); a failure rejects with the gate as reason;
   then, when a reviewer backend is given and ``review.enabled``, the policy's self-review
   (``synth.review``: K reviews, any reject rejects);
3. difficulty: calibrate against the solver through ``SandboxedEnvironment``; admission needs
   ``admit_low < â < admit_high`` (0 < â < 1), else "too hard" (â at or below the band) or
   "too easy" (at or above it);
4. novelty against the seed environments and the programs admitted so far (MiniLM embeddings when
   an embedder is given, else behavioural and code-structure signatures); at or above τ rejects as
   "not novel". Proposals are judged a batch at a time: the batch's mean pairwise
   similarity s̄ (its repetitiveness) sets the novelty bonus weight γ;
5. admitted.

Every line also carries the generator's reward for that proposal (``generator_reward``, the table
of specs/rl-algorithms.md §1.5, values in ``FunnelConfig.rewards``).

Outputs in ``out_dir``: ``funnel.jsonl`` (one line per proposal), ``summary.json`` (the stage
counts) and ``funnel.png`` (a bar chart of the stages).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worldsmith.envs.seeds import SEED_MODULES
from worldsmith.sandbox import FALLBACK_WARNING, Limits, resolve_mode
from worldsmith.synth.archive import Archive, Candidate
from worldsmith.synth.calibrate import CalibrationConfig, calibrate, calibration_seeds
from worldsmith.synth.gates import GATE_NAMES, GateConfig, validate
from worldsmith.synth.novelty import (
    NoveltyConfig,
    NoveltyItem,
    mean_pairwise_similarity,
    novelty,
    probe_seeds,
)
from worldsmith.synth.proposers import Proposal
from worldsmith.synth.review import ReviewConfig, self_review
from worldsmith.synth.sandboxed_env import SandboxedEnvError, SandboxedEnvironment

#: The funnel's stages, in order: how many proposals reached each.
STAGES = ("candidates", *(f"passed_{g.split('_')[0]}" for g in GATE_NAMES), "passed_review", "calibrated_in_band",
          "novel", "admitted")


class GeneratorRewards(BaseModel):
    """The generator's reward per outcome (specs/rl-algorithms.md §1.5; PROPOSED values). An
    admitted program earns Q(â) plus its novelty bonus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_failure: float = Field(-1.0, description=(
        "No program, or failed L1-L4 (also: crashed while sampling calibration or novelty instances)."))
    scorer_failure: float = Field(-0.5, description="Failed L5, the scorer contract.")
    review_reject: float = Field(0.0, description="Rejected by self-review (gate only, never rewarded: keep 0).")
    out_of_band: float = Field(0.0, description="Calibrated at â = 0 or â = 1 (too hard or too easy).")
    not_novel: float = Field(0.0, description="At or above the novelty gate τ (including exact duplicates).")


@dataclass
class FunnelRecord:
    """One proposal's way through the funnel: a line of ``funnel.jsonl`` (``to_json``).

    ``outcome`` is admitted, rejected or duplicate; ``stage`` where it stopped (a gate, review,
    calibration, novelty, admitted, or for a duplicate the archived program's status); the gates',
    review's, calibration's and novelty's verdicts as far as it got; ``reward`` the generator's reward.
    """

    index: int
    origin: str | None
    proposer: str | None
    name: str | None
    id: int | None = None
    gates: list[dict] | None = None
    isolation: str | None = None
    review: dict | None = None
    calibration: dict | None = None
    novelty: dict | None = None
    outcome: str = "pending"
    stage: str | None = None
    reason: str = ""
    archived_reason: str | None = None  # a duplicate: the archived program's status reason
    crashed: bool = False  # the program crashed while sampling calibration or novelty instances
    seconds: float = 0.0
    reward: float | None = None
    step: int | None = None  # the training step that proposed it (EvoEnv)
    readmitted: bool = False  # a duplicate of an admitted program put back into the pool (EvoEnv)
    start_difficulty: dict | None = None  # the difficulty search of an admitted program (EvoEnv)

    #: fields written only when set
    _OPTIONAL = {"archived_reason": None, "crashed": False, "step": None, "readmitted": False,
                 "start_difficulty": None}

    def to_json(self) -> dict:
        out = asdict(self)
        return {k: v for k, v in out.items() if not (k in self._OPTIONAL and v == self._OPTIONAL[k])}


def generator_reward(line: FunnelRecord, rewards: GeneratorRewards) -> float:
    """The generator's reward for one funnel record (its ``outcome``, ``stage`` and ``reason``)."""
    stage, outcome = line.stage, line.outcome
    if outcome == "admitted":
        cal, nov = line.calibration or {}, line.novelty or {}
        return float(cal.get("difficulty_reward") or 0.0) + float(nov.get("bonus") or 0.0)
    if outcome == "duplicate":
        return _archived_reward(line.stage, line.archived_reason or "", rewards)
    if stage == GATE_NAMES[-1]:
        return rewards.scorer_failure
    if stage in GATE_NAMES or line.crashed:
        return rewards.gate_failure
    return {"review": rewards.review_reject, "calibration": rewards.out_of_band,
            "novelty": rewards.not_novel}.get(stage, rewards.gate_failure)


def _archived_reward(status: str | None, reason: str, rewards: GeneratorRewards) -> float:
    """The reward of re-proposing an archived program: a copy of an admitted (or retired) one is
    not novel; a copy of a rejected one earns what the original earned."""
    if status != "rejected":
        return rewards.not_novel
    if reason.startswith(GATE_NAMES[-1]):
        return rewards.scorer_failure
    if reason.startswith(GATE_NAMES[:-1]) or reason.startswith(("calibration failed", "novelty probes failed")):
        return rewards.gate_failure
    if reason.startswith("review"):
        return rewards.review_reject
    if reason.startswith(("too hard", "too easy")):
        return rewards.out_of_band
    return rewards.not_novel


class FunnelConfig(BaseModel):
    """Settings of one funnel run: the three admission contracts and how programs are run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gates: GateConfig = Field(default_factory=GateConfig, description=(
        "Thresholds of gates L1–L5 (docs/synth.md); ``wall_s``/``cpu_s``/``memory_mb`` also limit "
        "every calibration and novelty run."))
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description=(
        "The difficulty contract: m instances at ``difficulty``, one solver answer each, admission "
        "band on â."))
    novelty: NoveltyConfig = Field(default_factory=NoveltyConfig, description=(
        "The novelty contract: λ, τ and the behavioural-signature probes."))
    seeds_in_novelty: tuple[str, ...] = Field(SEED_MODULES, description=(
        "Registered environments every candidate is also compared with for novelty (the seed "
        "environments, which are in the pool from the start); () compares with admitted programs only."))
    review: ReviewConfig = Field(default_factory=lambda: ReviewConfig(enabled=False), description=(
        "The semantic contract: K self-reviews after the gates (runs only when enabled and a "
        "reviewer backend is given; off by default here, since a tiny solver cannot review)."))
    rewards: GeneratorRewards = Field(default_factory=GeneratorRewards, description=(
        "The generator's reward for each outcome."))
    mode: Literal["auto", "bwrap", "fallback"] = Field("auto", description=(
        "Sandbox isolation for every run of a candidate (auto: bwrap where it works)."))
    seed: int = Field(0, description="Seed of the calibration instances and of the solver's sampling.")
    limit: int | None = Field(None, ge=0, description="Stop after this many proposals (None: until the proposer runs dry).")
    batch: int = Field(8, ge=1, le=1024, description="Proposals requested from the proposer at a time.")


    @field_validator("seeds_in_novelty")
    @classmethod
    def _registered(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from worldsmith import envs

        for name in names:
            try:
                envs.get(name)
            except KeyError as exc:
                raise ValueError(str(exc).strip("'\"")) from None
        return names


def _name_of(proposal: Proposal) -> str | None:
    origin = Path(proposal.origin) if proposal.origin else None
    return origin.stem if origin is not None and origin.suffix == ".py" else None


def _limits(cfg: FunnelConfig) -> Limits:
    return cfg.gates.limits()


def novelty_item(env: SandboxedEnvironment, id: str, cfg: NoveltyConfig) -> NoveltyItem:
    """The behavioural signature inputs of a sandboxed program (one sandbox run)."""
    seeds = probe_seeds(cfg.probe_seeds)
    grid = env.sample_grid(seeds, cfg.probe_difficulties)
    prompts, references = [], []
    for i in range(len(seeds)):
        for d in cfg.probe_difficulties:
            inst = grid[float(d)][i]
            prompts.append(inst.prompt)
            references.append(inst.reference)
    return NoveltyItem(id=id, code=env.code, prompts=tuple(prompts), references=tuple(references))


class _PrefetchingSolver:
    """Wraps the solver backend so that its answers to the calibration prompts are graded in one
    batch as soon as they exist; calibration's per-instance ``grade`` calls then read them."""

    def __init__(self, backend: Any, env: SandboxedEnvironment, instances: list) -> None:
        self.backend, self.env, self.instances = backend, env, instances

    def generate(self, prompts: list[str], params: Any) -> Any:
        out = self.backend.generate(prompts, params)
        if prompts == [inst.prompt for inst in self.instances] and len(out.texts) == len(prompts):
            self.env.prefetch_grades(self.instances, list(out.texts))
        return out


def draw_funnel(counts: dict[str, int], path: str | Path, title: str = "admission funnel",
                skipped: Iterable[str] = ()) -> Path:
    """A bar chart of the stage counts, written as PNG with matplotlib's Agg canvas; stages in
    ``skipped`` (e.g. a review that was turned off) are hatched and labelled "(off)"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    skipped = set(skipped)
    labels = [s.replace("_", " ") + (" (off)" if s in skipped else "") for s in STAGES]
    values = [int(counts.get(s, 0)) for s in STAGES]
    fig = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bars = ax.bar(range(len(values)), values, color=["#4c72b0"] * 6 + ["#8172b2", "#dd8452", "#55a868", "#c44e52"])
    for bar, stage in zip(bars, STAGES):
        if stage in skipped:
            bar.set_hatch("//")
            bar.set_alpha(0.35)
    for bar, v in zip(bars, values):
        ax.annotate(str(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=9)
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("programs")
    ax.set_title(title)
    ax.set_ylim(0, max(values + [1]) * 1.15)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def reference_items(names: Iterable[str], cfg: NoveltyConfig) -> list[NoveltyItem]:
    """Novelty inputs of trusted registered environments (sampled in-process), ids ``seed:<name>``."""
    import inspect

    from worldsmith import envs

    out = []
    for name in names:
        env = envs.get(name)
        out.append(NoveltyItem.from_environment(env, inspect.getsource(type(env)), f"seed:{name}", cfg))
    return out


class Funnel:
    """The admission funnel over one archive: judges proposals through gates L1-L5, self-review,
    calibration against ``backend`` and novelty, archives every verdict and counts the outcomes."""

    def __init__(self, archive: Archive, backend: Any, cfg: FunnelConfig, reviewer: Any = None,
                 embedder: Any = None) -> None:
        self.archive, self.backend, self.cfg, self.reviewer = archive, backend, cfg, reviewer
        self.embedder = embedder
        self._references: list[NoveltyItem] | None = None
        self.isolation = resolve_mode(cfg.mode)
        self.counts = dict.fromkeys(STAGES, 0)
        self.outcomes = {"admitted": 0, "rejected": 0, "duplicate": 0}
        self._items: dict[int, NoveltyItem | None] = {}

    @property
    def reviewing(self) -> bool:
        return self.cfg.review.enabled and self.reviewer is not None

    def env(self, source: str, name: str) -> SandboxedEnvironment:
        return SandboxedEnvironment(source, name, mode=self.isolation, limits=_limits(self.cfg),
                                    score_batch=self.cfg.gates.score_batch)

    def admitted_items(self, exclude: int) -> list[NoveltyItem]:
        """Novelty inputs of the seed environments and every admitted program (sampled once per
        program per run)."""
        if self._references is None:
            self._references = reference_items(self.cfg.seeds_in_novelty, self.cfg.novelty)
        out = list(self._references)
        for cand in self.archive.admitted():
            if cand.id == exclude:
                continue
            if cand.id not in self._items:
                try:
                    self._items[cand.id] = novelty_item(self.env(cand.source, cand.name or str(cand.id)),
                                                        str(cand.id), self.cfg.novelty)
                except SandboxedEnvError:
                    self._items[cand.id] = None
            item = self._items[cand.id]
            if item is not None:
                out.append(item)
        return out

    def reject(self, cid: int, line: FunnelRecord, stage: str, reason: str, crashed: bool = False) -> FunnelRecord:
        self.archive.set_status(cid, "rejected", reason[:500])
        self.outcomes["rejected"] += 1
        line.outcome, line.stage, line.reason, line.crashed = "rejected", stage, reason[:500], crashed
        return line

    def judge_batch(self, start: int, proposals: list[Proposal]) -> list[FunnelRecord]:
        """Judge a generator batch: each proposal through gates, review and calibration, then the
        survivors' novelty with the batch's repetitiveness s̄; every line gets its ``reward``."""
        lines: list[FunnelRecord] = []
        pending: list[tuple[int, SandboxedEnvironment]] = []
        for k, proposal in enumerate(proposals):
            line, env = self.judge_until_novelty(start + k, proposal)
            lines.append(line)
            if env is not None:
                pending.append((k, env))
        items: dict[int, NoveltyItem] = {}
        spent: dict[int, float] = {}
        for k, env in pending:
            started = time.monotonic()
            try:
                items[k] = novelty_item(env, str(lines[k].id), self.cfg.novelty)
            except SandboxedEnvError as exc:
                lines[k] = self.reject(lines[k].id, lines[k], "novelty", f"novelty probes failed: {exc}",
                                       crashed=True)
            spent[k] = time.monotonic() - started
        s_bar = (mean_pairwise_similarity(list(items.values()), self.cfg.novelty, self.embedder)
                 if len(items) > 1 else None)
        for k, _ in pending:
            started = time.monotonic()
            if k in items:
                lines[k] = self.judge_novelty(lines[k], items[k], s_bar, len(proposals))
            lines[k].seconds = round(lines[k].seconds + spent[k] + time.monotonic() - started, 3)
        for line in lines:
            line.reward = generator_reward(line, self.cfg.rewards)
        return lines

    def judge(self, index: int, proposal: Proposal) -> FunnelRecord:
        """Judge one proposal on its own (a batch of one)."""
        return self.judge_batch(index, [proposal])[0]

    def judge_until_novelty(self, index: int, proposal: Proposal) -> tuple[FunnelRecord, SandboxedEnvironment | None]:
        """The line of a proposal decided before the novelty stage, or its line so far and the
        sandboxed environment to probe for novelty."""
        name = _name_of(proposal)
        line = FunnelRecord(index, proposal.origin, proposal.proposer, name)
        self.counts["candidates"] += 1
        if proposal.source is None:
            self.outcomes["rejected"] += 1
            line.outcome, line.stage = "rejected", GATE_NAMES[0]
            line.reason = f"{GATE_NAMES[0]}: no usable program in the proposal (not archived)"
            return line, None
        cid, created = self.archive.add_or_get(proposal.source, proposal.proposer, proposal.parents, name=name)
        line.id = cid
        existing = self.archive.get(cid)
        if not created and existing.status != "candidate":
            self.counts["candidates"] -= 1
            self.outcomes["duplicate"] += 1
            line.outcome, line.stage, line.archived_reason = "duplicate", existing.status, existing.status_reason or ""
            line.reason = f"identical source already archived as {cid} ({existing.status})"
            return line, None
        started = time.monotonic()
        out, env = self._judge(cid, existing, line)
        out.seconds = round(time.monotonic() - started, 3)
        return out, env

    def _judge(self, cid: int, cand: Candidate, line: FunnelRecord) -> tuple[FunnelRecord, SandboxedEnvironment | None]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            verdict = validate(cand.source, self.cfg.gates, mode=self.isolation)
        self.archive.record_gates(cid, verdict.gates, verdict.isolation)
        line.gates = [{"name": g.name, "passed": g.passed, "skipped": g.skipped, "reason": g.reason}
                         for g in verdict.gates]
        line.isolation = verdict.isolation
        for gate in verdict.gates:
            if not gate.passed:
                return self.reject(cid, line, gate.name, f"{gate.name}: {gate.reason}"), None
            self.counts[f"passed_{gate.name.split('_')[0]}"] += 1

        cal_cfg = self.cfg.calibration
        env = self.env(cand.source, cand.name or str(cid))
        if self.reviewing:
            try:
                sample = env.sample(calibration_seeds(1, self.cfg.seed)[0], cal_cfg.difficulty)
                trace = {"prompt": sample.prompt, "reference": sample.reference, "difficulty": sample.difficulty}
            except SandboxedEnvError:
                trace = None
            review = self_review(cand.source, self.reviewer, self.cfg.review, seed=self.cfg.seed, trace=trace)
            line.review = review.to_json()
            if not review.passed:
                return self.reject(cid, line, "review", f"review: {review.reason}"), None
        self.counts["passed_review"] += 1

        try:
            instances = env.sample_many(calibration_seeds(cal_cfg.m, self.cfg.seed), cal_cfg.difficulty)
            solver = _PrefetchingSolver(self.backend, env, instances)
            cal = calibrate(env, solver, seed=self.cfg.seed, cfg=cal_cfg)
        except SandboxedEnvError as exc:
            return self.reject(cid, line, "calibration", f"calibration failed: {exc}", crashed=True), None
        self.archive.set_calibration(cid, cal.accuracy, cal.ci_low, cal.ci_high, cal.difficulty_reward)
        k = sum(cal.passed)
        line.calibration = {**cal.to_json(), "correct": k}
        if not cal.admitted_band:
            verdict_word = "too hard" if cal.accuracy <= cal_cfg.admit_low else "too easy"
            return self.reject(cid, line, "calibration",
                               f"{verdict_word}: â = {k}/{cal.n} = {cal.accuracy:.3f} (admission needs "
                               f"{cal_cfg.admit_low:g} < â < {cal_cfg.admit_high:g})"), None
        self.counts["calibrated_in_band"] += 1
        return line, env

    def judge_novelty(self, line: FunnelRecord, item: NoveltyItem, s_bar: float | None,
                      batch_size: int) -> FunnelRecord:
        cid = line.id
        result = novelty(item, self.admitted_items(cid), self.cfg.novelty, embedder=self.embedder,
                         batch_similarity=s_bar, batch_size=batch_size)
        self.archive.set_novelty(cid, result.score)
        line.novelty = {"score": result.score, "similarity": result.similarity, "nearest_id": result.nearest_id,
                           "passed_gate": result.passed_gate, "mode": result.parts.get("mode"),
                           "bonus": result.bonus, "gamma": result.parts.get("gamma"), "batch_similarity": s_bar}
        if not result.passed_gate:
            return self.reject(cid, line, "novelty",
                               f"not novel: similarity {result.similarity:.3f} to candidate {result.nearest_id} "
                               f"(τ = {self.cfg.novelty.tau:g})")
        self.counts["novel"] += 1
        self._items[cid] = item
        cal = line.calibration
        self.archive.set_status(cid, "admitted", f"funnel: gates passed, â = {cal['accuracy']:.3f}, "
                                                 f"novelty {result.score:.3f}")
        self.counts["admitted"] += 1
        self.outcomes["admitted"] += 1
        line.outcome, line.stage, line.reason = "admitted", "admitted", "admitted"
        return line


def _batches(proposer: Any, cfg: FunnelConfig) -> Iterable[list[Proposal]]:
    seen = 0
    while cfg.limit is None or seen < cfg.limit:
        want = cfg.batch if cfg.limit is None else min(cfg.batch, cfg.limit - seen)
        batch = proposer.propose(want)[:want]
        if not batch:
            return
        seen += len(batch)
        yield batch


def run_funnel(proposer: Any, archive: Archive, solver_backend: Any, cfg: FunnelConfig | None = None,
               out_dir: str | Path = "funnel", progress: bool = True, reviewer: Any = None,
               embedder: Any = None) -> dict:
    """Take every proposal of ``proposer`` (up to ``cfg.limit``, ``cfg.batch`` at a time) through
    gates, self-review by ``reviewer`` (a ``GenerationBackend``; skipped when None or
    ``cfg.review.enabled`` is off), calibration with ``solver_backend`` and novelty, recording each
    step in ``archive``. ``embedder`` (``novelty.load_embedder()``) switches novelty to MiniLM
    embeddings when ``cfg.novelty.mode`` allows; without one it compares signatures.

    Writes ``out_dir/funnel.jsonl`` (one object per proposal: ``index``, ``origin``, ``proposer``,
    ``name``, ``id``, ``outcome`` admitted/rejected/duplicate, ``stage`` where it stopped,
    ``reason``, ``gates``, ``isolation``, ``review``, ``calibration``, ``novelty``, ``reward``,
    ``seconds``),
    ``out_dir/summary.json`` and ``out_dir/funnel.png``. Returns the summary: ``counts`` (per
    stage, ``STAGES`` order; duplicates of already decided programs are not counted),
    ``outcomes``, ``archive`` (the archive's status counts), ``isolation``, ``seconds`` and the
    output paths.
    """
    from worldsmith.progress import progress_bar

    cfg = cfg or FunnelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    funnel = Funnel(archive, solver_backend, cfg, reviewer, embedder)
    total = cfg.limit
    if total is None and hasattr(proposer, "__len__") and not getattr(proposer, "cycle", False):
        total = max(0, len(proposer) - getattr(proposer, "position", 0))
    started = time.monotonic()
    jsonl = out / "funnel.jsonl"
    with open(jsonl, "w", encoding="utf-8") as fh, \
            progress_bar(total=total, desc="funnel", unit="program", disable=not progress) as bar:
        index = 0
        for batch in _batches(proposer, cfg):
            for line in funnel.judge_batch(index, batch):
                fh.write(json.dumps(line.to_json(), ensure_ascii=False) + "\n")
            fh.flush()
            index += len(batch)
            bar.update(len(batch))
            bar.set_postfix(admitted=funnel.outcomes["admitted"], rejected=funnel.outcomes["rejected"])
    summary = {
        "counts": funnel.counts,
        "outcomes": funnel.outcomes,
        "archive": archive.counts(),
        "isolation": funnel.isolation,
        "seconds": round(time.monotonic() - started, 3),
        "jsonl": str(jsonl),
        "png": str(out / "funnel.png"),
        "config": cfg.model_dump(mode="json"),
    }
    draw_funnel(funnel.counts, out / "funnel.png", skipped=() if funnel.reviewing else ("passed_review",))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


__all__ = ["STAGES", "Funnel", "FunnelConfig", "FunnelRecord", "GeneratorRewards", "draw_funnel", "generator_reward", "novelty_item",
           "reference_items", "run_funnel"]

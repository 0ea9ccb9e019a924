"""Verification at three levels (answer, process, executable), the hybrid reward, stage attribution
and the image-removed perturbation test.

A response to an image environment (``worldsmith.vision.envs``) may hold, besides its final
``<answer>``:

- claim lines ``name = value`` (the facts it read and the values it computed);
- one ``<program>...</program>``: Python assignments whose variables are the claims' names, ending
  with ``answer = ...`` (the executable form of its reasoning).

The three levels, reported side by side and never folded into one number before the end:

1. **Answer** (``Environment.grade``): the final answer against the reference.
2. **Process** (``check_process``): every claim whose name the instance knows is checked against
   the scene: a perception claim is *grounded* iff it agrees with the picture; a reasoning claim is
   valid iff its value is the right one. Names the instance does not know are unverifiable (None),
   neither credit nor fault.
3. **Executable** (``check_executable``): the program runs in the sandbox
   (``worldsmith.sandbox.run``; never in this process); its variables are compared with the
   claimed values of the same names and its ``answer`` with the final answer.

``hybrid_reward`` pays ``r_answer * (lam * process + (1 - lam) * executable)`` and pays nothing when
a checked step contradicts the scene or the computation, or the program contradicts a claim or
the answer: a right answer reached through a broken perception step or a contradicted
computation earns 0. ``attribute`` names the stage (perception / alignment / reasoning) of a
failure by its first failing step; ``image_ablation`` measures how much accuracy survives when
the image is removed (the share that rests on language priors).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from worldsmith.envs.answers import MAX_RESPONSE_CHARS
from worldsmith.envs.contract import Instance
from worldsmith.vision.envs import Fact, ImageEnvironment, parse_claim, parse_value

PROGRAM_OPEN, PROGRAM_CLOSE = "<program>", "</program>"
#: Longest program run by the executable check (characters); a longer one counts as not executing.
MAX_PROGRAM_CHARS = 4_000
#: Appended to the response's program inside the sandbox: returns its plain variables.
_COLLECT = """

def main(args):
    out = {}
    for _k, _v in list(globals().items()):
        if _k.startswith("_") or _k == "main" or type(_v) not in (int, float, str):
            continue
        out[_k] = _v if type(_v) is not str else _v[:64]
    return out
"""
STAGES = ("perception", "alignment", "reasoning")


class VerifyConfig(BaseModel):
    """Settings of the hybrid reward. Every default is PROPOSED (spec §5.2 gives the form, no values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lam: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the process score against the executable one.")
    no_trace_credit: float = Field(
        0.5, ge=0.0, le=1.0, description="Process score of a response that states no checkable claim.")
    no_program_credit: float = Field(
        0.5, ge=0.0, le=1.0, description="Executable score of a response without a program.")
    tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance when a program value is a float.")
    sandbox_mode: str = Field("auto", description="Isolation of the program run ('auto' = bubblewrap; see sandbox).")
    wall_s: float = Field(5.0, gt=0.0, description="Wall-clock limit of one program run, seconds.")
    memory_mb: int = Field(256, ge=32, description="Memory limit of one program run.")


@dataclass(frozen=True)
class StepVerdict:
    """One claim line checked against the instance's facts."""

    index: int
    line: str
    name: str
    claimed: int | str
    expected: int | str | None  # None: the instance does not know this name
    stage: str | None  # "perception" | "reasoning" | None (unverifiable)
    valid: bool | None  # None: unverifiable

    @property
    def grounded(self) -> bool | None:
        """For a perception claim, whether it agrees with the picture; None otherwise."""
        return self.valid if self.stage == "perception" else None


@dataclass(frozen=True)
class ProcessReport:
    steps: list[StepVerdict]

    @property
    def checked(self) -> list[StepVerdict]:
        return [s for s in self.steps if s.valid is not None]

    @property
    def score(self) -> float | None:
        """Share of checked claims that are valid; None when no claim could be checked."""
        checked = self.checked
        return sum(bool(s.valid) for s in checked) / len(checked) if checked else None

    @property
    def first_error(self) -> StepVerdict | None:
        return next((s for s in self.steps if s.valid is False), None)


@dataclass(frozen=True)
class ExecReport:
    """The executable level: ``status`` is ``absent`` (no program), ``too_long``, or the sandbox's."""

    status: str
    values: dict = field(default_factory=dict)
    n_claims: int = 0
    n_consistent: int = 0
    answer_consistent: bool | None = None
    contradictions: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def executes(self) -> bool:
        return self.status == "ok"

    @property
    def contradicted(self) -> bool:
        return self.executes and (bool(self.contradictions) or self.answer_consistent is False)

    @property
    def score(self) -> float | None:
        """1 when the program runs and agrees with every compared claim and the answer, 0 when it
        fails or contradicts; None when there is no program."""
        if self.status == "absent":
            return None
        return 1.0 if self.executes and not self.contradicted else 0.0


@dataclass(frozen=True)
class Verdict:
    """All three levels of one response and the hybrid reward built from them."""

    answer_value: float
    answer_reason: str
    process: ProcessReport
    executable: ExecReport
    reward: float
    gate: str | None  # why the reward was forced to 0 despite a right answer, or None

    @property
    def answer_correct(self) -> bool:
        return self.answer_value == 1.0

    def to_json(self) -> dict:
        return {"answer": self.answer_value, "answer_reason": self.answer_reason,
                "process_score": self.process.score,
                "steps": [asdict(s) | {"grounded": s.grounded} for s in self.process.steps],
                "executable": asdict(self.executable) | {"score": self.executable.score},
                "reward": self.reward, "gate": self.gate, "stage": attribute(self)}


# --- parsing ---------------------------------------------------------------------------------------


def split_response(response: str) -> tuple[list[str], str | None]:
    """``(claim lines outside the program and the answer, program text or None)``.

    The program is the last ``<program>...</program>``; claim lines are taken from the text
    before it with every ``<answer>...</answer>`` removed, so a claim cannot hide in either.
    """
    if not isinstance(response, str) or len(response) > MAX_RESPONSE_CHARS:
        return [], None
    program = None
    text = response
    end = text.rfind(PROGRAM_CLOSE)
    if end != -1:
        start = text.rfind(PROGRAM_OPEN, 0, end)
        if start != -1:
            program = text[start + len(PROGRAM_OPEN): end]
            text = text[:start] + text[end + len(PROGRAM_CLOSE):]
    while (a := text.find("<answer>")) != -1:
        b = text.find("</answer>", a)
        text = text[:a] + (text[b + len("</answer>"):] if b != -1 else "")
    return [ln.strip() for ln in text.splitlines() if ln.strip()], program


# --- the three levels ------------------------------------------------------------------------------


def check_process(env: ImageEnvironment, data: dict, response: str) -> ProcessReport:
    """Every ``name = value`` line of the response, checked against the instance's facts."""
    facts: dict[str, Fact] = env.facts(data)
    lines, _ = split_response(response)
    steps = []
    for line in lines:
        claim = parse_claim(line)
        if claim is None:
            continue
        name, value = claim
        fact = facts.get(name)
        if fact is None:
            steps.append(StepVerdict(len(steps), line, name, value, None, None, None))
        else:
            steps.append(StepVerdict(len(steps), line, name, value, fact.value, fact.stage, value == fact.value))
    return ProcessReport(steps)


def _same(program_value: object, claimed: int | str, tolerance: float) -> bool:
    if isinstance(claimed, str):
        return isinstance(program_value, str) and program_value.strip().lower() == claimed
    if isinstance(program_value, bool) or not isinstance(program_value, (int, float)):
        return False
    if isinstance(program_value, float):
        return math.isfinite(program_value) and math.isclose(program_value, claimed, rel_tol=tolerance, abs_tol=tolerance)
    return program_value == claimed


def check_executable(response: str, final_answer: str | None, cfg: VerifyConfig | None = None) -> ExecReport:
    """Run the response's program in the sandbox and compare its values with the response's claims."""
    from worldsmith.sandbox import Limits, run

    cfg = cfg or VerifyConfig()
    lines, program = split_response(response)
    if program is None:
        return ExecReport("absent")
    if len(program) > MAX_PROGRAM_CHARS:
        return ExecReport("too_long", reason=f"program longer than {MAX_PROGRAM_CHARS} characters")
    limits = Limits(wall_s=cfg.wall_s, cpu_s=max(1, int(cfg.wall_s)), memory_mb=cfg.memory_mb,
                    result_bytes=64 * 1024)
    result = run(program + _COLLECT, {"op": "main", "args": None}, limits, mode=cfg.sandbox_mode)
    if not result.ok or not isinstance(result.value, dict):
        return ExecReport(result.status if not result.ok else "invalid_result", reason=result.reason[:200])
    values = result.value
    claims = [c for c in (parse_claim(ln) for ln in lines) if c is not None]
    compared = [(name, value) for name, value in claims if name in values]
    contradictions = [f"{name}: claimed {value!r}, program {values[name]!r}" for name, value in compared
                      if not _same(values[name], value, cfg.tolerance)]
    answer_consistent = None
    if final_answer is not None and "answer" in values:
        parsed = parse_value(final_answer)
        answer_consistent = parsed is not None and _same(values["answer"], parsed, cfg.tolerance)
    return ExecReport("ok", values=values, n_claims=len(compared), n_consistent=len(compared) - len(contradictions),
                      answer_consistent=answer_consistent, contradictions=contradictions)


def verify(env: ImageEnvironment, instance: Instance | dict, response: str, cfg: VerifyConfig | None = None) -> Verdict:
    """The three levels of one response and its hybrid reward (never raises for a bad response)."""
    cfg = cfg or VerifyConfig()
    data = instance.data if isinstance(instance, Instance) else instance
    score = env.grade(data, response)
    process = check_process(env, data, response)
    executable = check_executable(response, score.answer, cfg)
    reward, gate = hybrid_reward(score.value, process, executable, cfg)
    return Verdict(score.value, score.reason, process, executable, reward, gate)


def hybrid_reward(answer_value: float, process: ProcessReport, executable: ExecReport,
                  cfg: VerifyConfig | None = None) -> tuple[float, str | None]:
    """``(reward, gate)``: ``r_answer * (lam * process + (1 - lam) * executable)``, forced to 0 (with
    the gate's reason) when a checked step or the program contradicts the scene or the claims."""
    cfg = cfg or VerifyConfig()
    first = process.first_error
    gate = None
    if first is not None:
        gate = f"{first.stage} step {first.index} contradicted: {first.name} = {first.claimed!r}, scene says {first.expected!r}"
    elif executable.contradicted:
        what = executable.contradictions[0] if executable.contradictions else "program answer differs from the final answer"
        gate = f"program contradicts the response: {what}"
    if gate is not None:
        return 0.0, gate if answer_value > 0 else None
    p = process.score if process.score is not None else cfg.no_trace_credit
    e = executable.score if executable.score is not None else cfg.no_program_credit
    return answer_value * (cfg.lam * p + (1.0 - cfg.lam) * e), None


# --- attribution and the perturbation test ---------------------------------------------------------


def attribute(verdict: Verdict) -> str | None:
    """The stage of a failure by its first failing step: ``perception`` (a visual claim the scene
    contradicts), ``alignment`` (the executable form disagrees with the stated reasoning, or does
    not run), ``reasoning`` (a computed value is wrong, or every step holds but the answer does
    not), ``unattributed`` (a wrong answer with nothing checkable); None when nothing failed."""
    first = verdict.process.first_error
    if first is not None:
        return "perception" if first.stage == "perception" else "reasoning"
    if verdict.executable.contradicted or verdict.executable.status not in ("ok", "absent"):
        return "alignment"
    if verdict.answer_correct:
        return None
    return "reasoning" if verdict.process.checked else "unattributed"


def attribution_report(verdicts: Sequence[Verdict]) -> dict:
    """Counts and shares of failures by stage, with the three levels' rates side by side."""
    n = len(verdicts)
    stages = Counter(s for s in (attribute(v) for v in verdicts) if s is not None)
    failures = sum(stages.values())
    processes = [v.process.score for v in verdicts if v.process.score is not None]
    programs = [v for v in verdicts if v.executable.status != "absent"]
    return {
        "responses": n,
        "answer_accuracy": sum(v.answer_correct for v in verdicts) / n if n else 0.0,
        "process_score": sum(processes) / len(processes) if processes else None,
        "programs": len(programs),
        "programs_consistent": sum(v.executable.score == 1.0 for v in programs),
        "mean_reward": sum(v.reward for v in verdicts) / n if n else 0.0,
        "gated_right_answers": sum(v.gate is not None for v in verdicts),
        "failures": failures,
        "stages": {s: stages.get(s, 0) for s in (*STAGES, "unattributed")},
        "shares": {s: stages.get(s, 0) / failures for s in (*STAGES, "unattributed")} if failures else {},
    }


#: ``answer(prompt, png_bytes_or_None) -> response``: a policy as the perturbation test sees it.
AnswerFn = Callable[[str, "bytes | None"], str]


def image_ablation(env: ImageEnvironment, instances: Sequence[Instance], answer: AnswerFn) -> dict:
    """Accuracy with the image and with the image removed (same prompts), per instance paired.

    ``prior_share`` is the accuracy without the image over the accuracy with it: the part of the
    policy's accuracy that language priors alone reproduce (1.0 = the image adds nothing).
    """
    from worldsmith.eval.stats import paired_difference
    from worldsmith.vision.images import from_b64

    with_image, without = [], []
    for inst in instances:
        png = from_b64(inst.data["image"]["png_b64"])
        with_image.append(float(env.grade(inst, answer(inst.prompt, png)).passed))
        without.append(float(env.grade(inst, answer(inst.prompt, None)).passed))
    n = len(instances)
    acc_with, acc_without = sum(with_image) / n, sum(without) / n
    diff = paired_difference(with_image, without) if n > 1 else None
    return {"instances": n, "accuracy_with_image": acc_with, "accuracy_without_image": acc_without,
            "image_gain": acc_with - acc_without,
            "image_gain_interval": [diff.low, diff.high] if diff else None,
            "prior_share": acc_without / acc_with if acc_with else None}

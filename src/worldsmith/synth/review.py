"""Self-review: EvoEnv's semantic contract (specs/rl-algorithms.md §1.4, docs/review.md).

A candidate program that passed the mechanical gates L1-L5 is read K times by the policy itself
(any ``GenerationBackend``) at temperature 0.6, with a structured checklist: data flow, instance
trace, algorithm, scorer. Each review ends with ``VERDICT: ACCEPT`` or ``VERDICT: REJECT``; any
reject rejects the candidate (the any-reject rule), and a review that marks a checklist item BUG is
a reject whatever its verdict line says.

This is a **gate only, never a reward**: the verdicts decide whether a candidate may enter the
pool, but no generator reward depends on them, so the generator cannot learn to please the
reviewer. Nothing here imports, runs or compiles the candidate; it is only shown as text.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from worldsmith.envs.contract import stable_hash

if TYPE_CHECKING:
    from worldsmith.policy.backend import GenerationBackend

#: The checklist, in the order the reviewer answers it.
CHECKLIST: tuple[str, ...] = ("data_flow", "instance_trace", "algorithm", "scorer")
#: Characters of a completion kept in ``Review.text``.
MAX_REVIEW_TEXT = 4000
#: Characters of each sample-instance field shown in the prompt.
MAX_TRACE_CHARS = 2000

# Linear-time patterns only: anchored, no nested quantifiers.
_LIST_MARK = re.compile(r"[-*+>#\s]*(?:\d{1,3}[.)]\s*)?")
_KEY = re.compile(
    r"(?:final )?(data[ _-]?flow|instance[ _-]?trace|algorithm|scorer|verdict)(?:[ _-]?check)?\s*[:=]\s*(?:[\[(]\s*)?([a-z]+)",
    re.IGNORECASE,
)
_ALTERNATIVES = re.compile(r"\s*[|/]")
_ITEM_WORDS = {"ok": "ok", "pass": "ok", "passed": "ok", "bug": "bug", "fail": "bug", "failed": "bug"}
_VERDICT_WORDS = {"accept": "accept", "accepted": "accept", "reject": "reject", "rejected": "reject"}


class ReviewConfig(BaseModel):
    """How the self-review gate samples and counts its reviews."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Run the review; when False every candidate passes it untouched.")
    k: int = Field(3, ge=1, description="Reviews per candidate (READ: K_rev = 3).")
    temperature: float = Field(0.6, gt=0.0, description="Sampling temperature of each review (READ: 0.6).")
    max_new_tokens: int = Field(1024, ge=16, description="Token budget of one review.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus filter of the review sampler (1.0 = off).")
    on_unparsed: Literal["reject", "abstain"] = Field(
        "reject",
        description="A review with no readable verdict counts as a reject, or is ignored (abstains); "
        "a candidate whose every review abstains is rejected anyway.",
    )
    max_program_chars: int = Field(
        20000, ge=1, description="Longer programs are rejected without asking the reviewer."
    )


# --- the prompt ---------------------------------------------------------------------------------------
_BRIEF = """\
You are reviewing a candidate environment for reasoning training. The program below defines one
subclass of `worldsmith.envs.contract.Environment`. It must:
- `generate(rng, difficulty)`: sample one instance using only `rng`; `difficulty` in [0, 1] changes it.
- `solve(instance)`: return the exact reference answer (an oracle, not a guess).
- `render(instance)`: state the whole problem in words, without giving the answer away.
- `score(instance, answer)`: 1.0 for a correct answer, 0.0 otherwise, never raising on any input.
It already runs, is deterministic, varies with seed and difficulty, and scores its own reference 1.0.
Your job is to find semantic bugs those checks miss: an environment whose reference or scorer is
wrong would reward wrong answers.
"""

_QUESTIONS = """\
Check each item and decide OK or BUG:
1. DATA_FLOW: Is every parameter `generate` creates used by `solve`/`score` and stated in the rendered
   question? Is anything read before it is set, or a value the solver needs missing from the prompt?
2. INSTANCE_TRACE: {trace_question}
3. ALGORITHM: Is `solve` correct for every instance `generate` can produce (smallest and largest sizes,
   ties, duplicates, empty or degenerate cases, off-by-one bounds)?
4. SCORER: Does `score` accept exactly the right answers (every valid answer for a feasibility task)
   and give 0.0 to near misses, partial answers, junk and wrong types, without raising?

Answer with one line per item, choosing OK or BUG, then a final verdict line, in this format:
DATA_FLOW: OK|BUG - one-line note
INSTANCE_TRACE: OK|BUG - one-line note
ALGORITHM: OK|BUG - one-line note
SCORER: OK|BUG - one-line note
VERDICT: ACCEPT|REJECT
(the last line is either `VERDICT: ACCEPT` or `VERDICT: REJECT`). Mark an item BUG only for a
concrete bug you can point to, and reject if any item is BUG.
"""


def _fenced(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _clip(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_TRACE_CHARS else text[:MAX_TRACE_CHARS] + " ...[truncated]"


def review_prompt(source: str, trace: dict | None = None) -> str:
    """The reviewer prompt for ``source``: a brief contract, the program, optionally one sampled
    instance (``trace`` with ``prompt``, ``reference`` and ``difficulty``), the four-item checklist
    and the answer format (``DATA_FLOW: OK|BUG - note`` ... ``VERDICT: ACCEPT|REJECT``)."""
    parts = [_BRIEF, "Program:", _fenced(source, "python"), ""]
    if trace:
        parts += [
            f"One instance it generated (difficulty {_clip(trace.get('difficulty', '?'))}):",
            "Rendered question:",
            _fenced(_clip(trace.get("prompt", ""))),
            f"Reference answer from solve: {_clip(trace.get('reference', ''))}",
            "",
        ]
        question = ("Walk the instance above through `solve` and `score` by hand. Is the reference "
                    "right for the rendered question, and would `score` give it 1.0 and a wrong answer 0.0?")
    else:
        question = ("Pick a small instance `generate` could produce at difficulty 0 and walk it through "
                    "`solve`, `render` and `score` by hand. Is the reference right, and scored 1.0?")
    parts.append(_QUESTIONS.format(trace_question=question))
    return "\n".join(parts)


# --- reading a review ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Review:
    """One parsed review.

    verdict   ``"accept"``, ``"reject"`` or ``"unparsed"`` (no verdict line and no BUG item)
    items     checklist key -> ``"ok"`` | ``"bug"``, for the items found
    flagged   the items marked BUG, in checklist order
    text      the raw completion, truncated to 4000 characters
    """

    verdict: str
    items: dict[str, str]
    flagged: tuple[str, ...]
    text: str

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "items": dict(self.items), "flagged": list(self.flagged),
                "text": self.text}


def _key_of(raw: str) -> str:
    word = re.sub(r"[ _-]", "", raw.lower())
    return {"dataflow": "data_flow", "instancetrace": "instance_trace"}.get(word, word)


def parse_review(text: str) -> Review:
    """Read a review completion. Tolerates case, markdown bold/italics/code marks, list markers,
    ``:`` or ``=``; the last VERDICT line and the last line of each item count. A verdict of ACCEPT
    with any item marked BUG is a reject; no verdict line and no BUG item is ``"unparsed"``.
    Linear in the length of ``text``."""
    if not isinstance(text, str):
        text = ""
    items: dict[str, str] = {}
    verdict: str | None = None
    for line in text.splitlines():
        if len(line) > 10_000:  # no checklist line is this long; skip without scanning it
            continue
        clean = line.replace("*", "").replace("_", " ").replace("`", "")
        clean = clean[_LIST_MARK.match(clean).end():]
        match = _KEY.match(clean)
        if match is None or _ALTERNATIVES.match(clean, match.end()):
            continue  # not a checklist line, or an echoed template such as "OK|BUG"
        key, word = _key_of(match.group(1)), match.group(2).lower()
        if key == "verdict":
            verdict = _VERDICT_WORDS.get(word, verdict)
        elif word in _ITEM_WORDS:
            items[key] = _ITEM_WORDS[word]
    ordered = {k: items[k] for k in CHECKLIST if k in items}
    flagged = tuple(k for k, v in ordered.items() if v == "bug")
    if flagged or verdict == "reject":
        final = "reject"
    elif verdict == "accept":
        final = "accept"
    else:
        final = "unparsed"
    return Review(verdict=final, items=ordered, flagged=flagged, text=text[:MAX_REVIEW_TEXT])


# --- the gate -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewResult:
    """The gate's decision: ``passed``, a one-line ``reason``, every review, and the wall time."""

    passed: bool
    reason: str
    reviews: tuple[Review, ...]
    seconds: float

    def to_json(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "seconds": round(self.seconds, 3),
                "reviews": [r.to_json() for r in self.reviews]}


def review_seed(source: str, seed: int = 0) -> int:
    """The sampling seed of the reviews of ``source``: stable across processes, < 2**62."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return stable_hash("self-review", seed, digest) % 2**62


def _decide(reviews: tuple[Review, ...], cfg: ReviewConfig) -> tuple[bool, str]:
    k = len(reviews)
    notes = []
    for i, r in enumerate(reviews, 1):
        if r.verdict == "reject":
            why = ", ".join(r.flagged) if r.flagged else "verdict REJECT"
            notes.append(f"review {i}/{k} rejected: {why}")
    unparsed = sum(r.verdict == "unparsed" for r in reviews)
    if unparsed == k:
        return False, f"no readable review: {k}/{k} reviews had no readable verdict"
    if unparsed and cfg.on_unparsed == "reject":
        notes.append(f"{unparsed}/{k} reviews had no readable verdict")
    if notes:
        return False, "; ".join(notes)
    accepted = sum(r.verdict == "accept" for r in reviews)
    tail = f", {unparsed} without a readable verdict (abstained)" if unparsed else ""
    return True, f"{accepted}/{k} reviews accepted{tail}"


def self_review(
    source: str,
    backend: GenerationBackend,
    cfg: ReviewConfig | None = None,
    *,
    seed: int = 0,
    trace: dict | None = None,
) -> ReviewResult:
    """Review ``source`` K times with ``backend`` (one ``generate`` call of K copies of the prompt)
    and apply the any-reject rule. Exceptions from the backend propagate."""
    from worldsmith.policy.backend import SamplingParams  # imported here: keeps this module light

    cfg = cfg or ReviewConfig()
    start = time.perf_counter()
    if not cfg.enabled:
        return ReviewResult(True, "self-review disabled", (), 0.0)
    if len(source) > cfg.max_program_chars:
        reason = f"too long to review: {len(source)} chars > {cfg.max_program_chars}"
        return ReviewResult(False, reason, (), time.perf_counter() - start)
    params = SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=review_seed(source, seed),
    )
    rollouts = backend.generate([review_prompt(source, trace)] * cfg.k, params)
    texts = list(rollouts.texts)
    if len(texts) != cfg.k:
        raise ValueError(f"backend returned {len(texts)} completions for {cfg.k} review prompts")
    reviews = tuple(parse_review(t) for t in texts)
    passed, reason = _decide(reviews, cfg)
    return ReviewResult(passed, reason, reviews, time.perf_counter() - start)

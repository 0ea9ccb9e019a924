"""DeltaRubric: one policy as a pairwise multimodal judge in two roles (spec §1).

Role 1, the *planner*, reads (image, question, response A, response B) and writes a neutral
checklist of checkable differences between the two responses. Role 2, the *verifier*, reads the
same plus the checklist, checks each item against the image and ends with ``<answer>A</answer>``
or ``<answer>B</answer>``.

Reward rules (spec §1.4, PROPOSED there; implemented as stated):

- verifier: ``r_V = 1`` iff the parsed verdict equals the gold label; a response without exactly
  one parsable final verdict gets ``format_penalty`` (default 0, the spec's optional -0.5 is a
  config value);
- planner: ``r_P(c) = mean_k r_V(v_k)`` over the K verdicts sampled with checklist c, and 0 when
  c is empty, over ``max_items`` items or ``max_checklist_chars`` characters, or names a winner
  (``checklist_problems``); optional shaping subtracts the success rate of verifying with an
  empty checklist (``shaping="empty_baseline"``).

Multi-role group advantages (§1.5): planner advantages are normalised over the G checklists of an
example; verifier advantages within each group of K verdicts sharing (example, checklist), or over
all G*K verdicts (``verifier_norm="example"``). ``swap`` is the A/B augmentation (label flipped);
``judge`` averages the verdict over both orders at inference, and ``position_flips`` counts the
pairs whose verdict changes with the order (position bias).

``DeltaRubricReward`` is the method plug-in that makes the judge a reward model for open-ended
responses in GRPO: each completion is judged against its instance's reference response, both
orders, and its reward becomes P(completion preferred). It is handed to the trainer as a factory
(``Trainer(methods=[lambda t: DeltaRubricReward(t, judge_policy)])``) because the judge is a model
the run supplies.

``DeltaRubricRoles`` (registered, switched on by ``train.deltarubric.enabled``) trains the two
roles of the run's own policy: each step it draws train-split preference pairs (``vision.preference``,
positions at random: the A/B augmentation), samples G checklists per pair and K verdicts per
checklist, scores both roles by the rules above, and adds a planner batch and a verifier batch
with their role-specific advantages to the step's update (``Method.extra_roles``), each weighted
by ``weight``. The policy's main batch (its pool) trains in the same update.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith.rl.methods import Method, StepContext, register_method

#: ``generate(prompts, images) -> texts``: the judge policy as this module drives it (a
#: ``VisionPolicy``-like callable; images are PNG bytes or None per row).
JudgePolicy = Callable[[Sequence[str], Sequence["bytes | None"]], list[str]]

LABELS = ("A", "B")


class DeltaRubricConfig(BaseModel):
    """DeltaRubric's settings; defaults are the spec's suggested values (§1.5, PROPOSED there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checklists: int = Field(4, ge=1, description="G: checklists sampled per example. PROPOSED (spec §1.5).")
    verdicts: int = Field(4, ge=1, description="K: verdicts sampled per checklist. PROPOSED (spec §1.5).")
    max_items: int = Field(8, ge=1, description="Most checklist items a planner may write. PROPOSED (spec §1.3).")
    max_checklist_chars: int = Field(4000, ge=1, description="Longest checklist accepted, characters. PROPOSED.")
    format_penalty: float = Field(0.0, le=0.0, description="Verifier reward of a broken format (spec: 0, or -0.5).")
    shaping: Literal["none", "empty_baseline"] = Field(
        "none", description="Planner reward minus the empty-checklist success rate ('empty_baseline'). PROPOSED.")
    verifier_norm: Literal["checklist", "example"] = Field(
        "checklist", description="Verifier advantage normalised per checklist group (spec) or per example (ablation).")
    eps: float = Field(1e-6, gt=0.0, description="Added to the standard deviation when normalising advantages.")
    both_orders: bool = Field(True, description="Judge both A/B orders at inference and average.")


@dataclass(frozen=True)
class PreferencePair:
    """One pairwise example: an image, a question, two responses and the gold label ('A' or 'B')."""

    question: str
    response_a: str
    response_b: str
    label: str
    image: bytes | None = None
    category: str = "general"
    detail: str = ""


def swap(pair: PreferencePair) -> PreferencePair:
    """The A/B-swapped copy with the label flipped (the position-bias augmentation)."""
    return replace(pair, response_a=pair.response_b, response_b=pair.response_a,
                   label="B" if pair.label == "A" else "A")


# --- prompts ---------------------------------------------------------------------------------------


def planner_prompt(pair: PreferencePair, max_items: int = 8) -> str:
    return ("Role: planner. Do not judge. Compare the two responses to the question about the image and list "
            f"up to {max_items} neutral, checkable points where they differ or make claims the image can confirm "
            "or refute (objects and counts, colours, sizes, positions, values read, computations, things that "
            "may not be there). Write each point as a question about the image.\n"
            f"Question: {pair.question}\n[A] {pair.response_a}\n[B] {pair.response_b}\n"
            "<checklist>\n1. ...\n</checklist>")


def verifier_prompt(pair: PreferencePair, checklist: str) -> str:
    return ("Role: verifier. Check each point of the checklist against the image and the question, say what "
            "you see and which response agrees (A, B, both, neither), then pick the more accurate response.\n"
            f"Question: {pair.question}\n[A] {pair.response_a}\n[B] {pair.response_b}\n"
            f"<checklist>\n{checklist}\n</checklist>\n"
            "Format: <verification>1. evidence -> A|B|both|neither</verification><answer>A|B</answer>")


def direct_prompt(pair: PreferencePair) -> str:
    """The no-checklist judge's prompt (the direct-verdict baseline)."""
    return (f"Which response answers the question about the image more accurately?\nQuestion: {pair.question}\n"
            f"[A] {pair.response_a}\n[B] {pair.response_b}\nAnswer <answer>A</answer> or <answer>B</answer>.")


# --- parsing and the reward rules ------------------------------------------------------------------

_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*])\s+(\S.*)$")
#: A response named by its slot: "A", "[B]", "Response A", "response b" (a bare letter counts only
#: in upper case, so the article "a" never does).
_SIDE = r"(?:(?i:response)\s*\[?(?i:[ab])\]?|\[?[AB]\]?)"
#: Phrases that make a checklist name a winner, matched on each item.
_VERDICT_PATTERNS = [re.compile(p) for p in (
    rf"\b{_SIDE}\s+(?i:is|seems|looks)\s+(?:\w+\s+)?(?i:better|correct|right|preferred|more\s+accurate|accurate"
    r"|superior|wrong|incorrect|worse|hallucinat\w*)",
    rf"(?i:\b(?:prefer|choose|pick|select))\s+{_SIDE}(?![\w])",
    rf"(?i:\b(?:the\s+)?(?:answer|verdict|winner|judg(?:e)?ment))\s*(?i:is|:|=)\s*{_SIDE}(?![\w])",
    rf"\b{_SIDE}\s+(?i:wins)\b",
    r"(?i:<answer>)",
)]


def parse_checklist(text: object) -> list[str] | None:
    """The items of the last ``<checklist>...</checklist>`` (numbered or bulleted lines), or None
    when there is no closed checklist."""
    if not isinstance(text, str):
        return None
    end = text.rfind("</checklist>")
    start = text.rfind("<checklist>", 0, end) if end != -1 else -1
    if start == -1:
        return None
    body = text[start + len("<checklist>"): end]
    items = []
    for line in body.splitlines():
        match = _ITEM.match(line)
        if match and match.group(1).strip() not in ("...", "…"):
            items.append(match.group(1).strip())
    return items


def checklist_problems(text: object, cfg: DeltaRubricConfig | None = None) -> str | None:
    """Why a checklist earns nothing (one line), or None when it is acceptable: missing, empty, too
    long, too many items, or an item that names a winner (the neutrality rule)."""
    cfg = cfg or DeltaRubricConfig()
    if isinstance(text, str) and len(text) > cfg.max_checklist_chars:
        return f"checklist longer than {cfg.max_checklist_chars} characters"
    items = parse_checklist(text)
    if items is None:
        return "no <checklist>...</checklist>"
    if not items:
        return "empty checklist"
    if len(items) > cfg.max_items:
        return f"{len(items)} items, more than {cfg.max_items}"
    for i, item in enumerate(items, 1):
        for pattern in _VERDICT_PATTERNS:
            if pattern.search(item):
                return f"item {i} names a winner: {item[:60]!r}"
    return None


def parse_verdict(text: object) -> str | None:
    """'A' or 'B' from exactly one final ``<answer>`` tag; None for anything else (no tag, two
    tags, 'A or B', a tag inside the checklist echoed back)."""
    if not isinstance(text, str) or text.count("<answer>") != 1 or text.count("</answer>") != 1:
        return None
    start, end = text.find("<answer>"), text.find("</answer>")
    if end < start:
        return None
    verdict = text[start + len("<answer>"): end].strip().upper()
    return verdict if verdict in LABELS else None


def verifier_reward(text: object, label: str, cfg: DeltaRubricConfig | None = None) -> float:
    """``1[verdict = label]``; ``format_penalty`` when the verdict cannot be parsed."""
    cfg = cfg or DeltaRubricConfig()
    verdict = parse_verdict(text)
    if verdict is None:
        return cfg.format_penalty
    return float(verdict == label)


def planner_reward(checklist: object, verifier_rewards: Sequence[float], cfg: DeltaRubricConfig | None = None,
                   empty_baseline: float | None = None) -> float:
    """The checklist's utility to the verifier: the mean reward of its K verdicts; 0 when the
    checklist breaks the format or the neutrality rule. With ``shaping="empty_baseline"`` the
    success rate of verifying with an empty checklist (``empty_baseline``) is subtracted."""
    cfg = cfg or DeltaRubricConfig()
    if checklist_problems(checklist, cfg) is not None or not verifier_rewards:
        return 0.0
    value = sum(max(0.0, r) for r in verifier_rewards) / len(verifier_rewards)
    if cfg.shaping == "empty_baseline":
        if empty_baseline is None:
            raise ValueError("shaping='empty_baseline' needs the empty-checklist success rate")
        value -= empty_baseline
    return value


def _normalise(x: torch.Tensor, eps: float) -> torch.Tensor:
    std = x.std(unbiased=False) if x.numel() > 1 else torch.zeros((), dtype=x.dtype)
    return (x - x.mean()) / (std + eps)


def role_advantages(planner_rewards: torch.Tensor, verifier_rewards: torch.Tensor,
                    cfg: DeltaRubricConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Role-specific advantages of one example: planner (G,) over its G checklists; verifier (G, K)
    within each checklist's K verdicts (or over all G*K with ``verifier_norm="example"``)."""
    cfg = cfg or DeltaRubricConfig()
    if planner_rewards.dim() != 1 or verifier_rewards.dim() != 2 or verifier_rewards.shape[0] != planner_rewards.shape[0]:
        raise ValueError(f"need planner (G,) and verifier (G, K) rewards, got {tuple(planner_rewards.shape)} "
                         f"and {tuple(verifier_rewards.shape)}")
    planner = _normalise(planner_rewards.float(), cfg.eps)
    v = verifier_rewards.float()
    if cfg.verifier_norm == "example":
        verifier = _normalise(v.flatten(), cfg.eps).view_as(v)
    else:
        verifier = torch.stack([_normalise(row, cfg.eps) for row in v])
    return planner, verifier


@dataclass
class RoleBatch:
    """The sequences of one example's G checklists and G*K verdicts with their rewards and advantages."""

    planner_prompts: list[str]
    checklists: list[str]
    verifier_prompts: list[list[str]]
    verdicts: list[list[str]]
    planner_rewards: torch.Tensor
    verifier_rewards: torch.Tensor
    planner_advantages: torch.Tensor
    verifier_advantages: torch.Tensor


def role_batches(policy: JudgePolicy, pair: PreferencePair, cfg: DeltaRubricConfig | None = None) -> RoleBatch:
    """Sample G checklists and K verdicts per checklist for ``pair`` and score both roles."""
    cfg = cfg or DeltaRubricConfig()
    g, k = cfg.checklists, cfg.verdicts
    plan = planner_prompt(pair, cfg.max_items)
    checklists = policy([plan] * g, [pair.image] * g)
    ver_prompts = [[verifier_prompt(pair, c)] * k for c in checklists]
    flat = policy([p for row in ver_prompts for p in row], [pair.image] * (g * k))
    verdicts = [flat[i * k:(i + 1) * k] for i in range(g)]
    r_v = torch.tensor([[verifier_reward(v, pair.label, cfg) for v in row] for row in verdicts])
    empty = None
    if cfg.shaping == "empty_baseline":
        blank = policy([verifier_prompt(pair, "")] * k, [pair.image] * k)
        empty = sum(max(0.0, verifier_reward(v, pair.label, cfg)) for v in blank) / k
    r_p = torch.tensor([planner_reward(c, r_v[i].tolist(), cfg, empty) for i, c in enumerate(checklists)])
    a_p, a_v = role_advantages(r_p, r_v, cfg)
    return RoleBatch([plan] * g, checklists, ver_prompts, verdicts, r_p, r_v, a_p, a_v)


# --- inference -------------------------------------------------------------------------------------


#: The static-rubric baseline's fixed checklist: the same generic points for every pair.
STATIC_RUBRIC = ("1. Are the objects each response mentions present in the image?\n"
                 "2. Are the counts, colours and positions each response states those in the image?\n"
                 "3. Are the values each response reads from the image right?\n"
                 "4. Is each response's computation correct?")


def judge(policy: JudgePolicy, pair: PreferencePair, cfg: DeltaRubricConfig | None = None,
          mode: Literal["deltarubric", "direct", "static"] = "deltarubric") -> dict:
    """P(A preferred) from one pass per order (both orders when ``both_orders``), and the verdicts.

    ``deltarubric``: the planner writes the checklist, the verifier uses it; a checklist that
    breaks the rules is replaced by an empty one (the judge always answers). ``direct``: the
    no-checklist judge. ``static``: the verifier with the fixed ``STATIC_RUBRIC``."""
    cfg = cfg or DeltaRubricConfig()
    orders = [pair, swap(pair)] if cfg.both_orders else [pair]
    votes, verdicts, rejected = [], [], 0
    for i, order in enumerate(orders):
        if mode == "deltarubric":
            checklist = policy([planner_prompt(order, cfg.max_items)], [order.image])[0]
            if checklist_problems(checklist, cfg) is not None:
                rejected += 1
                checklist = ""
            else:
                checklist = "\n".join(f"{j}. {item}" for j, item in enumerate(parse_checklist(checklist), 1))
            text = policy([verifier_prompt(order, checklist)], [order.image])[0]
        elif mode == "static":
            text = policy([verifier_prompt(order, STATIC_RUBRIC)], [order.image])[0]
        elif mode == "direct":
            text = policy([direct_prompt(order)], [order.image])[0]
        else:
            raise ValueError(f"unknown judge mode {mode!r}; valid: deltarubric, direct, static")
        verdict = parse_verdict(text)
        verdicts.append(verdict)
        if verdict is not None:
            # in the swapped order, "A" names the original B
            votes.append(1.0 if (verdict == "A") == (i == 0) else 0.0)
    p_a = sum(votes) / len(votes) if votes else 0.5
    return {"p_a": p_a, "verdict": "A" if p_a > 0.5 else "B" if p_a < 0.5 else None, "verdicts": verdicts,
            "rejected_checklists": rejected}


def position_flips(results: Sequence[dict]) -> float:
    """Share of pairs judged in both orders whose verdict names the same *position* both times
    (the judge followed the slot, not the content): the position-bias rate."""
    both = [r["verdicts"] for r in results if len(r["verdicts"]) == 2 and None not in r["verdicts"]]
    return sum(v[0] == v[1] for v in both) / len(both) if both else 0.0


def benchmark_accuracy(pairs: Sequence[PreferencePair], results: Sequence[dict]) -> dict:
    """Overall accuracy (per pair) and macro accuracy over the categories, VL-RewardBench style."""
    by: dict[str, list[float]] = {}
    for pair, res in zip(pairs, results, strict=True):
        by.setdefault(pair.category, []).append(float(res["verdict"] == pair.label))
    overall = [x for xs in by.values() for x in xs]
    per = {c: sum(xs) / len(xs) for c, xs in sorted(by.items())}
    return {"overall": sum(overall) / len(overall) if overall else 0.0,
            "macro": sum(per.values()) / len(per) if per else 0.0, "categories": per, "pairs": len(overall)}


# --- the reward-model plug-in ----------------------------------------------------------------------


class DeltaRubricReward(Method):
    """GRPO rewards from the DeltaRubric judge: each completion against its instance's reference
    response, in both orders; the reward is P(completion preferred). Owns its config and metrics."""

    name = "deltarubric"

    def __init__(self, trainer, judge_policy: JudgePolicy, cfg: DeltaRubricConfig | None = None,
                 reference: Callable[[object], str] | None = None) -> None:
        super().__init__(trainer)
        self.judge_policy = judge_policy
        self.dr_cfg = cfg or DeltaRubricConfig()
        self.reference = reference or (lambda inst: getattr(inst, "reference", ""))
        self.judged = 0

    def shape_rewards(self, ctx: StepContext, rewards: torch.Tensor) -> tuple[torch.Tensor, dict]:
        texts = ctx.rollouts.texts
        out, results = [], []
        for inst, text in zip(ctx.instances, texts, strict=True):
            image = _instance_png(inst)
            pair = PreferencePair(inst.prompt, text, self.reference(inst), "A", image)
            res = judge(self.judge_policy, pair, self.dr_cfg)
            results.append(res)
            out.append(res["p_a"])
        self.judged += len(out)
        shaped = torch.tensor(out, dtype=rewards.dtype, device=rewards.device)
        metrics = {f"{self.name}/p_preferred": float(shaped.mean()),
                   f"{self.name}/rejected_checklists": sum(r["rejected_checklists"] for r in results) / len(results),
                   f"{self.name}/position_bias": position_flips(results)}
        return shaped, metrics

    def state_dict(self) -> dict:
        return {"judged": self.judged}

    def load_state_dict(self, state: dict) -> None:
        self.judged = int(state.get("judged", 0))


def _instance_png(inst) -> bytes | None:
    data = getattr(inst, "data", None)
    image = data.get("image") if isinstance(data, dict) else None
    if not isinstance(image, dict) or not isinstance(image.get("png_b64"), str):
        return None
    import base64

    return base64.b64decode(image["png_b64"])


# --- training the two roles ------------------------------------------------------------------------


class DeltaRubricTrainConfig(BaseModel):
    """``train.deltarubric``: train the policy's planner and verifier roles beside its main batch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Add the planner and verifier role batches to every update.")
    pairs_per_step: int = Field(2, ge=1, description="Preference pairs drawn per step (train split).")
    difficulty: float = Field(0.5, ge=0.0, le=1.0, description="Difficulty of the scenes the pairs come from.")
    categories: tuple[str, ...] = Field(("general", "hallucination", "reasoning"), min_length=1,
                                        description="Pair categories, drawn in turn.")
    weight: float = Field(1.0, gt=0.0, description="Weight of each role's loss in the update. PROPOSED.")
    planner_tokens: int = Field(256, ge=1, description="Generation budget of a checklist.")
    verifier_tokens: int = Field(128, ge=1, description="Generation budget of a verification and verdict.")
    microbatch_size: int = Field(16, ge=1, description="Role rows per forward/backward.")
    judge: DeltaRubricConfig = Field(default_factory=DeltaRubricConfig, description="G, K and the reward rules.")


@register_method
class DeltaRubricRoles(Method):
    """The planner and verifier roles of the run's policy, trained with role-specific advantages."""

    name = "deltarubric_roles"

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.train.deltarubric.enabled

    @classmethod
    def check_config(cls, cfg) -> None:
        c = cfg.train.deltarubric
        if not c.enabled:
            return
        from worldsmith.vision.preference import CATEGORIES

        unknown = [x for x in c.categories if x not in CATEGORIES]
        if unknown:
            raise ValueError(f"train.deltarubric.categories: unknown {unknown[0]!r}; valid: {', '.join(CATEGORIES)}")
        if c.judge.shaping != "none":
            raise ValueError("train.deltarubric.judge.shaping: role training supports 'none' only")

    def __init__(self, trainer) -> None:
        super().__init__(trainer)
        self.pairs_seen = 0

    def pair(self, step: int, i: int) -> PreferencePair:
        """Pair ``i`` of ``step``: its category in turn, a train-split scene, its position at random."""
        from worldsmith.envs import registry
        from worldsmith.envs.contract import split_seed, stable_hash
        from worldsmith.vision.preference import SOURCES, make_pair

        c = self.cfg.train.deltarubric
        n = step * c.pairs_per_step + i
        category = c.categories[n % len(c.categories)]
        draw = stable_hash("deltarubric", self.cfg.train.seed, step, i)
        env = registry.get(SOURCES[category][draw % len(SOURCES[category])])
        return make_pair(env, split_seed("train", draw % 10**9), category, draw // 7, c.difficulty)

    def extra_roles(self, step: int, metrics: dict) -> list:
        from worldsmith.envs.contract import stable_hash

        c, j = self.cfg.train.deltarubric, self.cfg.train.deltarubric.judge
        g, k = j.checklists, j.verdicts
        pairs = [self.pair(step, i) for i in range(c.pairs_per_step)]
        base = replace(self.trainer.sampling_params(step), row_seeds=None)
        plan_rows = [p for p in pairs for _ in range(g)]
        plans = self._sample([planner_prompt(p, j.max_items) for p in plan_rows], [p.image for p in plan_rows],
                             replace(base, max_new_tokens=c.planner_tokens, seed=stable_hash("dr-plan", base.seed) % 2**62))
        rejected = [checklist_problems(text, j) is not None for text in plans.texts]
        shown = ["" if bad else "\n".join(f"{n}. {item}" for n, item in enumerate(parse_checklist(text), 1))
                 for text, bad in zip(plans.texts, rejected)]
        ver_rows = [(r, p) for r, p in enumerate(plan_rows) for _ in range(k)]
        verdicts = self._sample([verifier_prompt(p, shown[r]) for r, p in ver_rows], [p.image for _, p in ver_rows],
                                replace(base, max_new_tokens=c.verifier_tokens,
                                        seed=stable_hash("dr-verify", base.seed) % 2**62))
        r_v = torch.tensor([verifier_reward(text, p.label, j) for (_, p), text in zip(ver_rows, verdicts.texts)],
                           dtype=torch.float32).view(len(pairs), g, k)
        r_p = torch.tensor([[planner_reward(plans.texts[a * g + b], r_v[a, b].tolist(), j) for b in range(g)]
                            for a in range(len(pairs))], dtype=torch.float32)
        adv = [role_advantages(r_p[a], r_v[a], j) for a in range(len(pairs))]
        self.pairs_seen += len(pairs)
        metrics.update({
            f"{self.name}/planner_reward": float(r_p.mean()),
            f"{self.name}/verifier_accuracy": float((r_v == 1.0).float().mean()),
            f"{self.name}/checklist_rejected": sum(rejected) / len(rejected),
            f"{self.name}/verdict_missing": sum(parse_verdict(t) is None for t in verdicts.texts) / len(verdicts.texts),
        })
        return [("planner", self._batch(plans, torch.cat([a for a, _ in adv])), c.weight, c.microbatch_size),
                ("verifier", self._batch(verdicts, torch.cat([v.flatten() for _, v in adv])), c.weight,
                 c.microbatch_size)]

    def _sample(self, prompts: list[str], images: list, params):
        backend = self.trainer.backend
        extra = {"images": images} if getattr(backend, "takes_images", False) else {}
        return backend.generate(prompts, params, **extra)

    def _batch(self, rollouts, advantages: torch.Tensor):
        """A role's rows as a trainer ``Batch``: per-row advantages over its completion tokens, the
        old (and reference) log-probs of the current policy."""
        from worldsmith.rl.trainer import Batch

        t = self.trainer
        device = rollouts.completion_mask.device
        old = t.logprobs(t.acc.unwrap_model(t.model), rollouts)
        ref = t.logprobs(t.ref_model, rollouts) if t.ref_model is not None else None
        adv = advantages.to(device)
        return Batch(instances=[], rollouts=rollouts, rewards=adv, passed=[], group_ids=torch.arange(len(adv), device=device),
                     advantages=adv[:, None] * rollouts.completion_mask, old_logp=old, ref_logp=ref)

    def postfix(self, row: dict) -> dict:
        value = row.get(f"{self.name}/verifier_accuracy")
        return {"judge": f"{value:.2f}"} if value is not None else {}

    def state_dict(self) -> dict:
        return {"pairs_seen": self.pairs_seen}

    def load_state_dict(self, state: dict) -> None:
        self.pairs_seen = int(state.get("pairs_seen", 0))

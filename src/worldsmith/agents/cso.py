"""CSO, verified critical-step optimisation: DPO on the steps where a better action provably
turns the policy's own failure into a success.

For each failed training episode of the policy, at every step t:

1. the PRM scores the policy's own action a_t (``r_pol``) and K expert alternatives (``r_j``);
   a step is a candidate when ``r_pol < gamma_low`` and ``max_j r_j > gamma_high``;
2. branch rollout: replay actions 1..t-1 (the exact state, ``Session.replay``), execute the best
   alternative a+, and let the **policy** finish (at most ``max_additional_steps`` more actions);
3. only when that branch ends correct is (context_t, chosen = a+, rejected = a_t) a pair: one
   pair for that step, never for later ones.

DPO (``dpo``, registered in the loss registry) then trains on the pairs, the reference being the
policy before DPO; up to ``rounds`` rounds, each collecting new failures with the updated policy.
Alternatives come from an ``Proposer``: ``PlannerProposer`` (the environment's own planner and
action menu, offline) or ``BackendProposer`` (any text generator, with the diversity instruction and
the word-Jaccard rejection). The PRM is anything with ``score_steps`` / ``first_error``
(``worldsmith.agents.prm.StepPRM``); the default is the environment's exact progress PRM.

Ablations are switches: ``verify=False`` keeps every PRM-flagged step unverified (CSO without
verification), ``prm_filter=False`` verifies every step with a differing alternative.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldsmith.agents.contract import AgentEnvironment, Episode, Session
from worldsmith.agents.cso_config import CSOConfig
from worldsmith.agents.policy import EpisodeCoder, ModelAgent, pack
from worldsmith.agents.prm import ExactProgressPRM, StepPRM
from worldsmith.agents.train import episode_logprobs, instances, summarise
from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.rl.losses import register_loss

#: The instruction added from the second candidate on, then stronger wordings on retries.
DIVERSITY_PROMPTS = (
    "Please generate a significantly different response from previous ones, with different approach or reasoning.",
    "Your answer was too similar to an earlier one. Give a clearly different action, with a different approach.",
    "Again too similar. Propose an action that shares as few words as possible with the earlier ones.",
)


# --- proposers ----------------------------------------------------------------------------------
class Proposer(Protocol):
    def propose(self, session: Session, k: int) -> list[str]: ...


def word_jaccard(a: str, b: str) -> float:
    """|words(a) & words(b)| / |words(a) | words(b)| (words: runs of letters, digits, underscore)."""
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def diverse(candidates: list[str], text: str, threshold: float) -> bool:
    return all(word_jaccard(text, c) < threshold for c in candidates)


class PlannerProposer:
    """Offline expert: the environment's planner action first, then distinct actions of its
    action menu (a seeded shuffle), each kept only if word-Jaccard-diverse from the earlier ones."""

    def __init__(self, threshold: float = 0.6, seed: int = 0) -> None:
        self.threshold, self.seed = threshold, seed

    def propose(self, session: Session, k: int) -> list[str]:
        env, data = session.env, session.instance.data
        out = [env.expert(data, session.state)]
        menu = list(env.action_menu(data, session.state)) if hasattr(env, "action_menu") else []
        random.Random(stable_hash("menu", self.seed, session.state_key())).shuffle(menu)
        for text in menu:
            if len(out) >= k:
                break
            if text not in out and diverse(out, text, self.threshold):
                out.append(text)
        return out


class BackendProposer:
    """Alternatives from any text generator ``generate(prompt) -> text`` (an LLM served elsewhere):
    candidates are drawn one after another; from the second on the prompt carries the diversity
    instruction (stronger on each retry), and a candidate whose word-Jaccard similarity to an
    earlier one reaches ``threshold`` is drawn again, up to ``max_attempts`` times."""

    def __init__(self, generate: Callable[[str], str], threshold: float = 0.6, max_attempts: int = 3) -> None:
        self.generate, self.threshold, self.max_attempts = generate, threshold, max_attempts

    @staticmethod
    def prompt(session: Session) -> str:
        """The policy's view of the state as one flat text (``[role] content`` lines)."""
        lines = [f"[user] {session.env.task_prompt(session.instance).strip()}"]
        for turn in session.episode.turns:
            lines += [f"[assistant] {turn.action}", f"[user] {turn.observation}"]
        lines.append("[user] Reply with the next action only.")
        return "\n".join(lines)

    def propose(self, session: Session, k: int) -> list[str]:
        base = self.prompt(session)
        out: list[str] = []
        for i in range(k):
            for attempt in range(self.max_attempts):
                prompt = base if i == 0 else f"{base}\n{DIVERSITY_PROMPTS[min(attempt, len(DIVERSITY_PROMPTS) - 1)]}"
                text = str(self.generate(prompt)).strip()
                if text and diverse(out, text, self.threshold):
                    out.append(text)
                    break
        return out


# --- DPO ----------------------------------------------------------------------------------------
class DPOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    beta: float = Field(0.5, gt=0, description="Strength of the implicit KL to the reference.")
    sft_weight: float = Field(0.0, ge=0, description="Weight of the chosen actions' mean token NLL added to the "
                              "loss (PROPOSED knob; 0 is the spec's plain sigmoid DPO).")


@register_loss("dpo")
def dpo(logp: Tensor, old_logp: Tensor | None, advantages: Tensor | None, mask: Tensor, cfg: DPOConfig | None = None,
        ref_logp: Tensor | None = None, denominator: float | None = None) -> tuple[Tensor, dict]:
    """Sigmoid DPO over pairs stored as interleaved rows (2i = chosen, 2i+1 = rejected).

    logp, ref_logp, mask (B, T) with B even; ``old_logp`` and ``advantages`` are unused (the
    registry's signature). loss = -mean log sigmoid(beta * ((c - c_ref) - (r - r_ref))), with c, r
    the summed log-probs of the chosen and rejected actions. ``denominator`` overrides the number
    of pairs the sum is divided by. With ``cfg.sft_weight`` w > 0 the loss adds w times the chosen
    actions' mean per-token negative log-likelihood (summed over pairs, same denominator).
    """
    if ref_logp is None:
        raise ValueError("dpo needs ref_logp")
    cfg = cfg or DPOConfig()
    seq = (logp * mask).sum(1)  # (B,)
    ref = (ref_logp * mask).sum(1)  # (B,)
    margin = (seq[0::2] - ref[0::2]) - (seq[1::2] - ref[1::2])  # (B/2,)
    pairs = float(denominator) if denominator else float(margin.numel())
    loss = -torch.nn.functional.logsigmoid(cfg.beta * margin).sum() / pairs
    metrics = {"margin": margin.mean().item(), "accuracy": (margin > 0).float().mean().item()}
    if cfg.sft_weight:
        nll = -seq[0::2] / mask[0::2].sum(1).clamp(min=1)  # (B/2,)
        loss = loss + cfg.sft_weight * nll.sum() / pairs
        metrics["chosen_nll"] = nll.mean().item()
    return loss, {"loss": loss.item(), **metrics}


# --- the pipeline ---------------------------------------------------------------------------------
@dataclass
class Pair:
    """One verified critical step: the policy's context there, and the two actions."""

    instance: Instance
    prefix: list[str]
    chosen: str
    rejected: str
    policy_score: float
    chosen_score: float
    verified: bool

    def to_json(self) -> dict:
        return {"instance": self.instance.to_json(), "prefix": self.prefix, "chosen": self.chosen,
                "rejected": self.rejected, "policy_score": self.policy_score, "chosen_score": self.chosen_score,
                "verified": self.verified}

    @classmethod
    def from_json(cls, d: dict) -> Pair:
        return cls(Instance(**d["instance"]), d["prefix"], d["chosen"], d["rejected"], d["policy_score"],
                   d["chosen_score"], d["verified"])


def mine_pairs(model, tokenizer, env: AgentEnvironment, failures: list[Episode], cfg: CSOConfig,
               prm: StepPRM | None = None, proposer: Proposer | None = None) -> tuple[list[Pair], dict]:
    """Critical steps of ``failures`` turned into pairs (see the module docstring), and the yield
    of each stage: steps, PRM-flagged candidates, branches run, branches correct, pairs."""
    prm = prm or ExactProgressPRM(env)
    proposer = proposer or PlannerProposer(cfg.jaccard_reject, cfg.seed)
    candidates: list[tuple[Episode, int, str, float, float]] = []
    steps = 0
    for ep in failures:
        actions = ep.actions
        steps += len(actions)
        own = prm.score_steps(ep.instance, actions)
        for t, action in enumerate(actions):
            if cfg.prm_filter and own[t] >= cfg.gamma_low:
                continue
            session = Session.replay(env, ep.instance, actions[:t])
            alts = [a for a in proposer.propose(session, cfg.k) if a.strip() != action.strip()]
            if not alts:
                continue
            scores = [prm.score_steps(ep.instance, [*actions[:t], a])[-1] for a in alts]
            j = max(range(len(alts)), key=lambda i: scores[i])
            if cfg.prm_filter and scores[j] <= cfg.gamma_high:
                continue
            candidates.append((ep, t, alts[j], own[t], scores[j]))
    branches = []
    for ep, t, alt, *_ in candidates:
        session = Session.replay(env, ep.instance, ep.actions[:t])
        session.act(alt)
        branches.append(session)
    correct = [False] * len(branches)
    if cfg.verify and branches:
        agent = ModelAgent(model, tokenizer, cfg.temperature, cfg.max_action_tokens)
        agent.finish(branches, max_more=cfg.max_additional_steps)
        correct = [s.episode.passed for s in branches]
    pairs, seen = [], set()
    for (ep, t, alt, r_pol, r_alt), ok in zip(candidates, correct):
        key = (ep.instance.problem_id, tuple(ep.actions[:t]), alt, ep.actions[t])
        if (cfg.verify and not ok) or key in seen:
            continue
        seen.add(key)
        pairs.append(Pair(ep.instance, ep.actions[:t], alt, ep.actions[t], r_pol, r_alt, bool(ok)))
    stats = {"failures": len(failures), "steps": steps, "candidates": len(candidates),
             "branches_correct": sum(correct), "pairs": len(pairs),
             "supervised_share": len(pairs) / max(1, steps)}
    return pairs, stats


def pair_rollouts(coder: EpisodeCoder, env: AgentEnvironment, pairs: list[Pair]):
    """Pairs as interleaved rows (chosen, rejected) of a ``Rollouts``: the prompt is the policy's
    whole context at the step, the completion the action and its EOS."""
    prompts, comps = [], []
    for p in pairs:
        session = Session.replay(env, p.instance, p.prefix)
        ctx = coder.context(env, session)
        for action in (p.chosen, p.rejected):
            ids = coder.action_ids(action)
            prompts.append(ctx)
            comps.append((ids, [True] * len(ids)))
    return pack(prompts, comps, coder.tok.pad_token_id or 0, [a for p in pairs for a in (p.chosen, p.rejected)])


def train_dpo(model, tokenizer, env: AgentEnvironment, pairs: list[Pair], cfg: CSOConfig, round_index: int = 0) -> dict:
    """DPO on ``pairs``; the reference is a frozen copy of ``model`` as it is now."""
    if not pairs:
        return {"dpo/steps": 0}
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    coder = ModelAgent(model, tokenizer).coder
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    rng = random.Random(stable_hash("dpo", cfg.seed, round_index))
    rows, steps = [], 0
    model.train()
    for _ in range(cfg.dpo_epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for s in range(0, len(order), cfg.dpo_batch_size):
            r = pair_rollouts(coder, env, [pairs[i] for i in order[s : s + cfg.dpo_batch_size]])
            ref_logp = episode_logprobs(ref, r)
            logp = episode_logprobs(model, r, grad=True)
            loss, m = dpo(logp, None, None, r.completion_mask, DPOConfig(beta=cfg.beta, sft_weight=cfg.sft_weight),
                          ref_logp=ref_logp)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            rows.append(m)
            steps += 1
    model.eval()
    return {"dpo/steps": steps, "dpo/first_loss": rows[0]["loss"], "dpo/final_loss": rows[-1]["loss"],
            "dpo/final_accuracy": rows[-1]["accuracy"]}


def run_cso(model, tokenizer, env: AgentEnvironment, cfg: CSOConfig, out: Path | None = None,
            prm: StepPRM | None = None, proposer: Proposer | None = None, log=None) -> list[dict]:
    """``cfg.rounds`` rounds of collect failures -> mine pairs -> DPO, updating ``model`` in place.

    With ``out``, each finished round writes ``round_<r>/pairs.jsonl``, ``round_<r>/stats.json``
    and ``round_<r>/policy.pt``; a rerun loads the last finished round and continues from there.
    """
    rows = []
    start = 0
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        while (out / f"round_{start}" / "stats.json").exists():
            rows.append(json.loads((out / f"round_{start}" / "stats.json").read_text()))
            start += 1
        if start:
            model.load_state_dict(torch.load(out / f"round_{start - 1}" / "policy.pt", weights_only=True))
            if log:
                log(f"resuming after round {start}")
    for r in range(start, cfg.rounds):
        torch.manual_seed(stable_hash("cso-sample", cfg.seed, r) % 2**31)
        insts = instances(env, "train", cfg.tasks_per_round, cfg.difficulty,
                          offset=stable_hash("cso", cfg.seed, r) % 10**6)
        agent = ModelAgent(model, tokenizer, cfg.temperature, cfg.max_action_tokens)
        episodes = agent.run({env.name: env}, insts)
        failures = [ep for ep in episodes if not ep.passed]
        if log:
            log(f"round {r + 1}/{cfg.rounds}: {len(failures)}/{len(episodes)} episodes failed; mining critical steps")
        pairs, stats = mine_pairs(model, tokenizer, env, failures, cfg, prm, proposer)
        if log:
            log(f"round {r + 1}: {stats['steps']} steps -> {stats['candidates']} candidates -> "
                f"{stats['branches_correct']} verified -> {stats['pairs']} pairs "
                f"({stats['supervised_share']:.1%} of steps); DPO")
        stats.update(train_dpo(model, tokenizer, env, pairs, cfg, r))
        stats.update({f"collect/{k}": v for k, v in summarise(episodes).items()})
        row = {"round": r, **stats}
        rows.append(row)
        if out is not None:
            folder = out / f"round_{r}"
            folder.mkdir(exist_ok=True)
            (folder / "pairs.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in pairs))
            torch.save(model.state_dict(), folder / "policy.pt")
            (folder / "stats.json").write_text(json.dumps(row))
    return rows

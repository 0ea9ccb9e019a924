"""Training an agent policy on whole episodes: SFT on expert episodes (the start policy), outcome
GRPO over episodes (the outcome-RL baseline), and held-out evaluation.

GRPO here is the spine's algorithm on multi-turn data: a group of episodes per instance, the
verified outcome as the reward, the registered ``grpo`` advantage and ``ppo_clip`` loss over the
episode's token layout (``worldsmith.agents.policy``), with observation tokens masked out. The
collector produces the trainer's ``Rollouts`` / ``Batch``; the single-turn trainer is untouched.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith.agents.contract import AgentEnvironment, Episode, Session, expert_policy
from worldsmith.agents.policy import EpisodeCoder, ModelAgent
from worldsmith.envs.contract import Instance, split_seed, stable_hash
from worldsmith.policy.hf_backend import sequence_logprobs
from worldsmith.rl.advantages import AdvantageConfig, get_advantage
from worldsmith.rl.losses import LossConfig, get_loss
from worldsmith.rl.trainer import Batch


def instances(env: AgentEnvironment, split: str, n: int, difficulty: float, offset: int = 0) -> list[Instance]:
    """``n`` problems of ``split`` (train and eval hold disjoint problems: ``split_seed``)."""
    return [env.sample(split_seed(split, offset + i), difficulty) for i in range(n)]


def noisy_expert_episodes(env: AgentEnvironment, insts: list[Instance], noise: float, seed: int) -> list[Episode]:
    """Expert episodes where each action is, with probability ``noise``, a random menu action:
    the demonstrations of an imperfect start policy (it also sees recoveries)."""
    rng = random.Random(seed)
    out = []
    for inst in insts:
        session = Session(env, inst)
        while not session.done:
            action = expert_policy(session)
            menu = env.action_menu(inst.data, session.state) if hasattr(env, "action_menu") else []
            if menu and rng.random() < noise and not action.startswith("answer("):
                action = rng.choice(menu)
            session.act(action)
        out.append(session.episode)
    return out


def attention_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) True on every completion position up to a row's last action token: the observations
    between actions are attended to, though masked out of the loss."""
    t = loss_mask.shape[1]
    positions = torch.arange(t, device=loss_mask.device).expand_as(loss_mask)  # (B, T)
    last = torch.where(loss_mask.bool(), positions, -1).max(dim=1, keepdim=True).values  # (B, 1)
    return positions <= last


def episode_logprobs(model, r, grad: bool = False) -> torch.Tensor:
    """Per-token log-probs (B, T) of the episodes' action tokens (0 elsewhere). The forward sees
    observations (``attention_mask``); only the loss mask ``r.completion_mask`` leaves them out."""
    with torch.set_grad_enabled(grad):
        logp = sequence_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, attention_mask(r.completion_mask))
    return logp * r.completion_mask


def sft(model, tokenizer, env_of: dict, episodes: list[Episode], steps: int, lr: float = 1e-3,
        batch_size: int = 16, seed: int = 0, log=None) -> dict:
    """Maximise the log-likelihood of the episodes' action tokens (observations masked); AdamW,
    linear warm-up over the first 5% of the steps, then a cosine decay to a tenth of ``lr``."""
    coder = EpisodeCoder(tokenizer, ModelAgent(model, tokenizer).coder.eos)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                                 0.1 + 0.45 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    rng = random.Random(seed)
    model.train()
    losses = []
    for step in range(steps):
        rows = rng.sample(episodes, min(batch_size, len(episodes)))
        r = coder.rollouts(env_of, rows)
        logp = episode_logprobs(model, r, grad=True)  # (B, T)
        loss = -(logp * r.completion_mask).sum() / r.completion_mask.sum().clamp_min(1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
        if log is not None and (step + 1) % 50 == 0:
            log(f"sft step {step + 1}/{steps} loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    return {"first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:])}


def evaluate(model, tokenizer, env: AgentEnvironment, insts: list[Instance], max_action_tokens: int) -> dict:
    """Greedy episodes on ``insts``: success rate, ends and step errors."""
    agent = ModelAgent(model, tokenizer, temperature=0.0, max_action_tokens=max_action_tokens)
    episodes = agent.run({env.name: env}, insts)
    return summarise(episodes)


def summarise(episodes: list[Episode]) -> dict:
    errors: Counter = Counter()
    for ep in episodes:
        errors.update(ep.errors)
    return {"success": sum(ep.passed for ep in episodes) / max(1, len(episodes)), "episodes": len(episodes),
            "turns/mean": sum(len(ep.turns) for ep in episodes) / max(1, len(episodes)),
            **{f"end/{k}": v for k, v in Counter(ep.end for ep in episodes).items()},
            **{f"errors/{k}": v for k, v in errors.items()}}


class EpisodeGRPOConfig(BaseModel):
    """Outcome GRPO over whole episodes."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(10, ge=1, description="Optimizer steps (one per collected batch).")
    prompts_per_step: int = Field(8, ge=1, description="Instances per step.")
    group_size: int = Field(4, ge=2, description="Episodes per instance (the GRPO group).")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    difficulty: float = Field(0.2, ge=0, le=1, description="Difficulty of the training instances.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the episodes.")
    max_action_tokens: int = Field(12, ge=1, description="Tokens of one action at most.")
    max_turns: int | None = Field(None, ge=1, description="Turn limit of an episode; None: the environment's.")
    seed: int = Field(0, description="Seed of the instance draws and the sampling.")


class EpisodeGRPO:
    """Collects groups of episodes into the trainer's ``Batch`` and takes clipped policy-gradient
    steps with the registered ``grpo`` advantage and ``ppo_clip`` loss."""

    def __init__(self, model, tokenizer, env: AgentEnvironment, cfg: EpisodeGRPOConfig) -> None:
        self.model, self.tok, self.env, self.cfg = model, tokenizer, env, cfg
        self.agent = ModelAgent(model, tokenizer, cfg.temperature, cfg.max_action_tokens)
        self.opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        self.advantage, self.loss = get_advantage("grpo"), get_loss("ppo_clip")

    def collect(self, step: int) -> tuple[Batch, dict]:
        c = self.cfg
        insts = instances(self.env, "train", c.prompts_per_step, c.difficulty,
                          offset=stable_hash("grpo", c.seed, step) % 10**6)
        grouped = [inst for inst in insts for _ in range(c.group_size)]  # B
        torch.manual_seed(stable_hash("grpo-sample", c.seed, step) % 2**31)
        episodes = self.agent.run({self.env.name: self.env}, grouped, max_turns=c.max_turns)
        r = self.agent.coder.rollouts({self.env.name: self.env}, episodes)
        r.behaviour_logp = episode_logprobs(self.model, r)  # (B, T) temperature-1 sampling = the policy
        rewards = torch.tensor([ep.reward for ep in episodes])  # (B,)
        group_ids = torch.arange(len(insts)).repeat_interleave(c.group_size)  # (B,)
        adv = self.advantage(rewards, r.completion_mask, group_ids, AdvantageConfig())  # (B, T)
        batch = Batch(grouped, r, rewards, [ep.passed for ep in episodes], group_ids, adv, r.behaviour_logp, None)
        return batch, {f"train/{k}": v for k, v in summarise(episodes).items()}

    def update(self, batch: Batch) -> dict:
        self.model.train()
        r = batch.rollouts
        logp = episode_logprobs(self.model, r, grad=True)
        loss, metrics = self.loss(logp, batch.old_logp, batch.advantages, r.completion_mask, LossConfig())
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.model.eval()
        return {f"loss/{k}": v for k, v in metrics.items()}

    def fit(self, log=None) -> list[dict]:
        rows = []
        for step in range(self.cfg.steps):
            batch, metrics = self.collect(step)
            metrics.update(self.update(batch))
            rows.append({"step": step, **metrics})
            if log is not None:
                log(f"grpo step {step + 1}/{self.cfg.steps} success {metrics['train/success']:.2f}")
        return rows

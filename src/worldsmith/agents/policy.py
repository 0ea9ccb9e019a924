"""A language model as an agent: its context is the episode so far, its output one action.

Token layout of an episode (the same for acting and for training, so training is on-policy)::

    prompt      = encode(task prompt)                             (with the tokenizer's BOS)
    completion  = [action_1, EOS, "\\n" obs_1 "\\n", action_2, EOS, "\\n" obs_2 "\\n", ...]
    mask        =  1 ...  1   1    0 ...        0   1 ...

Observation tokens are masked out of every loss (mask 0); the policy is trained only on its own
action tokens and the EOS that ends each. Actions are re-encoded from their text (exact for the
character tokenizer of the tiny policies; with a BPE tokenizer a sampled action may re-encode to
other ids of the same text).
"""

from __future__ import annotations

import torch

from worldsmith.agents.contract import AgentEnvironment, Episode, Session
from worldsmith.policy.backend import Rollouts
from worldsmith.policy.model import eos_token_ids

#: Tokens of one action at most. PROPOSED: tool calls of the environments here are short.
MAX_ACTION_TOKENS = 48


def observation_text(observation: str) -> str:
    return f"\n{observation}\n"


class EpisodeCoder:
    """Turns sessions and episodes into token ids (see the module docstring)."""

    def __init__(self, tokenizer, eos_id: int) -> None:
        self.tok, self.eos = tokenizer, eos_id

    def prompt_ids(self, env: AgentEnvironment, session_or_episode) -> list[int]:
        inst = session_or_episode.instance
        return self.tok(env.task_prompt(inst), add_special_tokens=True)["input_ids"]

    def action_ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] + [self.eos]

    def obs_ids(self, observation: str) -> list[int]:
        return self.tok(observation_text(observation), add_special_tokens=False)["input_ids"]

    def completion(self, turns) -> tuple[list[int], list[bool]]:
        """Ids and loss mask of the turns (actions True, observations False)."""
        ids: list[int] = []
        mask: list[bool] = []
        for turn in turns:
            a, o = self.action_ids(turn.action), self.obs_ids(turn.observation)
            ids += a + o
            mask += [True] * len(a) + [False] * len(o)
        return ids, mask

    def context(self, env: AgentEnvironment, session: Session) -> list[int]:
        return self.prompt_ids(env, session) + self.completion(session.episode.turns)[0]

    def step_context(self, env: AgentEnvironment, episode: Episode, t: int) -> list[int]:
        """The policy's input before action ``t`` of ``episode``."""
        return self.prompt_ids(env, episode) + self.completion(episode.turns[:t])[0]

    def rollouts(self, env_of: dict, episodes: list[Episode], device=None) -> Rollouts:
        """Whole episodes as a ``Rollouts`` batch (B rows; T = the longest completion); the
        behaviour log-probs are left 0 (the collector fills them with one forward)."""
        prompts = [self.prompt_ids(env_of[ep.instance.env], ep) for ep in episodes]
        comps = [self.completion(ep.turns) for ep in episodes]
        return pack(prompts, comps, self.tok.pad_token_id or 0, [str(ep.answer) for ep in episodes], device)


def pack(prompts: list[list[int]], comps: list[tuple[list[int], list[bool]]], pad: int, texts: list[str],
         device=None) -> Rollouts:
    """Left-pad prompts and right-pad completions into a ``Rollouts``."""
    b = len(prompts)
    width_p = max(len(p) for p in prompts)
    width_t = max(1, max(len(c[0]) for c in comps))
    prompt_ids = torch.full((b, width_p), pad, dtype=torch.long)
    prompt_mask = torch.zeros((b, width_p), dtype=torch.bool)
    completion_ids = torch.full((b, width_t), pad, dtype=torch.long)
    completion_mask = torch.zeros((b, width_t), dtype=torch.bool)
    for i, (p, (ids, mask)) in enumerate(zip(prompts, comps)):
        prompt_ids[i, width_p - len(p):] = torch.tensor(p)
        prompt_mask[i, width_p - len(p):] = True
        if ids:
            completion_ids[i, : len(ids)] = torch.tensor(ids)
            completion_mask[i, : len(ids)] = torch.tensor(mask)
    out = Rollouts(prompt_ids, prompt_mask, completion_ids, completion_mask,
                   torch.zeros((b, width_t), dtype=torch.float32), texts)
    if device is not None:
        for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "behaviour_logp"):
            setattr(out, name, getattr(out, name).to(device))
    return out


class ModelAgent:
    """Samples actions from a causal LM, many sessions at once (one ``generate`` call per turn)."""

    def __init__(self, model, tokenizer, temperature: float = 1.0, max_action_tokens: int = MAX_ACTION_TOKENS) -> None:
        self.model, self.tok = model, tokenizer
        self.temperature, self.max_action_tokens = temperature, max_action_tokens
        self.coder = EpisodeCoder(tokenizer, eos_token_ids(model, tokenizer)[0])

    @torch.no_grad()
    def act(self, sessions: list[Session]) -> list[str]:
        """One action text per session."""
        if not sessions:
            return []
        contexts = [self.coder.context(s.env, s) for s in sessions]
        pad = self.tok.pad_token_id or 0
        width = max(len(c) for c in contexts)
        limit = self.model.config.max_position_embeddings - self.max_action_tokens
        if width > limit:  # keep the most recent tokens; a context that long is an outlier
            contexts = [c[-limit:] for c in contexts]
            width = limit
        ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(contexts), width), dtype=torch.long)
        for i, c in enumerate(contexts):
            ids[i, width - len(c):] = torch.tensor(c)
            mask[i, width - len(c):] = 1
        device = next(self.model.parameters()).device
        sample = self.temperature > 0
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                  max_new_tokens=self.max_action_tokens, do_sample=sample,
                                  temperature=self.temperature if sample else None, top_k=0 if sample else None,
                                  top_p=1.0 if sample else None, eos_token_id=self.coder.eos,
                                  pad_token_id=pad)
        new = out[:, width:]
        return [self.tok.decode(row, skip_special_tokens=True).strip() for row in new]

    def run(self, env_of: dict, instances: list, max_turns: int | None = None) -> list[Episode]:
        """Play one episode per instance, in lockstep."""
        sessions = [Session(env_of[inst.env], inst, max_turns=max_turns) for inst in instances]
        self.finish(sessions)
        return [s.episode for s in sessions]

    def finish(self, sessions: list[Session], max_more: int | None = None) -> None:
        """Let the policy play the sessions until they end (or ``max_more`` more actions each)."""
        taken = 0
        while True:
            live = [s for s in sessions if not s.done]
            if not live or (max_more is not None and taken >= max_more):
                return
            for session, text in zip(live, self.act(live)):
                session.act(text)
            taken += 1

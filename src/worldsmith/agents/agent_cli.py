"""`worldsmith agent ...` (list, play, compare) and `worldsmith cso CONFIG --out DIR`.

Registered in ``worldsmith.commands.COMMANDS``; torch is imported only by the commands that train.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worldsmith import commands
from worldsmith.commands import UsageError, difficulty, positive_int


def _env(name: str):
    from worldsmith.agents.registry import UnknownAgentEnvironment, get_agent_env

    try:
        return get_agent_env(name)
    except UnknownAgentEnvironment as exc:
        raise UsageError(str(exc)) from None


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_list(args: argparse.Namespace) -> int:
    from worldsmith.agents.registry import AGENT_ENVS

    for name, cls in sorted(AGENT_ENVS.items()):
        print(f"{name}\t{cls.description}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Play one episode with the environment's expert (or replay given actions) and print it."""
    from worldsmith.agents.contract import Session, expert_policy
    from worldsmith.envs.contract import split_seed

    commands.apply_isolation_flag(args)
    env = _env(args.env)
    inst = env.sample(split_seed(args.split, args.index), args.difficulty)
    session = Session(env, inst)
    actions = list(args.action or [])
    print(env.task_prompt(inst).rstrip())
    while not session.done:
        text = actions.pop(0) if actions else (expert_policy(session) if not args.action else None)
        if text is None:
            break
        observation = session.act(text)
        print(f"> {text}\n{observation}")
    ep = session.episode
    print(json.dumps({"end": ep.end or "stopped", "reward": ep.reward, "turns": len(ep.turns),
                      "errors": dict(ep.errors)}))
    return 0


#: The methods of `worldsmith agent compare` (``worldsmith.agents.experiment.METHODS``).
METHODS = ("none", "grpo", "rft", "step_dpo", "cso", "cso_noverify", "cso_noprm")


def cmd_compare(args: argparse.Namespace) -> int:
    from worldsmith.compare import CompareError, parse_seeds

    env = _env(args.env)
    try:
        seeds = parse_seeds(args.seeds)
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or "none" not in methods:
        raise UsageError(f"agent compare: --methods must include none and be among {', '.join(METHODS)}")
    from worldsmith.agents.experiment import compare

    summary = compare(env.name, seeds, Path(args.out), methods, difficulty=args.difficulty,
                      eval_problems=args.eval_problems, grpo_steps=args.grpo_steps, cso_rounds=args.cso_rounds,
                      log=_log)
    print(json.dumps(summary))
    return 0


def cmd_cso(args: argparse.Namespace) -> int:
    from worldsmith import configuration
    from worldsmith.agents.cso_config import CSOConfig

    commands.apply_isolation_flag(args)
    try:
        cfg = configuration.load(CSOConfig, args.config, args.overrides)
    except configuration.ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    env = _env(cfg.env)
    if cfg.start is not None and not Path(cfg.start).is_file():
        raise UsageError(f"cso: start policy {cfg.start!r} is not a file")
    import torch

    from worldsmith.agents.cso import run_cso
    from worldsmith.agents.experiment import start_policy
    from worldsmith.agents.train import evaluate, instances
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    configuration.dump(cfg, out / "config.yaml")
    if cfg.start is not None:
        tok = build_char_tokenizer()
        model = build_tiny_model(tok, TinyModelConfig(max_position_embeddings=512), seed=0)
        try:
            model.load_state_dict(torch.load(cfg.start, weights_only=True))
        except (RuntimeError, OSError, ValueError) as exc:
            raise UsageError(f"cso: cannot load start policy {cfg.start!r}: {str(exc).splitlines()[0]}") from None
    else:
        model, tok = start_policy(env, out, cfg.difficulty, cfg.sft_steps, 300, _log)
    rows = run_cso(model, tok, env, cfg, out, log=_log)
    held_out = evaluate(model, tok, env, instances(env, "eval", cfg.eval_problems, cfg.difficulty), cfg.max_action_tokens)
    summary = {"rounds": rows, "eval": held_out}
    (out / "summary.json").write_text(json.dumps(summary))
    print(json.dumps({"pairs": [r["pairs"] for r in rows], "supervised_share": [r["supervised_share"] for r in rows],
                      "eval_success": held_out["success"]}))
    return 0


def _refusing_without_sandbox(fn):
    """``fn`` with the sandbox's refusal (no bubblewrap, no opt-in) as a one-line usage error."""

    def run(args: argparse.Namespace) -> int:
        from worldsmith.sandbox.runner import SandboxUnavailable

        commands.apply_isolation_flag(args)
        try:
            return fn(args)
        except SandboxUnavailable as exc:
            raise UsageError(str(exc)) from None

    return run


@commands.register_command("agent")
def register_agent(sub) -> None:
    p = sub.add_parser("agent", help="multi-turn agent environments: list, play an episode, compare training methods")
    inner = p.add_subparsers(dest="agent_command", required=True, parser_class=commands.Parser)
    q = inner.add_parser("list", help="the agent environments")
    q.set_defaults(func=cmd_list)
    q = inner.add_parser("play", help="play one episode with the expert, or with --action texts, and print it")
    q.add_argument("env")
    q.add_argument("--difficulty", type=difficulty, default=0.3)
    q.add_argument("--split", choices=("train", "eval"), default="train")
    q.add_argument("--index", type=int, default=0, help="problem index within the split")
    q.add_argument("--action", action="append", help="an action to take (repeatable); default: the expert's")
    commands.add_isolation_flag(q)
    q.set_defaults(func=_refusing_without_sandbox(cmd_play))
    q = inner.add_parser("compare", help="SFT start vs outcome GRPO, rejection-sampling fine-tuning, "
                                         "unverified step DPO, CSO and its ablations: held-out success over seeds")
    q.add_argument("--env", default="agent_gridworld")
    q.add_argument("--seeds", default="0-2")
    q.add_argument("--methods", default="none,grpo,cso,cso_noverify",
                   help="comma-separated, including none, from " + ", ".join(METHODS))
    q.add_argument("--difficulty", type=difficulty, default=0.5)
    q.add_argument("--eval-problems", type=positive_int, default=40)
    q.add_argument("--grpo-steps", type=positive_int, default=8)
    q.add_argument("--cso-rounds", type=positive_int, default=1)
    q.add_argument("--out", required=True, help="comparison folder; rerun to finish it")
    commands.add_isolation_flag(q)
    q.set_defaults(func=_refusing_without_sandbox(cmd_compare))


@commands.register_command("cso")
def register_cso(sub) -> None:
    p = sub.add_parser("cso", help="verified critical-step DPO on an agent environment (resumable)")
    p.add_argument("config", help="YAML of CSO settings (worldsmith.agents.cso.CSOConfig)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. rounds=2")
    p.add_argument("--out", required=True, help="run folder; rerun the same command to resume")
    commands.add_isolation_flag(p)
    p.set_defaults(func=_refusing_without_sandbox(cmd_cso))

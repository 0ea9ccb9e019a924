"""The `worldsmith` command: one entry point, a sub-command per loop.

Every user mistake (unknown name, bad value, missing file) ends with one line on stderr and exit
code 2; a failed check ends with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from worldsmith.commands import (
    COMMANDS,
    EXIT_FAILED,
    EXIT_USAGE,
    Parser,
    UsageError,
    difficulty,
    env_tasks,
    get_env,
    load_run_config,
    parse_with_overrides,
    positive_int,
    temperature,
)
from worldsmith.distributed import lost_processes

# --- envs -------------------------------------------------------------------------------------


def cmd_envs_list(args: argparse.Namespace) -> int:
    from worldsmith import envs

    rows = []
    for name in envs.names():
        env = envs.get(name)
        rows.append((name, env.oracle, "yes" if env.has_steps() else "no", env.description))
    if args.json:
        keys = ("name", "oracle", "steps", "description")
        print(json.dumps([dict(zip(keys, row)) for row in rows]))
        return 0
    header = ("name", "oracle", "steps", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    print(f"\n{len(rows)} environments; reasoning-gym datasets are available as rg:<dataset>.")
    return 0


def cmd_envs_show(args: argparse.Namespace) -> int:
    env = get_env(args.name)
    inst = env.sample(args.seed, args.difficulty)
    score = env.grade(inst, env.wrap(inst.reference))
    if args.json:
        print(json.dumps({**inst.to_json(), "reference_grade": score.value, "reason": score.reason}))
        return 0
    print(f"environment  {env.name} ({env.oracle} oracle)")
    print(f"seed         {inst.seed}    difficulty {inst.difficulty:g}")
    print("prompt:")
    print("  " + inst.prompt.replace("\n", "\n  "))
    print(f"reference    {inst.reference}")
    if env.has_steps():
        print(f"steps        {' | '.join(env.steps(inst.data) or [])}")
    print(f"grade        {score.value:g} ({score.reason})")
    return 0


def cmd_envs_check(args: argparse.Namespace) -> int:
    from worldsmith.envs.checks import run_checks

    env = get_env(args.name)
    results = run_checks(env, n=args.seeds)
    if args.json:
        print(json.dumps({"env": env.name, "passed": all(r.passed for r in results),
                          "checks": [r.__dict__ for r in results]}))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.name.ljust(width)}  {r.detail}")
    failed = [r.name for r in results if not r.passed]
    if failed and not args.json:
        print(f"{env.name}: {len(failed)} check(s) failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def cmd_envs_tour(args: argparse.Namespace) -> int:
    """A guided look at every environment: an easy and a hard instance, and how grading treats
    the reference, a near miss and a spray."""
    import random

    from worldsmith import envs
    from worldsmith.envs.checks import perturbations

    for name in envs.names():
        env = envs.get(name)
        easy, hard = env.sample(args.seed, 0.0), env.sample(args.seed, 1.0)
        near = next(iter(perturbations(easy.reference, random.Random(0)).values()), easy.reference + "0")
        spray = f"<answer>{easy.reference} or {near}</answer>"
        print(f"== {name}  ({env.oracle} oracle{', step checker' if env.has_steps() else ''})")
        print("   " + env.description)
        print("   easy prompt:  " + easy.prompt.replace("\n", "\n                 "))
        print(f"   reference:    {easy.reference}")
        for label, response in (("reference", env.wrap(easy.reference)), ("near miss", env.wrap(near)),
                                ("spray", spray)):
            score = env.grade(easy, response)
            print(f"   grade {label:<10} {score.value:g}  ({score.reason})")
        print(f"   hard instance: {len(hard.prompt)} prompt chars vs {len(easy.prompt)} at difficulty 0\n")
    return 0


# --- training and evaluation ------------------------------------------------------------------


def _print_before_after(summary: dict) -> None:
    before, after = summary.get("before"), summary["after"]
    keys = [k for k in after if k != "problems"]
    print(f"\n{'metric':<18}{'before':>10}{'after':>10}")
    for k in keys:
        b = before.get(k) if before else None
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{k:<18}{fmt(b):>10}{fmt(after[k]):>10}")
    print(f"(held-out: {after['problems']} instances from the eval split)")


def _run_training(cfg, out, resume, evaluate_before):
    from worldsmith.configuration import ConfigError
    from worldsmith.recipes import train_run

    try:
        return train_run(cfg, out, resume=resume, evaluate_before=evaluate_before)
    except (FileExistsError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_run_config(args.config, args.overrides)
    summary = _run_training(cfg, args.out, args.resume, evaluate_before=args.eval_before)
    if not summary:  # a non-main process of a multi-process run
        return 0
    _print_before_after(summary)
    print(f"run folder: {args.out}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from worldsmith.configuration import ConfigError, apply_overrides, build
    from worldsmith.recipes import quickstart_config
    from worldsmith.rl.config import RunConfig

    cfg = quickstart_config(args.seed)
    if args.overrides:
        try:
            cfg = build(RunConfig, apply_overrides(cfg.model_dump(mode="json"), args.overrides))
        except ConfigError as exc:
            raise UsageError(f"config: {exc}") from None
    task = ", ".join(f"{p.name} @ {p.difficulty:.3g}" + (f" +- {p.spread:.3g}" if p.spread else "") for p in cfg.pool)
    start = f"base policy '{cfg.model.base}'" if cfg.model.base else "tiny model -> SFT warm start"
    print(f"worldsmith quickstart: {start} -> GRPO on unseen problems of {task}, seed {args.seed}")
    summary = _run_training(cfg, args.out, args.resume, evaluate_before=True)
    _print_before_after(summary)
    print(f"summary: {args.out}/summary.json   plot: {args.out}/training.png")
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from worldsmith.recipes import build_policy
    from worldsmith.runs import RunDir

    cfg = load_run_config(args.config, args.overrides)
    if not cfg.sft.examples:
        raise UsageError("config: sft.examples: must be > 0 for `worldsmith sft`")
    run = RunDir(args.out)
    if (run.root / "policy_init").exists():
        raise UsageError(f"{run.root} already holds a warm-started policy; choose another --out")
    build_policy(cfg, run)
    print(f"warm-started policy: {run.root / 'policy_init'}")
    return 0


def _eval_backend(args: argparse.Namespace):
    """The backend ``worldsmith eval`` asks: a local HF folder, or a served model with ``--base-url``."""
    if args.base_url is None:
        from worldsmith.policy.hf_backend import HFBackend
        from worldsmith.policy.model import load_policy

        if args.api_key_env is not None:
            raise UsageError("--api-key-env needs --base-url (a served model)")
        try:
            model, tokenizer = load_policy(args.model)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise UsageError(f"--model: {str(exc).splitlines()[0]}") from None
        return HFBackend(model, tokenizer)
    from pydantic import ValidationError

    from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig, HTTPBackendError

    try:
        # completions get the text a local policy without a chat template reads (format_prompt);
        # chat leaves the formatting to the server's chat template, as a local template would
        config = HTTPBackendConfig(base_url=args.base_url, model=args.model, endpoint=args.endpoint,
                                   api_key_env=args.api_key_env, logprobs=False,
                                   prompt_suffix="\n" if args.endpoint == "completions" else "",
                                   max_workers=args.concurrency, timeout_s=args.timeout)
        return HTTPBackend(config)
    except ValidationError as exc:
        raise UsageError(f"--base-url: {exc.errors()[0]['msg']}") from None
    except HTTPBackendError as exc:
        raise UsageError(str(exc)) from None


def cmd_eval(args: argparse.Namespace) -> int:
    from worldsmith.eval.runner import evaluate
    from worldsmith.policy.http_backend import HTTPBackendError

    specs = env_tasks(args.env, "--env")
    backend = _eval_backend(args)
    try:
        summary = evaluate(backend, specs, instances=args.instances, samples=args.samples,
                           temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    except HTTPBackendError as exc:  # the server failed after its retries
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.base_url is not None:
        summary["served"] = {"base_url": args.base_url, "model": args.model, "endpoint": args.endpoint}
    if args.json:
        print(json.dumps(summary))
        return 0
    k = summary["k"]
    print(f"{'environment':<22}{'difficulty':>10}{'greedy':>8}{'pass@1':>8}{f'pass@{k}':>8}{f'maj@{k}':>8}")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for env, by_d in summary["per_env_difficulty"].items():
        for d, s in by_d.items():
            print(f"{env:<22}{d:>10g}{fmt(s['greedy_accuracy']):>8}{fmt(s['pass@1']):>8}"
                  f"{fmt(s['pass@k']):>8}{fmt(s['maj@k']):>8}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="worldsmith", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    envs_p = sub.add_parser("envs", help="list, show and check environments")
    envs_sub = envs_p.add_subparsers(dest="envs_command", required=True, parser_class=Parser)
    p = envs_sub.add_parser("list", help="a table of the registered environments")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_envs_list)
    p = envs_sub.add_parser("show", help="sample one instance: prompt, reference, grade")
    p.add_argument("name")
    p.add_argument("--seed", type=int, default=0, help="instance seed (an integer)")
    p.add_argument("--difficulty", type=difficulty, default=0.0, help="in [0, 1]")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_envs_show)
    p = envs_sub.add_parser("tour", help="a guided look at every environment and its grading")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_envs_tour)
    p = envs_sub.add_parser("check", help="run the contract battery on one environment")
    p.add_argument("name")
    p.add_argument("--seeds", type=positive_int, default=30, help="seeds per difficulty (at least 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_envs_check)

    p = sub.add_parser("train", help="RL training from a YAML config")
    p.add_argument("config", help="YAML run config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.steps=50")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--eval-before", action="store_true", help="also evaluate the starting policy")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sft", help="warm-start a policy on environment references")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("eval", help="held-out accuracy, pass@k and maj@k of a saved or served policy")
    p.add_argument("--model", required=True,
                   help="a local HF model folder (e.g. RUN/policy), or with --base-url the served model's name")
    p.add_argument("--env", action="append", required=True, help="NAME or NAME@DIFFICULTY; repeatable")
    p.add_argument("--instances", type=positive_int, default=256)
    p.add_argument("--samples", type=positive_int, default=4)
    p.add_argument("--temperature", type=temperature, default=1.0, help="> 0 (sampled completions)")
    p.add_argument("--max-new-tokens", type=positive_int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--base-url", help="evaluate a model behind an OpenAI-compatible server, e.g. http://127.0.0.1:8000")
    p.add_argument("--endpoint", choices=("completions", "chat"), default="completions",
                   help="with --base-url: /v1/completions (prompt + newline) or /v1/chat/completions")
    p.add_argument("--api-key-env", metavar="VAR", help="with --base-url: the environment variable holding the API key")
    p.add_argument("--concurrency", type=positive_int, default=4, help="with --base-url: requests in flight")
    p.add_argument("--timeout", type=temperature, default=120.0, help="with --base-url: seconds per request")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("quickstart", help="the cpu base policy, GRPO on unseen problems, before/after table")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the embedded config")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_quickstart)

    for add_command in COMMANDS.values():  # the other sub-commands (worldsmith.commands)
        add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_with_overrides(parser, argv)
        lost = lost_processes()
        if lost:
            raise UsageError(lost)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.modules.setdefault("worldsmith.cli", sys.modules[__name__])  # under -m: one module, not two copies
    sys.exit(main())

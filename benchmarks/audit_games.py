"""Exploit emergence on the vulnerability games: the tiny policy trained on each game and on its
secure twin, for several seeds; prints one JSON line with the first/last-window means of the raw
reward, ITP and ER per (game, seed, variant).

    .venv/bin/python benchmarks/audit_games.py --games compliance proxy_metric tampering \\
        --seeds 0 1 --steps 60 --out runs/audit_measure

Variants already trained in ``OUT/<game>_s<seed>/`` are read back, not retrained, so the line can
be reprinted at no cost. Each variant is the same as ``worldsmith audit game GAME --both``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform

from worldsmith.audit.games.train import VARIANTS, plot_game, read_runs, run_variant, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", default=["compliance", "proxy_metric", "tampering"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default="runs/audit_measure")
    args = parser.parse_args()
    results = []
    for game in args.games:
        for seed in args.seeds:
            out = pathlib.Path(args.out) / f"{game.replace('_metric', '')}_s{seed}"
            present = read_runs(out)
            for secure, variant in enumerate(VARIANTS):
                if variant not in present:
                    run_variant(game, bool(secure), args.steps, seed, out, progress=False)
            runs = read_runs(out)
            plot_game(runs, out / "itp_er.png", title=f"{game}: vulnerable vs secure (seed {seed})")
            for variant, rows in runs.items():
                results.append({"game": game, "seed": seed, "variant": variant, "steps": len(rows),
                                **{k: None if v is None else round(v, 4) for k, v in summarize(rows).items()}})
    print(json.dumps({"benchmark": "audit_games", "machine": platform.machine(), "processor": platform.processor(),
                      "results": results}))


if __name__ == "__main__":
    main()

"""PNG plots of a run's metrics.jsonl."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("reward/mean", "reward"),
    ("accuracy/train", "train accuracy (batch pass rate)"),
    ("entropy", "entropy (nats/token)"),
    ("kl", "KL to reference"),
)


def plot_training(rows: list[dict], path: str | pathlib.Path, title: str = "",
                  held_out: list[tuple[int, float]] = ()) -> pathlib.Path:
    """Reward, accuracy, entropy and KL against step, one panel each; held-out (step, sampled
    accuracy) points, e.g. before and after training, overlaid on the accuracy panel."""
    path = pathlib.Path(path)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for ax, (key, label) in zip(axes.flat, PANELS):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None and "step" in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, lw=1, alpha=0.5, color="tab:blue")
            if len(ys) >= 5:
                w = max(2, len(ys) // 20)
                smooth = [sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1]) for i in range(len(ys))]
                ax.plot(xs, smooth, lw=2, color="tab:blue")
        elif key == "kl":
            ax.text(0.5, 0.5, "no reference model\n(train.loss_cfg.kl_coef = 0)", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
        if key == "accuracy/train":
            evals = [(r["step"], r["eval/accuracy_sampled"]) for r in rows if r.get("eval/accuracy_sampled") is not None]
            evals = sorted([*evals, *held_out])
            if evals:
                ax.plot(*zip(*evals), "o-", color="tab:orange", label="held-out (sampled)")
                ax.legend(loc="lower right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

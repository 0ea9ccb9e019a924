"""One self-contained HTML page per run folder: the library behind `worldsmith report`.

The page reads what the run left (DESIGN.md, "Runs") and nothing from the network: plots are inline
SVG, styles inline CSS, and a Content-Security-Policy forbids every fetch. It shows, where the
folder has them:

- the kind of run, its headline figures and the resolved config;
- held-out figures before and after training (a train or quickstart run), or per method the mean
  over seeds with its 95% interval, the paired differences and the change from the start policy
  (a ``worldsmith compare`` folder);
- the training curves of ``metrics.jsonl``, grouped by prefix (reward/, loss/, time/, ...), each
  method's mean over seeds for a comparison;
- sample completions of the final policy on eval-split problems with their grades (``samples``,
  generated from ``RUN/policy`` for registered environments);
- for a synth run: the admission funnel, the archive with each program's gate reports, and sample
  instances of the admitted programs (sampled in the sandbox; never run outside it);
- for an audit game folder (``vulnerable/`` and ``secure/``): the game curves side by side.

``build_report(folder) -> str`` makes the page; ``write_report(folder, out)`` writes it.
"""

from __future__ import annotations

import datetime
import html
import io
import json
import math
import pathlib
import re
import sqlite3
from collections.abc import Callable, Sequence

#: What the page may load: nothing beyond itself (inline styles, data: images).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

#: Metric groups plotted as curves, in this order; other prefixes follow alphabetically.
CURVE_ORDER = ("reward", "accuracy", "eval", "entropy", "kl", "groups", "loss", "game", "pool", "synth", "time")

#: Most points a curve keeps (longer runs are thinned evenly, the last point always kept).
MAX_POINTS = 400

#: Most archive programs whose gate reports (and, admitted, sample instances) the page shows.
MAX_PROGRAMS = 24

#: Most panels of one metric group, so a many-environment pool cannot grow the page without bound.
MAX_PANELS = 12

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:30px 0 8px;border-bottom:1px solid #d8dde5;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#667085}
table{border-collapse:collapse;margin:6px 0 12px;display:block;overflow-x:auto;max-width:100%;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8dde5;padding:4px 9px;text-align:left;vertical-align:top}th{background:#eef1f5}
td.num{text-align:right;white-space:nowrap}.up{color:#067647}.down{color:#b42318}
.pass{color:#067647;font-weight:600}.fail{color:#b42318;font-weight:600}
figure.plot{margin:8px 0 18px;background:#fff;border:1px solid #d8dde5;padding:6px}
figure.plot svg{max-width:100%;height:auto}figcaption{font-size:12px;color:#667085}
pre{background:#fff;border:1px solid #d8dde5;padding:8px;overflow:auto;max-height:420px;font-size:12px}
details{margin:6px 0}summary{cursor:pointer}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d8dde5;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}
"""


class ReportError(ValueError):
    """A folder the report cannot read (not a run folder); the message is one line."""


# --- reading the folder ------------------------------------------------------------------------------


def _json(path: pathlib.Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _jsonl(path: pathlib.Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break  # a torn last line
            if isinstance(row, dict):
                rows.append(row)
    return rows


def kind_of(root: pathlib.Path) -> str:
    """compare, synth, audit, train, or '' for a folder that holds no run."""
    if (root / "spec.json").is_file() and (root / "runs").is_dir():
        return "compare"
    if (root / "archive.sqlite").is_file() or (root / "funnel.jsonl").is_file():
        return "synth"
    if any((root / v / "metrics.jsonl").is_file() for v in ("vulnerable", "secure")):
        return "audit"
    if (root / "metrics.jsonl").is_file() or (root / "summary.json").is_file():
        return "train"
    return ""


# --- small HTML helpers ------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return esc(value)


#: A cell that is a number, an interval "0.5 [0.1, 0.9]", a count "3/5", or the dash of a missing value.
NUMERIC = re.compile(r"[+\-]?\d[\d.,e+\-]*(/\d+)?( \[[+\-]?[\d.]+, [+\-]?[\d.]+\])?|–")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are HTML already (escape text with ``esc``); numeric cells (``NUMERIC``) are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)

    def cell(c: str) -> str:
        numeric = NUMERIC.fullmatch(re.sub(r"<[^>]+>", "", c).strip()) is not None
        return f'<td class="num">{c}</td>' if numeric else f"<td>{c}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def interval(iv: dict | None, signed: bool = False) -> str:
    if not iv:
        return "–"
    f = "{:+.3f}" if signed else "{:.3f}"
    text = f"{f.format(iv['mean'])} [{f.format(iv['low'])}, {f.format(iv['high'])}]"
    if signed and (iv["low"] > 0 or iv["high"] < 0):
        return f'<span class="{"up" if iv["low"] > 0 else "down"}">{text}</span>'
    return text


# --- plots (inline SVG) --------------------------------------------------------------------------------


def _svg(fig) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no external references)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return text.replace("<svg ", '<svg class="plot-svg" role="img" ', 1)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "worldsmith", "font.size": 9})
    return plt


def figure(svg: str, caption: str, name: str) -> str:
    return f'<figure class="plot" data-plot="{esc(name)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    kept = [points[int(i * stride)] for i in range(MAX_POINTS)]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def numeric_keys(rows: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.setdefault(k, None)
    return list(keys)


def metric_groups(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Keys grouped by their first path part, in ``CURVE_ORDER`` then alphabetically."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.split("/")[0], []).append(k)
    order = [g for g in CURVE_ORDER if g in groups] + sorted(g for g in groups if g not in CURVE_ORDER)
    return [(g, groups[g]) for g in order]


def curves_svg(series: dict[str, dict[str, list[tuple[float, float]]]], keys: Sequence[str]) -> str:
    """Small multiples, one panel per key; ``series`` maps a line label to {key: points}."""
    plt = _pyplot()
    keys = list(keys)[:MAX_PANELS]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.7 * cols, 2.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes.flat, keys):
        for i, (label, by_key) in enumerate(series.items()):
            points = _thin(by_key.get(key, []))
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, lw=1.3, color=colors[i % len(colors)], label=label,
                        marker="o" if len(points) < 12 else None, ms=3)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(series) > 1:
        axes.flat[0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def bars_svg(labels: Sequence[str], values: Sequence[float], title: str,
             errors: Sequence[tuple[float, float]] | None = None) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.75 * len(labels) + 1.5), 3.0))
    xs = range(len(labels))
    yerr = None
    if errors is not None:
        yerr = [[v - lo for v, (lo, _) in zip(values, errors)], [hi - v for v, (_, hi) in zip(values, errors)]]
    ax.bar(xs, values, color="#4e79a7", yerr=yerr, capsize=4)
    for x, v in zip(xs, values):
        ax.text(x, v, f"{v:g}" if isinstance(v, int) else f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center",
                  fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def series_of(rows: list[dict], keys: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for i, r in enumerate(rows):
        step = r.get("step", i)
        for k in keys:
            v = r.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.setdefault(k, []).append((step, float(v)))
    return out


def mean_series(runs: list[list[dict]], keys: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """Per key, the mean over runs at each step that every run holding the key logged."""
    per_run = [series_of(rows, keys) for rows in runs]
    out = {}
    for k in keys:
        holding = [dict(s[k]) for s in per_run if k in s]
        if not holding:
            continue
        steps = sorted(set.intersection(*(set(h) for h in holding)))
        out[k] = [(x, sum(h[x] for h in holding) / len(holding)) for x in steps]
    return out


def curves_section(series: dict[str, dict[str, list[tuple[float, float]]]], keys: Sequence[str], note: str) -> str:
    if not keys:
        return ""
    parts = [f'<h2 id="curves">Training curves</h2><p class="muted">{esc(note)}</p>']
    for group, members in metric_groups(keys):
        more = f" (first {MAX_PANELS} of {len(members)})" if len(members) > MAX_PANELS else ""
        parts.append(f"<h3>{esc(group)}</h3>")
        parts.append(figure(curves_svg(series, members), f"{group}: {len(members)} metric(s){more}", f"curves-{group}"))
    return "".join(parts)


# --- sections ------------------------------------------------------------------------------------


def config_section(root: pathlib.Path) -> str:
    """The resolved config: ``config.yaml``, or for a comparison the config in ``spec.json``."""
    import yaml

    path = root / "config.yaml"
    if path.is_file():
        text, where = path.read_text(), "config.yaml (resolved, every field)"
    else:
        spec = _json(root / "spec.json")
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            return ""
        text = yaml.safe_dump(spec["config"], sort_keys=False)
        where = "the compared config (spec.json; each method overrides part of it)"
    return f'<h2 id="config">Config</h2><details><summary>{esc(where)}</summary><pre>{esc(text)}</pre></details>'


def before_after_section(summary: dict) -> str:
    after = summary.get("after")
    if not isinstance(after, dict):
        return ""
    before = summary.get("before") if isinstance(summary.get("before"), dict) else {}
    rows = []
    for key, value in after.items():
        if key == "problems":
            continue
        b = before.get(key) if before else None
        change = "–"
        if isinstance(b, (int, float)) and isinstance(value, (int, float)):
            d = value - b
            change = f'<span class="{"up" if d > 0 else "down" if d < 0 else ""}">{d:+.3f}</span>'
        rows.append([esc(key), num(b), num(value), change])
    problems = after.get("problems")
    note = (f"Held-out: {problems} eval-split problems per environment, problems no training seed can draw. "
            "One run: no interval (run <code>worldsmith compare</code> over seeds for means with 95% intervals).")
    out = f'<h2 id="heldout">Held-out evaluation</h2><p class="muted">{note}</p>'
    out += table(["metric", "before", "after", "change"], rows)
    per_env_before = (summary.get("eval_before") or {}).get("per_env") or {}
    per_env_after = (summary.get("eval_after") or {}).get("per_env") or {}
    if len(per_env_after) > 1:
        env_rows = []
        for env, s in per_env_after.items():
            b = per_env_before.get(env, {})
            env_rows.append([esc(env), num(s.get("problems")), num(b.get("greedy_accuracy")),
                             num(s.get("greedy_accuracy")), num(b.get("pass@1")), num(s.get("pass@1"))])
        out += "<h3>Per environment</h3>" + table(
            ["environment", "problems", "greedy before", "greedy after", "pass@1 before", "pass@1 after"], env_rows)
    return out


def overview(root: pathlib.Path, kind: str, summary: dict, rows: list[dict]) -> str:
    cards = [("kind", kind)]
    if summary.get("steps") is not None:
        cards.append(("steps", summary["steps"]))
    elif rows:
        cards.append(("steps", len(rows)))
    if summary.get("seconds") is not None:
        cards.append(("seconds", f"{summary['seconds']:.0f}"))
    if summary.get("tasks"):
        cards.append(("environments", ", ".join(f"{t['env']}@{t['difficulty']:g}" for t in summary["tasks"])))
    if summary.get("final_train_reward") is not None:
        cards.append(("final train reward", f"{summary['final_train_reward']:.3f}"))
    if summary.get("resumed_from") is not None:
        cards.append(("resumed from step", summary["resumed_from"]))
    tracked = _json(root / "tracking.json")
    if isinstance(tracked, dict) and tracked:
        cards.append(("also tracked in", ", ".join(tracked)))
    return '<div class="cards">' + "".join(f'<div class="card"><span class="muted">{esc(k)}</span><b>{esc(v)}</b></div>'
                                          for k, v in cards) + "</div>"


def compare_sections(root: pathlib.Path) -> tuple[str, str]:
    """(the tables and bar chart, the mean curves) of a compare folder."""
    result = _json(root / "compare.json")
    spec = _json(root / "spec.json") or {}
    parts = []
    if isinstance(result, dict):
        methods, seeds = result["methods"], result["seeds"]
        metrics = result["metrics"]
        accuracy = list(metrics.get("start", {}))
        columns = list(metrics[methods[0]])
        parts.append(f'<h2 id="heldout">Held-out evaluation over seeds</h2><p class="muted">Methods '
                     f"{esc(', '.join(methods))}; seeds {esc(', '.join(map(str, seeds)))} (n = {len(seeds)}); "
                     f"{result.get('problems')} eval-split problems, k = {result.get('k')}. Cells: mean over seeds "
                     "[95% confidence interval, Student t]. Paired differences are taken seed by seed.</p>")
        rows = [["start (before)"] + [interval(metrics["start"].get(c)) if c in accuracy else "–" for c in columns]]
        rows += [[esc(m)] + [interval(metrics[m].get(c)) for c in columns] for m in methods]
        parts.append("<h3>After training</h3>" + table(["method", *map(esc, columns)], rows))
        first = methods[0]
        rows = [[esc(m)] + [interval(result["paired"][m].get(c), signed=True) for c in accuracy] for m in methods]
        parts.append(f"<h3>Paired difference to {esc(first)} (method − {esc(first)}, same seed)</h3>"
                     + table(["method", *map(esc, accuracy)], rows))
        rows = [[esc(m)] + [interval(result["gain"][m].get(c), signed=True) for c in accuracy] for m in methods]
        parts.append("<h3>Change from the start policy (after − before, same seed)</h3>"
                     + table(["method", *map(esc, accuracy)], rows))
        mech = [[esc(m), esc(k), interval(iv)] for m in methods for k, iv in (result.get("mechanism", {}).get(m) or {}).items()]
        if mech:
            parts.append("<h3>Mechanism metrics (training, last 20% of steps)</h3>"
                         + table(["method", "metric", "mean [95% CI]"], mech))
        headline = "accuracy_sampled" if "accuracy_sampled" in accuracy else accuracy[0]
        labels = ["start", *methods]
        ivs = [metrics["start"][headline], *[metrics[m][headline] for m in methods]]
        if all(ivs):
            parts.append(figure(bars_svg(labels, [iv["mean"] for iv in ivs], f"held-out {headline} (mean, 95% CI)",
                                         [(iv["low"], iv["high"]) for iv in ivs]),
                                f"{headline} per method, mean over {len(seeds)} seeds with its 95% interval",
                                "compare-bars"))
        method_names = methods
    else:
        method_names = spec.get("methods", [])
        parts.append('<h2 id="heldout">Held-out evaluation over seeds</h2><p class="muted">compare.json is missing: '
                     "the comparison has not finished (rerun the same command to finish it).</p>")
    series, keys = {}, []
    for m in method_names:
        runs = [_jsonl(p / "metrics.jsonl") for p in sorted((root / "runs").glob(f"{m}-s*"))]
        runs = [r for r in runs if r]
        if runs:
            ks = numeric_keys([row for rows in runs for row in rows])
            keys += [k for k in ks if k not in keys]
            series[f"{m} (n={len(runs)})"] = mean_series(runs, ks)
    return "".join(parts), curves_section(series, keys, "Each line: a method's mean over its seeds at each step.")


def synth_sections(root: pathlib.Path, summary: dict, instances: int) -> str:
    parts = []
    funnel = summary.get("funnel")
    lines = _jsonl(root / "funnel.jsonl")
    if not funnel and lines:
        from collections import Counter

        funnel = dict(Counter(line.get("stage") for line in lines))
    if funnel:
        labels = list(funnel)
        parts.append('<h2 id="funnel">Admission funnel</h2><p class="muted">How many proposals reached each stage '
                     "(gates L1–L5, review, calibration in band, novelty, admitted).</p>")
        parts.append(figure(bars_svg(labels, [int(funnel[k]) for k in labels], "proposals reaching each stage"),
                            f"{sum(1 for _ in lines)} proposals in funnel.jsonl", "funnel"))
        parts.append(table(["stage", "proposals"], [[esc(k), str(v)] for k, v in funnel.items()]))
    if lines:
        outcomes: dict[str, int] = {}
        for line in lines:
            outcomes[f"{line.get('outcome')} at {line.get('stage')}"] = outcomes.get(f"{line.get('outcome')} at {line.get('stage')}", 0) + 1
        parts.append("<h3>Where proposals stopped</h3>" + table(
            ["outcome", "proposals"], [[esc(k), str(v)] for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])]))
    candidates = _archive(root / "archive.sqlite")
    if candidates:
        parts.append(f'<h2 id="archive">Archive</h2><p class="muted">{len(candidates)} programs in archive.sqlite.</p>')
        rows = []
        for c in candidates:
            gates = c["gates"]
            passed = sum(1 for g in gates if g.get("passed"))
            acc = num(c["accuracy"]) + (f" [{num(c['ci_low'])}, {num(c['ci_high'])}]" if c["ci_low"] is not None else "")
            rows.append([str(c["id"]), esc(c["name"] or "–"), esc(c["status"]), f"{passed}/{len(gates)}", acc,
                         num(c["difficulty_reward"]), num(c["novelty"]), esc(c["status_reason"] or "")])
        parts.append(table(["id", "name", "status", "gates passed", "solver accuracy [CI]", "difficulty reward",
                            "novelty", "reason"], rows))
        parts.append("<h3>Gate reports and sample instances</h3>")
        admitted = [c for c in candidates if c["status"] in ("admitted", "retired")]
        shown = admitted + [c for c in candidates if c not in admitted]
        if len(shown) > MAX_PROGRAMS:
            parts.append(f'<p class="muted">The first {MAX_PROGRAMS} of {len(shown)}, admitted ones first.</p>')
        for c in shown[:MAX_PROGRAMS]:
            gate_rows = [[esc(g.get("name")), '<span class="pass">pass</span>' if g.get("passed") else
                          '<span class="fail">fail</span>', esc(g.get("reason", "")), num(g.get("seconds"), 2)]
                         for g in c["gates"]]
            body = table(["gate", "verdict", "reason", "seconds"], gate_rows) if gate_rows else "<p>no gate reports</p>"
            if c["status"] in ("admitted", "retired") and instances:
                body += _program_instances(c, instances)
            body += f"<details><summary>source ({len(c['source'])} chars)</summary><pre>{esc(c['source'])}</pre></details>"
            parts.append(f"<details open><summary><b>#{c['id']} {esc(c['name'] or '')}</b> — {esc(c['status'])}"
                         f"</summary>{body}</details>")
    return "".join(parts)


def _archive(path: pathlib.Path) -> list[dict]:
    """The archive's candidates, read-only (the report never changes a run)."""
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM candidates ORDER BY id")]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return []
    for r in rows:
        try:
            r["gates"] = json.loads(r.get("gates") or "[]")
        except ValueError:
            r["gates"] = []
    return rows


def _program_instances(candidate: dict, count: int) -> str:
    """A few eval-split instances of an admitted program, sampled in the sandbox, with the grade of
    its own reference; or why none could be sampled."""
    from worldsmith.envs.contract import split_seed
    from worldsmith.synth.sandboxed_env import SandboxedEnvError, SandboxedEnvironment

    try:
        env = SandboxedEnvironment(candidate["source"], name=candidate["name"] or f"program {candidate['id']}")
        batch = env.sample_many([split_seed("eval", i) for i in range(count)], 0.0)
        grades = env.grade_many(batch, [f"<answer>{inst.reference}</answer>" for inst in batch])
    except (SandboxedEnvError, RuntimeError, ValueError, OSError) as exc:
        return f'<p class="muted">sample instances not shown: {esc(str(exc).splitlines()[0][:300])}</p>'
    rows = [[esc(inst.seed), f"<pre>{esc(inst.prompt)}</pre>", esc(inst.reference), num(g.value), esc(g.reason)]
            for inst, g in zip(batch, grades)]
    return (f"<p class=\"muted\">Sample instances at difficulty 0, sampled in the sandbox ({esc(env.isolation)}).</p>"
            + table(["seed", "prompt", "reference", "reference grade", "reason"], rows))


def samples_section(root: pathlib.Path, count: int, heading: str = "Sample completions", anchor: str = "samples") -> str:
    """Greedy completions of ``RUN/policy`` on eval-split problems of the run's registered
    environments, each graded by its environment, under ``heading``."""
    import yaml

    policy = root / "policy"
    config = root / "config.yaml"
    if count < 1 or not policy.is_dir() or not config.is_file():
        return ""
    from worldsmith import envs
    from worldsmith.envs.contract import split_seed

    try:
        cfg = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError:
        return ""
    specs = []
    for entry in cfg.get("pool") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name and name in envs.names():
            specs.append((name, float(entry.get("difficulty") or 0.0)))
    if not specs:
        return ""
    from worldsmith.policy.backend import SamplingParams
    from worldsmith.policy.hf_backend import HFBackend
    from worldsmith.policy.model import load_policy

    model, tokenizer = load_policy(policy, progress=False)
    backend = HFBackend(model, tokenizer)
    max_new = int((cfg.get("sampling") or {}).get("max_new_tokens") or 32)
    rows, passed, total = [], 0, 0
    for name, difficulty in specs[:6]:
        env = envs.get(name)
        batch = [env.sample(split_seed("eval", i), difficulty) for i in range(count)]
        out = backend.generate([inst.prompt for inst in batch], SamplingParams(max_new, temperature=0.0))
        for inst, text in zip(batch, out.texts):
            score = env.grade(inst, text)
            passed += bool(score.passed)
            total += 1
            verdict = '<span class="pass">pass</span>' if score.passed else '<span class="fail">fail</span>'
            rows.append([esc(name), f"<pre>{esc(inst.prompt)}</pre>", f"<pre>{esc(text)}</pre>", esc(inst.reference),
                         f"{verdict} {num(score.value)}", esc(score.reason)])
    return (f'<h2 id="{esc(anchor)}">{esc(heading)}</h2><p class="muted">Greedy completions of the final policy '
            f"({esc(root.name)}/policy) on the first {count} eval-split problems of each environment, graded by the environment: "
            f"{passed} of {total} pass.</p>"
            + table(["environment", "prompt", "completion", "reference", "grade", "reason"], rows))


def audit_sections(root: pathlib.Path) -> str:
    runs = {v: _jsonl(root / v / "metrics.jsonl") for v in ("vulnerable", "secure")}
    runs = {v: rows for v, rows in runs.items() if rows}
    keys = [k for k in numeric_keys([r for rows in runs.values() for r in rows]) if k.startswith("game/")]
    parts = []
    if keys:
        series = {v: series_of(rows, keys) for v, rows in runs.items()}
        parts.append('<h2 id="audit">Audit: the game on its vulnerable and secure variants</h2>'
                     '<p class="muted">game/itp: rate of intentional exploitation; game/er: exploit ratio; '
                     "game/raw_reward: the reward the loophole pays.</p>")
        parts.append(figure(curves_svg(series, keys), "game metrics per step, vulnerable vs secure", "audit-curves"))
    rows = []
    for v in runs:
        s = _json(root / v / "summary.json") or {}
        rows.append([esc(v)] + [num(s.get(k)) for k in ("raw_reward_first", "raw_reward_last", "itp_first", "itp_last",
                                                          "er_first", "er_last")])
    if rows:
        parts.append(table(["variant", "raw reward first", "raw reward last", "ITP first", "ITP last", "ER first",
                            "ER last"], rows))
    return "".join(parts)


# --- the page --------------------------------------------------------------------------------------


def build_report(root: str | pathlib.Path, samples: int = 4, instances: int = 2,
                 progress: Callable[[str], None] | None = None) -> str:
    """The HTML page of the run folder ``root``.

    ``samples``: greedy completions per environment generated from ``RUN/policy`` (0: none).
    ``instances``: sample instances per admitted synth program, sampled in the sandbox (0: none).
    ``progress`` receives one line per section built.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder")
    kind = kind_of(root)
    if not kind:
        raise ReportError(f"{root} holds no run (no metrics.jsonl, summary.json, spec.json, archive.sqlite or "
                          "vulnerable/ and secure/)")
    say = progress or (lambda line: None)
    summary = _json(root / "summary.json")
    summary = summary if isinstance(summary, dict) else {}
    rows = _jsonl(root / "metrics.jsonl")
    body = [f"<h1>worldsmith run report: {esc(root.resolve().name)}</h1>",
            f'<p class="muted">{esc(root.resolve())} · {esc(kind)} run · generated '
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}</p>"]
    body.append(overview(root, kind, summary, rows))
    if kind == "compare":
        say("report: comparison tables and curves")
        tables, curves = compare_sections(root)
        body += [tables, curves]
        if samples:
            say("report: sample completions")
            spec = _json(root / "spec.json") or {}
            for i, m in enumerate(spec.get("methods", [])):
                first = sorted((root / "runs").glob(f"{m}-s*"), key=lambda p: p.name)
                if first:
                    body.append(samples_section(first[0], samples, f"Sample completions: {m}, {first[0].name}",
                                                anchor="samples" if i == 0 else f"samples-{m}"))
    else:
        body.append(before_after_section(summary))
        if kind == "synth":
            say("report: funnel and archive")
            body.append(synth_sections(root, summary, instances))
        if kind == "audit":
            say("report: audit curves")
            body.append(audit_sections(root))
        if rows:
            say("report: training curves")
            keys = numeric_keys(rows)
            body.append(curves_section({"run": series_of(rows, keys)}, keys,
                                       f"{len(rows)} steps of metrics.jsonl, one panel per metric."))
        if samples:
            say("report: sample completions")
            body.append(samples_section(root, samples))
    body.append(config_section(root))
    joined = "".join(body)
    nav = " · ".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("heldout", "held-out"), ("curves", "curves"), ("samples", "samples"), ("funnel", "funnel"),
        ("archive", "archive"), ("audit", "audit"), ("config", "config")) if f'id="{a}"' in joined)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>worldsmith report: {esc(root.resolve().name)}</title><style>{CSS}</style></head>"
            f"<body><main><nav class=\"muted\">{nav}</nav>{joined}</main></body></html>\n")


def write_report(root: str | pathlib.Path, out: str | pathlib.Path | None = None, **options) -> pathlib.Path:
    """Write the page of ``root`` to ``out`` (default ``root/report.html``), atomically."""
    from worldsmith.runs import atomic_write_bytes

    page = build_report(root, **options)
    path = pathlib.Path(out) if out is not None else pathlib.Path(root) / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path

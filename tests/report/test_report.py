"""`worldsmith report`: one self-contained HTML page per run folder (train, compare, synth, audit),
checked by parsing it (no external URL anywhere) and by rendering it in headless Chromium (no
console errors, every plot drawn)."""

import contextlib
import html.parser
import io
import json
import pathlib
import re

import pytest
from chromium import find_chromium, open_page

from worldsmith import cli, envs
from worldsmith.configuration import build
from worldsmith.report.html import build_report, write_report
from worldsmith.rl.config import RunConfig
from worldsmith.runs import RunDir

CORPUS = pathlib.Path(__file__).resolve().parents[2] / "src" / "worldsmith" / "synth" / "corpus"

TINY = {
    "threads": 1,
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
    "pool": [{"name": "arithmetic_chain", "difficulty": 0.0}, {"name": "gcd_euclid", "difficulty": 0.0}],
    "sampling": {"max_new_tokens": 8, "temperature": 1.0},
    "sft": {"examples": 32, "epochs": 1, "batch_size": 16},
    "train": {"steps": 3, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8, "microbatch_size": 8,
              "checkpoint_every": 0},
    "eval": {"instances": 8, "samples": 2},
}


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


class Links(html.parser.HTMLParser):
    """Every URL-bearing attribute and CSS url() of a page, and every element's tag."""

    ATTRIBUTES = {"src", "href", "srcset", "action", "poster", "data", "formaction", "xlink:href", "background"}

    def __init__(self, page: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.feed(page)
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", page)
        self.urls += re.findall(r"@import\s+['\"]?([^'\";\s]+)", page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name.lower() in self.ATTRIBUTES]

    def external(self) -> list[str]:
        """URLs that would make the browser fetch something outside the page."""
        return [u for u in self.urls if not (u.startswith("#") or u.startswith("data:"))]


# --- run folders -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    """A real train run (tiny model, two environments, evaluation before and after)."""
    from worldsmith.recipes import train_run

    out = tmp_path_factory.mktemp("train") / "run"
    train_run(build(RunConfig, TINY), out, progress=False, evaluate_before=True)
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    """A comparison folder whose compare.json is made by ``compare.report`` from per-run summaries."""
    from worldsmith.compare import report

    out = tmp_path_factory.mktemp("compare")
    metrics = {"accuracy_greedy": 0.0, "accuracy_sampled": 0.0}
    (out / "spec.json").write_text(json.dumps({"methods": ["grpo", "mssr"], "start": "config",
                                               "config": build(RunConfig, TINY).model_dump(mode="json")}))
    for m, gain in (("grpo", 0.1), ("mssr", 0.2)):
        for seed in range(3):
            run = RunDir(out / "runs" / f"{m}-s{seed}")
            for step in range(4):
                run.log({"step": step, "reward/mean": gain * step + 0.01 * seed, "entropy": 1.0 - 0.1 * step})
            before = {k: 0.1 + 0.01 * seed for k in metrics}
            run.write_summary({"method": m, "seed": seed, "before": before,
                               "after": {k: v + gain for k, v in before.items()},
                               "mechanism": {"entropy": 0.8}, "completions": 32, "train_seconds": 1.0, "steps": 4,
                               "problems": 8, "k": 2})
    report(out, ["grpo", "mssr"], [0, 1, 2])
    return out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """A synth run's archive: a corpus program admitted and a buggy one rejected, each with the
    gate reports the real gates (in the sandbox) gave it; funnel.jsonl and summary.json to match."""
    from worldsmith.synth.archive import Archive
    from worldsmith.synth.gates import validate

    out = tmp_path_factory.mktemp("synth")
    lines = []
    with Archive(out / "archive.sqlite") as archive:
        for name, status in (("base_conversion", "admitted"), ("bug_answer_leak", "rejected")):
            source = (CORPUS / f"{name}.py").read_text()
            cid = archive.add(source, "corpus", name=name)
            verdict = validate(source)
            archive.record_gates(cid, verdict.gates, verdict.isolation)
            assert verdict.admitted == (status == "admitted"), verdict.to_json()
            if status == "admitted":
                archive.set_calibration(cid, 0.5, 0.25, 0.75, 0.8)
            archive.set_status(cid, status, "in band and novel" if status == "admitted" else verdict.failed_gate)
            lines.append({"index": len(lines), "name": name, "id": cid, "outcome": status,
                          "stage": "admitted" if status == "admitted" else verdict.failed_gate})
    (out / "funnel.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (out / "summary.json").write_text(json.dumps({"steps": 2, "after": {"accuracy_greedy": 0.25, "problems": 8},
                                                  "funnel": {"candidates": 2, "passed_L1": 2, "passed_L5": 1,
                                                             "admitted": 1}}))
    run = RunDir(out)
    for step in range(2):
        run.log({"step": step, "reward/mean": 0.1 * step, "synth/admitted": step})
    return out


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    for variant, itp in (("vulnerable", 0.5), ("secure", 0.0)):
        run = RunDir(out / variant)
        for step in range(5):
            run.log({"step": step, "game/itp": itp * step / 4, "game/er": itp, "game/raw_reward": 0.2 * step})
        run.write_summary({"itp_first": 0.0, "itp_last": itp})
    return out


# --- the page's content --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_page(train_dir):
    return build_report(train_dir, samples=3)


def test_a_train_run_page_has_before_after_curves_samples_and_config(train_dir, train_page):
    page = train_page
    summary = json.loads((train_dir / "summary.json").read_text())
    row = re.search(r"<tr><td>accuracy_sampled</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:2] == [f"{summary['before']['accuracy_sampled']:.3f}", f"{summary['after']['accuracy_sampled']:.3f}"]
    assert "Per environment" in page and "gcd_euclid" in page  # two environments: a row each
    metric_keys = {k for r in RunDir(train_dir).read_metrics() for k in r if k != "step"}
    assert {"curves-reward", "curves-loss", "curves-time"} <= set(re.findall(r'data-plot="([^"]+)"', page))
    assert all(f">{k}<" in page for k in ("reward/mean", "entropy", "loss/pg_loss") if k in metric_keys)
    # samples: 3 greedy completions per environment, each graded; the count in the text matches
    sample_rows = re.findall(r'<span class="(pass|fail)">(pass|fail)</span>', page.split('id="samples"')[1])
    assert len(sample_rows) == 6
    passed = int(re.search(r"(\d+) of 6 pass", page).group(1))
    assert passed == sum(1 for cls, _ in sample_rows if cls == "pass")
    assert "train:" in page and "steps: 3" in page  # config.yaml, escaped into a <pre>


def test_sample_grades_are_the_environments_grades(train_page):
    section = train_page.split('id="samples"')[1]
    rows = re.findall(r"<tr><td>([a-z_]+)</td><td[^>]*><pre>(.*?)</pre></td><td[^>]*><pre>(.*?)</pre></td>"
                      r"<td[^>]*>.*?</td><td[^>]*><span class=\"(pass|fail)\">", section, flags=re.S)
    assert len(rows) == 6
    import html as html_lib

    for name, prompt, completion, verdict in rows:
        env = envs.get(name)
        instance = next(env.sample(envs.split_seed("eval", i), 0.0) for i in range(3)
                        if env.sample(envs.split_seed("eval", i), 0.0).prompt == html_lib.unescape(prompt))
        assert env.grade(instance, html_lib.unescape(completion)).passed == (verdict == "pass")


def test_a_comparison_page_has_intervals_paired_differences_and_mean_curves(compare_dir):
    page = build_report(compare_dir)
    result = json.loads((compare_dir / "compare.json").read_text())
    iv = result["paired"]["mssr"]["accuracy_sampled"]
    assert f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]" in page
    assert "Paired difference to grpo" in page and "Change from the start policy" in page
    assert 'data-plot="compare-bars"' in page and 'data-plot="curves-reward"' in page
    assert "grpo (n=3)" in page and "mssr (n=3)" in page  # mean curves over each method's seeds


def test_a_comparison_page_shows_completions_of_each_methods_first_seed(compare_dir, train_dir, tmp_path):
    import shutil

    folder = tmp_path / "cmp"
    shutil.copytree(compare_dir, folder)
    for m in ("grpo", "mssr"):  # a trained policy in each method's first run
        shutil.copytree(train_dir / "policy", folder / "runs" / f"{m}-s0" / "policy")
        shutil.copy(train_dir / "config.yaml", folder / "runs" / f"{m}-s0" / "config.yaml")
    page = build_report(folder, samples=1)
    assert re.findall(r'<h2 id="(samples[^"]*)">Sample completions: (\w+), \w+-s0<', page) == \
        [("samples", "grpo"), ("samples-mssr", "mssr")]
    assert len(re.findall(r"\d+ of 2 pass", page)) == 2  # one problem of each of the two environments


def test_a_synth_page_has_funnel_archive_gate_reports_and_sandboxed_instances(synth_dir):
    page = build_report(synth_dir, instances=2)
    assert 'data-plot="funnel"' in page
    assert "base_conversion" in page and "bug_answer_leak" in page
    assert "answer leaked" in page  # the rejected program's L5 report
    section = page.split("#1 base_conversion")[1].split("#2 ")[0]
    assert section.count('<span class="pass">pass</span>') == 5  # its five gates
    assert "Sample instances at difficulty 0, sampled in the sandbox" in section
    grades = re.findall(r"<td[^>]*>(1\.000)</td><td>", section)
    assert len(grades) == 2  # both sampled instances: its own reference grades 1
    assert "class BaseConversion" in section  # the source, escaped


def test_without_a_sandbox_no_program_runs_and_the_page_says_why(synth_dir, no_isolation):
    page = build_report(synth_dir, instances=2)
    section = page.split("#1 base_conversion")[1].split("#2 ")[0]
    assert "sample instances not shown: " in section and "unsafe-no-isolation" in section
    assert "Sample instances at difficulty 0" not in page


def test_an_audit_folder_page_has_the_game_curves_of_both_variants(audit_dir):
    page = build_report(audit_dir)
    assert 'data-plot="audit-curves"' in page and ">vulnerable<" in page and ">secure<" in page


@pytest.fixture(scope="module")
def pages(train_dir, train_page, compare_dir, synth_dir, audit_dir, tmp_path_factory):
    """Each kind of run's page, written to a file: {kind: path}."""
    folder = tmp_path_factory.mktemp("pages")
    out = {"train": folder / "train.html"}
    out["train"].write_text(train_page)
    for kind, run in (("compare", compare_dir), ("synth", synth_dir), ("audit", audit_dir)):
        out[kind] = write_report(run, folder / f"{kind}.html", instances=1)
    return out


def test_no_page_names_anything_to_fetch(pages):
    for kind, path in pages.items():
        page = path.read_text()
        links = Links(page)
        assert "svg" in links.tags and links.external() == [], kind
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
            'xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace("http://purl.org/dc", "").replace(
            "http://creativecommons.org/ns#", "").replace("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "")
    bad = Links('<link href="https://cdn.example/x.css"><img src="//cdn.example/a.png">'
                '<style>@import "https://x/y.css"; p{background:url(http://x/y.png)}</style>')
    assert len(bad.external()) == 4  # the check itself finds what it must


@pytest.mark.slow
def test_a_long_run_page_stays_small(tmp_path, train_dir):
    """A quickstart run's 300 steps: the page stays under 5 MB (curves are thinned, plots are SVG)."""
    rows = RunDir(train_dir).read_metrics()
    run = RunDir(tmp_path)
    for step in range(300):
        run.log({**rows[step % len(rows)], "step": step})
    (tmp_path / "config.yaml").write_text((train_dir / "config.yaml").read_text())
    path = write_report(tmp_path, samples=0)
    assert path == tmp_path / "report.html" and path.stat().st_size < 5_000_000


# --- the command -----------------------------------------------------------------------------------


def test_the_command_writes_the_page_and_says_where(audit_dir, tmp_path):
    code, out, err = run_cli("report", audit_dir, "--out", tmp_path / "page.html")
    assert code == 0, err
    assert out.startswith(f"report: {tmp_path / 'page.html'} (") and (tmp_path / "page.html").stat().st_size > 10_000
    assert 'data-plot="audit-curves"' in (tmp_path / "page.html").read_text()


@pytest.mark.parametrize("make, extra, fragment", [
    (lambda p: p / "missing", [], "no such folder"),
    (lambda p: p, [], "holds no run"),
    (lambda p: p, ["--samples", "-1"], "--samples: must be 0 or more, got -1"),
])
def test_bad_input_is_one_line_with_exit_2(tmp_path, make, extra, fragment):
    code, out, err = run_cli("report", make(tmp_path), *extra)
    assert code == 2 and err.count("\n") == 1 and fragment in err and err.startswith("error: report: ")


# --- in a browser --------------------------------------------------------------------------------


PLOTS = """JSON.stringify([...document.querySelectorAll('figure.plot')].map(f => {
  const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {name: f.dataset.plot, width: box.width, height: box.height,
          lines: svg ? svg.querySelectorAll('path, line, rect, polyline').length : 0};
}))"""


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary (Debian: apt-get install chromium)")
def test_pages_render_in_headless_chromium_without_errors(pages, tmp_path):
    for kind, path in pages.items():
        expected = re.findall(r'data-plot="([^"]+)"', path.read_text())
        page = open_page(path.resolve().as_uri(), PLOTS)
        assert page.errors == [], (kind, page.errors)
        plots = json.loads(page.value)
        assert [p["name"] for p in plots] == expected and expected
        assert all(p["width"] > 100 and p["height"] > 50 and p["lines"] > 5 for p in plots), plots
    # the same check sees an error where there is one
    broken = tmp_path / "broken.html"
    broken.write_text(pages["audit"].read_text().replace("</main>", '<img src="https://example.invalid/x.png"></main>'))
    assert any("Content Security Policy" in e for e in open_page(broken.resolve().as_uri(), "1").errors)

"""`worldsmith vision show | verify | bench`, in process: outputs, and one-line errors for mistakes."""

import json

import pytest

from worldsmith import envs
from worldsmith.cli import main
from worldsmith.envs.contract import split_seed

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")


def test_show_writes_the_instance_image(tmp_path, capsys):
    out = tmp_path / "scene.png"
    assert main(["vision", "show", "vis_chart", "--index", "1", "--out", str(out)]) == 0
    inst = envs.get("vis_chart").sample(split_seed("eval", 1), 0.5)
    printed = capsys.readouterr().out
    assert printed.startswith(inst.prompt) and f"<answer>{inst.reference}</answer>" in printed
    assert out.read_bytes().startswith(b"\x89PNG")


def test_verify_reports_three_levels_and_the_gate(tmp_path, capsys):
    env = envs.get("vis_count")
    inst = env.sample(split_seed("eval", 0), 0.5)
    steps = env.steps(inst.data)
    steps[0] = steps[0].rsplit("=", 1)[0] + "= 99"
    response = tmp_path / "r.txt"
    response.write_text("\n".join(steps) + "\n" + env.wrap(inst.reference))
    assert main(["vision", "verify", "vis_count", "--response", str(response)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answer"] == 1.0 and report["reward"] == 0.0 and report["stage"] == "perception"
    assert report["steps"][0]["grounded"] is False and report["executable"]["status"] == "absent"


def test_bench_writes_balanced_pairs(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert main(["vision", "bench", "--per-category", "2", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {r["category"] for r in rows} == {"general", "hallucination", "reasoning"}
    assert sum(r["label"] == "A" for r in rows) == 3 and all(r["image_png_b64"] for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["vision", "show", "gcd_euclid", "--out", "x.png"], "not an image environment"),
    (["vision", "show", "vis_count", "--out", "x.txt"], "must name a .png"),
    (["vision", "show", "vis_count", "--out", "/no/such/dir/x.png"], "does not exist"),
    (["vision", "verify", "vis_count", "--response", "/no/such/file"], "no file"),
    (["vision", "bench", "--per-category", "0", "--out", "b.jsonl"], "positive integer"),
])
def test_user_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1

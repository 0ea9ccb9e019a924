"""`worldsmith agent ...` and `worldsmith cso ...` as a user meets them (in-process ``main``)."""

import json

import pytest

from worldsmith.cli import main


def test_agent_list_and_expert_play(capsys):
    assert main(["agent", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("agent_gridworld", "agent_kb_lookup", "agent_data_task"))
    assert main(["agent", "play", "agent_kb_lookup", "--difficulty", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["end"] == "answered" and summary["reward"] == 1.0 and summary["turns"] >= 4
    assert lines[2].startswith("> open(")


def test_agent_play_counts_bad_actions(capsys):
    assert main(["agent", "play", "agent_gridworld", "--action", "move(Q)", "--action", "fly", "--action",
                 "answer(no)"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"end": "answered", "reward": 0.0, "turns": 3,
                       "errors": {"tool_error": 1, "malformed_action": 1}}


def test_user_mistakes_are_one_line_errors(capsys, tmp_path):
    assert main(["agent", "play", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown agent environment 'nope'") and "\n" not in err
    cfg = tmp_path / "cso.yaml"
    cfg.write_text("gamma_low: 2\n")
    assert main(["cso", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gamma_low" in err and "\n" not in err
    cfg.write_text(f"start: {tmp_path / 'missing.pt'}\n")
    assert main(["cso", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["agent", "compare", "--methods", "cso", "--out", str(tmp_path / "c")]) == 2


@pytest.mark.slow
def test_cso_command_runs_and_resumes(capsys, tmp_path):
    import torch

    from worldsmith.policy.model import TinyModelConfig, build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer

    start = tmp_path / "start.pt"
    torch.save(build_tiny_model(build_char_tokenizer(), TinyModelConfig(max_position_embeddings=512)).state_dict(), start)
    cfg = tmp_path / "cso.yaml"
    cfg.write_text(f"start: {start}\ntasks_per_round: 2\nk: 2\nmax_additional_steps: 1\nmax_action_tokens: 4\neval_problems: 2\n")
    out = tmp_path / "run"
    assert main(["cso", str(cfg), "--out", str(out)]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(first["pairs"]) == 1 and 0.0 <= first["supervised_share"][0] <= 1.0
    assert (out / "round_0" / "pairs.jsonl").exists() and (out / "config.yaml").exists()
    assert main(["cso", str(cfg), "--out", str(out)]) == 0  # finished rounds are not redone
    captured = capsys.readouterr()
    assert "resuming after round 1" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["pairs"] == first["pairs"]

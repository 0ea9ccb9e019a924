"""`worldsmith eval --base-url`: a served model evaluated with the same metrics and JSON as a local one.

The fast tests talk to ``OracleServerDouble`` (tests/oracle_server.py), a test double of an
OpenAI-compatible server on 127.0.0.1 that answers a known share of the problems correctly, so the expected accuracy is known
exactly. The slow test serves a saved policy with ``transformers serve`` (a real server this project
did not write) and checks agreement with local greedy evaluation of the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from oracle_server import OracleServerDouble, answers_right

from worldsmith import envs
from worldsmith.cli import main

ENV = "gcd_euclid"
INSTANCES = 16
KEY_VAR = "WORLDSMITH_TEST_SERVED_KEY"


def _eval_instances(n: int = INSTANCES) -> list[envs.Instance]:
    env = envs.get(ENV)
    return [env.sample(envs.split_seed("eval", i), 0.0) for i in range(n)]


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _served_args(url: str, *extra: str) -> list[str]:
    return ["eval", "--model", "served-policy", "--base-url", url, "--env", ENV, "--instances", str(INSTANCES),
            "--samples", "2", "--json", *extra]


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_served_eval_reports_the_accuracy_the_server_earns(endpoint, capsys, monkeypatch):
    expected = sum(answers_right(inst) for inst in _eval_instances()) / INSTANCES
    assert 0.0 < expected < 1.0  # the double's rule splits these problems
    monkeypatch.setenv(KEY_VAR, "sekrit-123")
    with OracleServerDouble(_eval_instances(), key="sekrit-123") as server:
        code, out, err = _run_cli(_served_args(server.url, "--endpoint", endpoint, "--api-key-env", KEY_VAR), capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["accuracy_greedy"] == pytest.approx(expected, abs=1e-12)
    assert summary["accuracy_sampled"] == pytest.approx(expected, abs=1e-12)  # the double answers alike every time
    assert summary["overall"]["problems"] == INSTANCES and summary["k"] == 2
    assert summary["served"] == {"base_url": server.url, "model": "served-policy", "endpoint": endpoint}
    # one greedy request and two sampled ones per instance, all with the key and the model name
    assert len(server.requests) == 3 * INSTANCES
    assert {r["auth"] for r in server.requests} == {"Bearer sekrit-123"}
    assert {r["body"]["model"] for r in server.requests} == {"served-policy"}
    assert sorted(r["body"]["temperature"] for r in server.requests)[:INSTANCES] == [0.0] * INSTANCES
    assert "sekrit" not in out + err


def test_served_eval_has_the_keys_of_a_local_eval(capsys, tmp_path):
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model, save_policy
    from worldsmith.policy.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    save_policy(build_tiny_model(tok, TinyModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                                      intermediate_size=32)), tok, tmp_path / "policy")
    code, out, err = _run_cli(["eval", "--model", str(tmp_path / "policy"), "--env", ENV, "--instances", "4",
                               "--samples", "2", "--max-new-tokens", "4", "--json"], capsys)
    assert code == 0, err
    local = json.loads(out)
    with OracleServerDouble(_eval_instances()) as server:
        code, out, err = _run_cli(_served_args(server.url), capsys)
    assert code == 0, err
    served = json.loads(out)
    assert set(served) - {"served"} == set(local)
    assert set(served["overall"]) == set(local["overall"])


def test_served_eval_user_mistakes_are_one_line(capsys, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    code, _, err = _run_cli(_served_args("http://127.0.0.1:9", "--api-key-env", KEY_VAR), capsys)
    assert code == 2 and err.count("\n") == 1 and KEY_VAR in err
    code, _, err = _run_cli(_served_args("ftp://somewhere"), capsys)
    assert code == 2 and err.count("\n") == 1 and "base URL" in err
    code, _, err = _run_cli(["eval", "--model", "x", "--env", ENV, "--api-key-env", KEY_VAR], capsys)
    assert code == 2 and "--base-url" in err


def test_an_unreachable_server_is_a_one_line_failure(capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = _run_cli(_served_args(f"http://127.0.0.1:{port}", "--timeout", "2"), capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "cannot connect" in err and "Traceback" not in err


# --- a real third-party server ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"transformers serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("transformers serve did not become healthy")


@pytest.mark.slow
def test_transformers_serve_agrees_with_local_greedy_eval(tmp_path, capsys):
    """A briefly fine-tuned tiny policy, served by ``transformers serve`` on CPU, evaluated both ways."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import torch

    from worldsmith.policy.backend import SamplingParams
    from worldsmith.policy.hf_backend import HFBackend
    from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model, save_policy
    from worldsmith.policy.sft import sft_examples, train_sft
    from worldsmith.policy.tokenizer import build_char_tokenizer

    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers command is not installed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tok = build_char_tokenizer()
        model = build_tiny_model(tok, TinyModelConfig(), seed=0)
        train_sft(model, tok, sft_examples([("arithmetic_chain", 0.0, 1.0)], 2000, seed=0), epochs=2, lr=3e-3,
                  batch_size=16, seed=0, progress=False)
        save_policy(model, tok, tmp_path / "policy")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        with open(tmp_path / "serve.log", "wb") as log:
            proc = subprocess.Popen([cli, "serve", str(tmp_path / "policy"), "--host", "127.0.0.1", "--port", str(port),
                                     "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(url, proc)
            common = ["--env", "arithmetic_chain", "--instances", "48", "--samples", "1", "--max-new-tokens", "40",
                      "--json"]
            code, out, err = _run_cli(["eval", "--model", str(tmp_path / "policy"), *common], capsys)
            assert code == 0, err
            local = json.loads(out)
            code, out, err = _run_cli(["eval", "--model", str(tmp_path / "policy"), "--base-url", url, *common], capsys)
            assert code == 0, err + (tmp_path / "serve.log").read_text()[-2000:]
            served = json.loads(out)
            # the same greedy completions, text for text, on a second set of problems
            prompts = [envs.get("arithmetic_chain").sample(envs.split_seed("eval", 1000 + i), 0.0).prompt
                       for i in range(16)]
            greedy = SamplingParams(max_new_tokens=40, temperature=0.0)
            local_texts = HFBackend(model, tok).generate(prompts, greedy).texts
            http = HTTPBackend(HTTPBackendConfig(base_url=url, model=str(tmp_path / "policy"), logprobs=False,
                                                 prompt_suffix="\n"))
            served_texts = http.generate(prompts, greedy).texts
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        torch.set_num_threads(threads)
    same = sum(a == b for a, b in zip(local_texts, served_texts)) / len(prompts)
    print(f"served greedy accuracy {served['accuracy_greedy']:.3f} vs local {local['accuracy_greedy']:.3f}; "
          f"identical greedy completions {same:.2f}")
    assert abs(served["accuracy_greedy"] - local["accuracy_greedy"]) <= 0.05
    assert same >= 0.9
    assert any("<answer>" in t for t in served_texts)  # the policy learnt the answer format: texts carry signal

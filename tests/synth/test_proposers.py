"""Proposers (worldsmith.synth.proposers): the generator prompt, program extraction, and proposals from
a policy (a tiny local HF model, and an HTTP server replaying recorded completions) and from a folder.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch

from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.synth.gates import GateConfig, lint
from worldsmith.synth.proposers import (
    CorpusProposer,
    PolicyProposer,
    Proposal,
    build_generator_prompt,
    exemplar_id,
    extract_program,
    seed_exemplars,
)

TESTS = Path(__file__).resolve().parents[1]
RECORDED = json.loads((TESTS / "synth" / "fixtures" / "recorded_completions.json").read_text())


def _recorded(name: str) -> str:
    for record in RECORDED["completions"] + RECORDED["chat"]:
        if record["name"] == name:
            choice = record["reply"]["choices"][0]
            return choice["text"] if "text" in choice else choice["message"]["content"]
    raise KeyError(name)


def _replay_server_module():
    """The ReplayServerDouble lives with the HTTP backend's tests; load that file by path."""
    spec = importlib.util.spec_from_file_location("_http_backend_tests", TESTS / "policy" / "test_http_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- prompt --------------------------------------------------------------------------------------------
def test_generator_prompt_shows_k_exemplars_and_asks_for_one_python_block():
    seeds = seed_exemplars()
    assert len(seeds) == 10 and all("class " in s for s in seeds)
    prompt = build_generator_prompt(seeds, 3, random.Random(0))
    assert prompt.count("```python\n") == 3 and "Example 3:" in prompt and "Example 4:" not in prompt
    assert "def generate(self, rng: random.Random, difficulty: float) -> dict" in prompt
    assert "one ```python code block" in prompt
    assert "@register" not in prompt and "worldsmith.envs.registry" not in prompt
    assert prompt == build_generator_prompt(seeds, 3, random.Random(0))  # deterministic given the rng
    assert prompt != build_generator_prompt(seeds, 3, random.Random(1))
    assert build_generator_prompt(seeds[:2], 5, random.Random(0)).count("```python\n") == 2
    assert "Example" not in build_generator_prompt(seeds, 0, random.Random(0))
    with pytest.raises(ValueError):
        build_generator_prompt(seeds, -1, random.Random(0))
    assert exemplar_id(seeds[1]) == "gcd_euclid"
    assert exemplar_id("x = 1\n").startswith("sha:")


# --- extraction ------------------------------------------------------------------------------------------
def test_extract_program_takes_the_last_closed_python_block():
    program = extract_program(_recorded("program"))
    assert program is not None and program.startswith("import random") and program.endswith("\n")
    assert lint(program, GateConfig()) == "ModularPower"  # parsed only; nothing runs
    assert extract_program(_recorded("chat_program")) == program  # ```py fence, no trailing newline
    assert extract_program(_recorded("junk")) is None  # a ```text block and an unclosed python block
    two = "```python\nfirst = 1\n```\nrevised:\n```Python\nsecond = 2\n```\n"
    assert extract_program(two) == "second = 2\n"
    assert extract_program("no code at all") is None
    assert extract_program("```python\n\n   \n```") is None
    assert extract_program("```\nuntagged = 1\n```") is None
    assert extract_program("```python\n" + "x = 1\n" * 100 + "```", max_chars=50) is None
    assert extract_program(None) is None  # type: ignore[arg-type]
    big = "```python\nok = 1\n```\n" + "z" * 500_000
    assert extract_program(big) is None  # only the tail is scanned


# --- proposers -------------------------------------------------------------------------------------------
def test_policy_proposer_over_a_tiny_hf_model_yields_junk_gracefully():
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(max_position_embeddings=4096), seed=0)
    short = ['class Tiny(Environment):\n    name = "tiny"\n']
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=0)
    proposer = PolicyProposer(HFBackend(model, tok), short, k=1, params=params, seed=3)
    proposals, rollouts = proposer.generate(2, group_size=2)
    assert len(proposals) == len(rollouts) == 4
    assert all(isinstance(p, Proposal) and p.source is None for p in proposals)
    assert all(p.parents == ("tiny",) and p.proposer == "policy" for p in proposals)
    assert proposals[0].prompt == proposals[1].prompt and "Example 1:" in proposals[0].prompt
    assert [p.origin for p in proposals] == ["row 0", "row 1", "row 2", "row 3"]
    assert rollouts.behaviour_logp.shape == rollouts.completion_ids.shape


def test_policy_proposer_over_http_replays_a_valid_program():
    module = _replay_server_module()
    seeds = seed_exemplars()
    with module.ReplayServerDouble() as server:
        backend = HTTPBackend(HTTPBackendConfig(base_url=server.url, model="m", backoff_s=0.0, timeout_s=5.0))
        proposer = PolicyProposer(backend, seeds, k=2, params=SamplingParams(max_new_tokens=1024), seed=7)
        proposals = proposer.propose(3)
    assert len(proposals) == 3 and len(server.requests) == 3
    expected = extract_program(_recorded("program"))
    assert all(p.source == expected for p in proposals)
    ids = {exemplar_id(s) for s in seeds}
    assert all(len(p.parents) == 2 and set(p.parents) <= ids for p in proposals)
    assert sorted(r["body"]["prompt"] for r in server.requests) == sorted(p.prompt for p in proposals)
    again = PolicyProposer(backend, seeds, k=2, seed=7).prompts(3)
    assert [p for p, _ in again] == [p.prompt for p in proposals]  # the exemplar draw is seeded


def test_corpus_proposer_reads_sorted_files_then_stops_or_cycles(tmp_path):
    (tmp_path / "b_env.py").write_text("B = 2\n")
    (tmp_path / "a_env.py").write_text("A = 1\n")
    (tmp_path / "c_env.py").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub.py").mkdir()

    corpus = CorpusProposer(tmp_path)
    assert len(corpus) == 3
    first = corpus.propose(2)
    assert [p.source for p in first] == ["A = 1\n", "B = 2\n"]
    assert [Path(p.origin).name for p in first] == ["a_env.py", "b_env.py"]
    assert all(p.proposer == "corpus" and p.parents == () and p.prompt == "" for p in first)
    rest = corpus.propose(5)
    assert len(rest) == 1 and rest[0].source is None  # unreadable file: no program
    assert corpus.exhausted and corpus.propose(1) == []
    corpus.reset()
    assert [p.source for p in corpus.propose(1)] == ["A = 1\n"]

    cycling = CorpusProposer(tmp_path, cycle=True, name="bench")
    names = [Path(p.origin).name for p in cycling.propose(7)]
    assert names == ["a_env.py", "b_env.py", "c_env.py"] * 2 + ["a_env.py"]
    assert CorpusProposer(tmp_path, cycle=True).propose(7) == CorpusProposer(tmp_path, cycle=True).propose(7)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert CorpusProposer(empty, cycle=True).propose(3) == []
    with pytest.raises(NotADirectoryError):
        CorpusProposer(tmp_path / "missing")

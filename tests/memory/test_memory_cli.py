"""`worldsmith memory book|read|eval` on a tiny real model folder, in process."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from worldsmith.cli import main
from worldsmith.memory.book import generate_book
from worldsmith.memory.experiment import encode
from worldsmith.policy.model import TinyModelConfig, build_tiny_model, load_policy, save_policy
from worldsmith.policy.tokenizer import build_char_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("memory") / "model"
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=2, intermediate_size=64,
                                                  max_position_embeddings=256), seed=0)
    save_policy(model, tok, path)
    return path


def test_book_then_read_with_merge_writes_results_plot_and_a_loadable_merged_model(model_dir, tmp_path, capsys):
    book = tmp_path / "book.txt"
    assert main(["memory", "book", "--out", str(book), "--chars", "3000", "--seed", "4"]) == 0
    assert book.read_text() == generate_book(4, chars=3000).text
    questions = json.loads(book.with_suffix(".questions.json").read_text())
    assert len(questions["questions"]) == 24
    out = tmp_path / "read"
    code = main(["memory", "read", str(book), "--model", str(model_dir), "--out", str(out), "--window", "128",
                 "--chunk", "64", "--rank", "4", "--baseline", "--merge", "--bins", "4"])
    assert code == 0
    summary = json.loads((out / "read.json").read_text())
    assert summary["method"] == "locas-glu-top_r" and summary["memory_params"] == 2 * 3 * 4 * 32
    assert len(summary["ppl_by_position"]) == 4 and summary["time_ratio"] > 0
    assert (out / "ppl_by_position.png").stat().st_size > 1000
    assert "perplexity" in capsys.readouterr().out
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert merged.config.intermediate_size == 64 + 4
    plain, tok = load_policy(model_dir, progress=False)
    ids = encode(tok, book.read_text()[:100])[None]
    with torch.no_grad():  # the memory learnt something: the merged model is not the backbone
        assert not torch.allclose(merged(ids).logits, plain(ids).logits, atol=1e-4)


@pytest.mark.slow
def test_eval_runs_methods_and_seeds_and_reports_intervals(model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["memory", "eval", "--model", str(model_dir), "--out", str(out), "--seeds", "0,1", "--chars", "2500",
                 "--methods", "none,locas-glu-top_r", "--window", "128", "--chunk", "64", "--rank", "4"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["methods"]) == {"none", "locas-glu-top_r"}
    row = result["methods"]["locas-glu-top_r"]
    assert row["story_ppl"]["n"] == 2 and row["story_ppl"]["low"] <= row["story_ppl"]["mean"] <= row["story_ppl"]["high"]
    assert "ppl_minus_none" in row and row["time_ratio"]["mean"] > 0
    f = result["forgetting"]
    assert abs(f["attached_ppl"]["mean"] - f["merged_ppl"]["mean"]) < 1e-3  # merging changes nothing
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["benchmark"] == "memory_eval"


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """The tiny model after a moment of SFT on decision_chain: it writes the step format's characters
    instead of newlines, so a memory of a book visibly changes its answers."""
    from worldsmith.policy.sft import sft_examples, train_sft

    path = tmp_path_factory.mktemp("memory") / "policy"
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=2, intermediate_size=64,
                                                  max_position_embeddings=256), seed=0)
    examples = sft_examples([("decision_chain", 0.1, 1.0)], 160, split="train", seed=0)
    train_sft(model, tok, examples, epochs=1, lr=3e-3, batch_size=16, seed=0, progress=False)
    save_policy(model, tok, path)
    return path


def test_eval_measures_forgetting_as_environment_accuracy_attached_and_merged(policy_dir, tmp_path, capsys):
    out = tmp_path / "forget"
    code = main(["memory", "eval", "--model", str(policy_dir), "--out", str(out), "--seeds", "0", "--chars", "1500",
                 "--methods", "locas-glu-top_r,templora", "--window", "128", "--chunk", "64", "--rank", "4",
                 "--lr", "3e-2", "--forgetting-env", "decision_chain@0.1", "--forgetting-instances", "6",
                 "--max-new-tokens", "12"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    acc = result["forgetting"]["env_accuracy"]
    assert 0.0 <= acc["backbone"] <= 1.0
    assert acc["attached_minus_backbone"]["mean"] == pytest.approx(acc["attached"]["mean"] - acc["backbone"])
    # the memory of the book changed the greedy answers, and merging it changed none of them
    assert acc["answers_changed_attached"]["mean"] > 0
    assert acc["answers_changed_merged_vs_attached"]["mean"] == 0.0
    assert acc["merged"]["mean"] == acc["attached"]["mean"]
    # every memory's own attached accuracy: the Locas row agrees with the merge block, TempLoRA has its own
    by = result["env_accuracy_by_method"]
    assert set(by["methods"]) == {"locas-glu-top_r", "templora"} and by["backbone"] == acc["backbone"]
    assert by["methods"]["locas-glu-top_r"]["attached"]["mean"] == acc["attached"]["mean"]
    lora = by["methods"]["templora"]
    assert lora["attached_minus_backbone"]["mean"] == pytest.approx(lora["attached"]["mean"] - acc["backbone"])
    assert lora["answers_changed"]["mean"] > 0  # the LoRA trained on the book moved the answers
    printed = capsys.readouterr().out
    assert "greedy answers changed" in printed and "forgetting, templora:" in printed


def test_recall_scores_each_choice_by_its_mean_log_probability_after_the_window(model_dir):
    from worldsmith.memory.experiment import choice_scores, recall_accuracy

    model, tok = load_policy(model_dir, progress=False)
    book = generate_book(2, chars=1500, questions_per_kind=1)
    q = book.questions[0]
    context = encode(tok, book.text)[-40:]
    scores = choice_scores(model, tok, context, q)
    k = 1
    seq = torch.cat([context, encode(tok, q.prompt()), encode(tok, f" {q.choices[k]}\n")])
    n = encode(tok, f" {q.choices[k]}\n").numel()
    with torch.no_grad():
        logp = torch.log_softmax(model(seq[None]).logits[0].float(), -1)
    expected = logp[torch.arange(seq.numel() - n - 1, seq.numel() - 1), seq[-n:]].mean()
    assert scores[k] == pytest.approx(float(expected), abs=1e-5)
    acc = recall_accuracy(model, tok, book, 64)
    assert set(acc) == {"single_hop", "multi_hop", "temporal", "all"}
    assert acc["all"] == pytest.approx(sum(acc[k] for k in ("single_hop", "multi_hop", "temporal")) / 3)


@pytest.mark.parametrize("args, fragment", [
    (["read", "missing.txt", "--out", "o"], "is not a file"),
    (["read", "BOOK", "--out", "o", "--method", "templora", "--merge"], "--merge needs --method locas-glu"),
    (["read", "BOOK", "--out", "o", "--window", "1024", "--chunk", "512"], "exceeds the model's 256 positions"),
    (["read", "BOOK", "--out", "o", "--window", "64", "--chunk", "64"], "shorter than the window"),
    (["read", "BOOK", "--out", "o", "--method", "locas-mlp", "--init", "top_r", "--window", "64", "--chunk", "32"],
     "does not apply"),
    (["eval", "--out", "o", "--methods", "none,magic"], "unknown magic"),
    (["eval", "--out", "o", "--steps", "-1"], "steps: Input should be greater than or equal to 0"),
    (["read", "BOOK", "--out", "o", "--layers", "a,b"], "comma-separated layer"),
    (["eval", "--out", "o", "--forgetting-env", "nope"], "nope"),
    (["eval", "--out", "o", "--forgetting-env", "decision_chain", "--no-forgetting"], "include a method other than none"),
    (["eval", "--out", "o", "--forgetting-env", "decision_chain", "--methods", "none"], "include a method other than none"),
    (["eval", "--out", "o", "--forgetting-env", "decision_chain@7"], "difficulty"),
])
def test_user_mistakes_are_one_line_errors(model_dir, tmp_path, capsys, args, fragment):
    book = tmp_path / "b.txt"
    book.write_text(generate_book(0, chars=1500).text)
    args = [str(book) if a == "BOOK" else str(tmp_path / a) if a == "o" else a for a in args]
    assert main(["memory", *args[:1], *args[1:], "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1

import json

import pytest
import torch

from worldsmith.policy.model import (
    LoraOptions,
    TinyModelConfig,
    apply_lora,
    build_tiny_model,
    encode_prompts,
    format_prompt,
    load_policy,
    save_policy,
)


def _logits(model, tok, text="Start at 3 and apply in order: +4.\n<answer>7</answer>"):
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_build_is_deterministic_given_seed(tok, arch):
    cfg = TinyModelConfig(arch=arch)
    state = torch.random.get_rng_state()
    a, b = build_tiny_model(tok, cfg, seed=3), build_tiny_model(tok, cfg, seed=3)
    c = build_tiny_model(tok, cfg, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert torch.equal(_logits(a, tok), _logits(b, tok))
    assert not torch.allclose(_logits(a, tok), _logits(c, tok))
    assert a.config.model_type == arch
    assert a.config.vocab_size == len(tok) and a.config.hidden_size == 64
    assert a.config.num_hidden_layers == 2 and a.config.eos_token_id == tok.eos_token_id


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        TinyModelConfig(arch="gpt2")
    with pytest.raises(ValueError):
        TinyModelConfig(hidden_sizee=3)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_save_load_round_trip_gives_identical_logits(tok, tmp_path, arch):
    model = build_tiny_model(tok, TinyModelConfig(arch=arch), seed=1)
    out = save_policy(model, tok, tmp_path / "policy")
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]  # no temp dirs left behind
    loaded, ltok = load_policy(out)
    assert ltok.get_vocab() == tok.get_vocab()
    text = "Start at 7 and apply: +3.\n<answer>10</answer>"
    assert ltok(text)["input_ids"] == tok(text)["input_ids"]
    assert ltok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert torch.equal(_logits(model, tok), _logits(loaded, ltok))


def test_save_replaces_an_existing_folder(tok, tiny, tmp_path):
    other = build_tiny_model(tok, TinyModelConfig(), seed=9)
    save_policy(other, tok, tmp_path / "p")
    save_policy(tiny, tok, tmp_path / "p")
    loaded, _ = load_policy(tmp_path / "p")
    assert torch.equal(_logits(tiny, tok), _logits(loaded, tok))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_load_refuses_what_is_not_a_local_policy_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_policy("Qwen/Qwen2-0.5B")  # a hub id is not a folder here: no download is tried
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path)  # exists but holds no model


def test_format_prompt_raw_and_chat_template(tok):
    assert format_prompt(tok, "hi") == "hi\n"
    assert encode_prompts(tok, ["hi"]) == [
        [tok.bos_token_id, *tok("hi\n", add_special_tokens=False)["input_ids"]]
    ]
    templated = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token="<bos>", eos_token="<eos>")
    templated.chat_template = "{% for m in messages %}<bos>U:{{ m['content'] }}\n{% endfor %}A:"
    assert format_prompt(templated, "hi") == "<bos>U:hi\nA:"
    # the template already writes BOS, so no second one is added
    assert encode_prompts(templated, ["hi"])[0].count(templated.bos_token_id) == 1


def test_lora_wraps_trains_only_adapters_and_saves_both_ways(tok, tiny, tmp_path):
    base_dir = save_policy(tiny, tok, tmp_path / "base")
    model, ltok = load_policy(base_dir, lora=LoraOptions(r=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert torch.allclose(_logits(model, ltok), _logits(tiny, tok))  # B starts at zero
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    changed = _logits(model, ltok)
    assert not torch.allclose(changed, _logits(tiny, tok))

    merged, _ = load_policy(save_policy(model, ltok, tmp_path / "merged"))
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged, ltok), changed, atol=1e-5)

    adapter_dir = save_policy(model, ltok, tmp_path / "adapter", merge_lora=False)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base_dir)
    again, _ = load_policy(adapter_dir)
    assert torch.allclose(_logits(again, ltok), changed, atol=1e-6)
    assert any(p.requires_grad for n, p in again.named_parameters() if "lora_" in n)


def test_apply_lora_on_a_built_model(tok, tiny):
    wrapped = apply_lora(tiny, LoraOptions(target_modules=["q_proj", "v_proj"]))
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all(("q_proj" in n or "v_proj" in n) for n in names)

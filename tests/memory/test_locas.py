"""Locas attach / detach / merge / inits on tiny real Llama and Qwen2 models built from config."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from worldsmith.memory.locas import LocasError, MemoryConfig, attach, decoder_layers, ffn_of, output_scale

VOCAB = 61


def tiny(arch: str, seed: int = 0, layers: int = 3):
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**common)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**common))
    return model.eval()


def ids(n=40, seed=1):
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def perturb_values(mem, seed=3):
    """V = 0 after init (a no-op); give the memory content, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in mem.memories.values():
            for t in m.slot_tensors():
                t.add_(0.5 * torch.randn(t.shape, generator=g))
    mem.clip_()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_attached_memory_changes_outputs_and_detach_restores_the_model_bit_for_bit(arch):
    model = tiny(arch)
    x = ids()[None]
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x).logits
    mem = attach(model, MemoryConfig(rank=4, layers=[0, 2]), x[0])
    with torch.no_grad():
        assert torch.equal(model(x).logits, before)  # V = 0: a no-op at start
        perturb_values(mem)
        changed = model(x).logits
    assert (changed - before).abs().max() > 1e-4
    assert set(model.state_dict()) == set(before_state)  # hooks: the backbone's keys are untouched
    mem.detach()
    with torch.no_grad():
        after = model(x).logits
    assert torch.equal(after, before)
    assert all(torch.equal(v, before_state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_merge_appends_units_equal_logits_and_round_trips_as_a_model_folder(arch, tmp_path):
    model = tiny(arch)
    x = ids()[None]
    mem = attach(model, MemoryConfig(rank=5, layers=[0, 2]), x[0])
    perturb_values(mem)
    with torch.no_grad():
        attached = model(x).logits
    mem.merge()
    mlps = [ffn_of(layer) for layer in decoder_layers(model)]
    assert [m.gate_proj.out_features for m in mlps] == [53, 53, 53]  # layer 1 padded with zero units
    assert [m.down_proj.in_features for m in mlps] == [53, 53, 53]
    assert torch.count_nonzero(mlps[1].gate_proj.weight[48:]) == 0
    assert model.config.intermediate_size == 53
    with torch.no_grad():
        merged = model(x).logits
    assert torch.allclose(merged, attached, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, attached, atol=1e-5, rtol=0)


def test_a_second_merge_on_uneven_layers_pads_to_the_widest():
    model = tiny("llama")
    x = ids()[None]
    first = attach(model, MemoryConfig(rank=3, layers=[1]), x[0])
    perturb_values(first)
    first.merge()
    second = attach(model, MemoryConfig(rank=2, layers=[0]), x[0])
    perturb_values(second, seed=5)
    with torch.no_grad():
        attached = model(x).logits
    second.merge()
    assert [ffn_of(la).up_proj.out_features for la in decoder_layers(model)] == [53, 53, 53]
    with torch.no_grad():
        assert torch.allclose(model(x).logits, attached, atol=1e-5, rtol=0)


def test_tau_is_the_mean_down_column_norm_over_r_and_clipping_bounds_every_slot():
    model = tiny("llama")
    mlp = ffn_of(decoder_layers(model)[0])
    w = mlp.down_proj.weight.detach()
    expected = sum(float(w[:, j].norm()) for j in range(w.shape[1])) / w.shape[1] / 8
    assert output_scale(mlp, 8) == pytest.approx(expected, rel=1e-6)
    mem = attach(model, MemoryConfig(rank=8), ids())
    assert float(mem.memories["0"].tau) == pytest.approx(expected, rel=1e-6)
    with torch.no_grad():
        mem.memories["0"].V.fill_(3.0)
        mem.memories["0"].G.mul_(0.5)
    small = mem.memories["0"].G.clone()
    mem.clip_()
    assert torch.allclose(mem.memories["0"].V.norm(dim=1), torch.ones(8))
    assert torch.equal(mem.memories["0"].G, small)  # norms below 1 are left alone


def test_top_r_clones_the_most_active_units_with_unit_rows_and_zero_values():
    model = tiny("llama")
    x = ids(60)
    mems = {init: attach(model, MemoryConfig(rank=6, init=init, layers=[1]), x) for init in
            ("top_r", "bottom_r", "random_index")}
    layer = decoder_layers(model)[1]
    mlp = ffn_of(layer)
    acts = {}
    h = mlp.register_forward_hook(lambda m, a, o: acts.setdefault("a", a[0][0]))
    for mem in mems.values():
        mem.detach()
    with torch.no_grad():
        model(x[None])
        h.remove()
        importance = (mlp.act_fn(mlp.gate_proj(acts["a"])) * mlp.up_proj(acts["a"])).abs().mean(0)
    order = importance.argsort(descending=True)
    unit_gate = mlp.gate_proj.weight / mlp.gate_proj.weight.norm(dim=1, keepdim=True)

    def cloned(mem):
        g = mem.memories["1"].G
        return {int((unit_gate - row).abs().sum(1).argmin()) for row in g}

    assert cloned(mems["top_r"]) == set(order[:6].tolist())
    assert cloned(mems["bottom_r"]) == set(order[-6:].tolist())
    assert len(cloned(mems["random_index"])) == 6
    top = mems["top_r"].memories["1"]
    assert torch.allclose(top.G.norm(dim=1), torch.ones(6)) and torch.allclose(top.K.norm(dim=1), torch.ones(6))
    assert torch.count_nonzero(top.V) == 0


def test_mlp_act_grad_moves_the_hidden_state_along_the_likelihood_gradient():
    model = tiny("llama")
    x = ids(30)
    mem = attach(model, MemoryConfig(variant="mlp", rank=4, layers=[0, 1, 2], epsilon=0.3), x)
    vs = torch.stack([mem.memories[str(i)].V for i in range(3)])  # (L, r, d)
    assert torch.allclose(vs.pow(2).sum((0, 2)).sqrt(), torch.full((4,), 0.3), atol=1e-5)  # global norm = eps
    ks = mem.memories["0"].K
    assert torch.allclose(ks.norm(dim=1), torch.ones(4), atol=1e-5)
    # the memory raises the chunk's likelihood (it moves H along +grad log p)
    mem.detach()
    with torch.no_grad():
        base = model(x[None], labels=x[None]).loss
    mem.hook_on()
    with torch.no_grad():
        with_memory = model(x[None], labels=x[None]).loss
    assert with_memory < base
    with pytest.raises(LocasError, match="cannot be merged"):
        mem.merge()


def test_user_mistakes_are_locas_errors():
    model = tiny("llama")
    with pytest.raises(LocasError, match="out of range"):
        attach(model, MemoryConfig(layers=[7]), ids())
    with pytest.raises(LocasError, match="does not apply"):
        MemoryConfig(variant="mlp", init="top_r").resolved_init()
    with pytest.raises(LocasError, match="exceeds"):
        attach(model, MemoryConfig(rank=49), ids())

"""Test-time training: evaluate-then-train order, frozen backbone, TempLoRA, the book, recall."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from worldsmith.memory.book import QUESTION_KINDS, generate_book
from worldsmith.memory.locas import MemoryConfig
from worldsmith.memory.ttt import (
    LocasMemory,
    Memory,
    TempLoRAMemory,
    TTTConfig,
    lora_parameters_per_rank,
    matching_lora_rank,
    read_document,
)

VOCAB = 50


def tiny(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def doc(n=200, seed=0):
    """A document that repeats a random 40-token phrase: learnable by a memory."""
    g = torch.Generator().manual_seed(seed)
    phrase = torch.randint(0, VOCAB, (40,), generator=g)
    return phrase.repeat(n // 40 + 1)[:n]


class Recorder(LocasMemory):
    """A Locas memory that records, at each training step, the tokens it was given (by reading the
    step's chunk position from the event log) and a copy of its weights before the step."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.snapshots = []

    def after_step(self):
        super().after_step()
        self.snapshots.append({k: v.clone() for k, v in self.locas.state_dict().items()})


def test_no_token_is_scored_after_the_model_trained_on_it():
    model = tiny()
    ids = doc(200)
    cfg = TTTConfig(chunk=32, window=64, steps=2, lr=1e-2)
    memory = Recorder(MemoryConfig(rank=4))
    result = read_document(model, ids, memory, cfg, keep_memory=True)
    scored_at, trained = {}, set()
    for k, (kind, a, b) in enumerate(result.events):
        for t in range(a, b):
            if kind == "score":
                assert t not in trained, f"token {t} scored after training on it"
                scored_at[t] = k
            else:
                assert t in scored_at
                trained.add(t)
    assert set(scored_at) == set(range(200)) and trained == set(range(200))
    # the scores of chunk 3 are those of the memory as it was after training on chunks 0-2
    memory.locas.load_state_dict(memory.snapshots[2 * 3 - 1])
    with torch.no_grad():
        window = ids[64:128][None]  # chunk 3 = tokens 96..127, with the 32 tokens before it
        logits = model(window).logits[0, 31:63]  # window position j predicts token 64 + j + 1
        expected = torch.nn.functional.cross_entropy(logits, ids[96:128], reduction="none")
    assert torch.allclose(result.nll[96:128], expected, atol=1e-5)
    memory.locas.load_state_dict(memory.snapshots[2 * 3 + 1])  # one chunk later: not what was scored
    with torch.no_grad():
        later = torch.nn.functional.cross_entropy(model(window).logits[0, 31:63], ids[96:128], reduction="none")
    assert not torch.allclose(result.nll[96:128], later, atol=1e-4)
    memory.detach()


def test_reading_trains_only_the_memory_and_lowers_the_loss_of_repeated_text():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = doc(400)
    cfg = TTTConfig(chunk=40, window=80, steps=1, lr=2e-2)
    plain = read_document(model, ids, None, cfg)
    memory = LocasMemory(MemoryConfig(rank=8))
    read = read_document(model, ids, memory, cfg)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # backbone unchanged
    assert all(p.requires_grad for p in model.parameters())  # given back
    assert torch.allclose(read.nll[:40], plain.nll[:40], equal_nan=True)  # chunk 0 scored before any memory
    assert read.ppl(200) < plain.ppl(200) - 0.05
    assert read.memory_params == 2 * 3 * 8 * 32
    # the memory is detached at the end: reading again plainly gives the plain losses
    again = read_document(model, ids, None, cfg)
    assert torch.equal(again.nll[1:], plain.nll[1:])


def test_templora_is_trained_the_same_way_and_unloaded_after():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = doc(400)
    cfg = TTTConfig(chunk=40, window=80, steps=1, lr=1e-2)
    plain = read_document(model, ids, None, cfg)
    rank = matching_lora_rank(model, 2 * 3 * 8 * 32)
    assert rank == round(1536 / lora_parameters_per_rank(model))
    lora = read_document(model, ids, TempLoRAMemory(rank), cfg)
    assert lora.memory_params == rank * lora_parameters_per_rank(model)
    assert lora.ppl(200) < plain.ppl(200)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert set(model.state_dict()) == set(before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_plain_reading_sees_at_most_the_window():
    """With a window one token longer than the chunk, a token's loss depends only on its chunk and
    the one token before it."""
    model = tiny()
    ids = doc(120, seed=3)
    r = read_document(model, ids, Memory(), TTTConfig(chunk=40, window=41, steps=0))
    with torch.no_grad():
        logits = model(ids[39:80][None]).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[:-1], ids[40:80], reduction="none")
    assert torch.allclose(r.nll[40:80], expected, atol=1e-5)
    assert math.isnan(float(r.nll[0])) and not math.isnan(float(r.nll[40]))
    spans = r.ppl_by_position(bins=3)
    assert [(a, b) for a, b, _ in spans] == [(0, 40), (40, 80), (80, 120)]
    with pytest.raises(ValueError, match="shorter than the window"):
        TTTConfig(chunk=40, window=40)


def test_the_book_states_facts_early_and_asks_about_them_at_the_end():
    book = generate_book(seed=7, chars=6000)
    again = generate_book(seed=7, chars=6000)
    assert book.text == again.text and book.questions == again.questions
    assert generate_book(seed=8, chars=6000).people != book.people
    assert 6000 <= len(book.text) < 7000
    head, story = book.text[: book.facts_end], book.text[book.facts_end:]
    for p in book.people:
        assert f"{p.name} lived in {p.town}." in head and f"{p.name} worked as a {p.work}." in head
    mentioned = [p for p in book.people if p.name in story]
    assert mentioned and any(f"the {p.work}" in story for p in mentioned)
    assert {q.kind for q in book.questions} == set(QUESTION_KINDS)
    for q in book.questions:
        assert q.answer in q.choices and len(q.choices) > 3
    hop = next(q for q in book.questions if q.kind == "multi_hop")
    meeting = next(m for m in book.meetings if f"{m.a} met on day {m.day}" in hop.text)
    assert hop.answer == next(p.town for p in book.people if p.name == meeting.b)


def test_a_chunk_read_against_the_cached_context_scores_as_the_whole_window():
    from worldsmith.memory.ttt import _chunk_nll

    model = tiny()
    ids = doc(200, seed=1)
    memory = LocasMemory(MemoryConfig(rank=4))
    memory.attach(model, ids[:64])
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(1)
    with torch.no_grad():  # a memory that changes the outputs (V starts at zero)
        for p in memory.parameters():
            p.add_(0.3 * torch.randn_like(p))
    for p in memory.parameters():
        p.requires_grad_(True)
    full = _chunk_nll(model, ids, 32, 64, 96)
    cached = _chunk_nll(model, ids, 32, 64, 96, cached=True)
    with torch.no_grad():
        logits = model(ids[32:96][None]).logits[0, 31:63]
    assert torch.allclose(full, torch.nn.functional.cross_entropy(logits, ids[64:96], reduction="none"), atol=1e-5)
    assert full.shape == (32,) and torch.allclose(full, cached, atol=1e-5)
    g_full = torch.autograd.grad(full.mean(), memory.parameters())
    g_cached = torch.autograd.grad(cached.mean(), memory.parameters())
    assert all(g.abs().sum() > 0 for g in g_cached)
    # the cached read does not backpropagate through the memory's effect on the context
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_full, g_cached))
    memory.detach()


def test_reading_with_the_context_cached_scores_the_same_until_the_gradients_differ():
    model = tiny()
    ids = doc(400)
    exact = read_document(model, ids, LocasMemory(MemoryConfig(rank=8)), TTTConfig(chunk=40, window=80, lr=2e-2))
    cheap_cfg = TTTConfig(chunk=40, window=80, lr=2e-2, context_grad=False)
    cheap = read_document(model, ids, LocasMemory(MemoryConfig(rank=8)), cheap_cfg)
    plain = read_document(model, ids, None, cheap_cfg)
    # chunk 0 is trained on without context in both; chunk 1 is scored by the same memory
    assert torch.allclose(exact.nll[1:80], cheap.nll[1:80], atol=1e-5)
    assert not torch.allclose(exact.nll[120:], cheap.nll[120:], atol=1e-4)
    assert [e[0] for e in cheap.events] == [e[0] for e in exact.events]
    assert cheap.ppl(200) < plain.ppl(200) - 0.05

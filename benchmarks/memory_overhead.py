"""Overheads of Locas test-time memory, as ratios measured side by side in one run.

- Time: seconds to stream the same document (``--chunks`` chunks of ``--chunk`` tokens, window twice
  the chunk) through the same model: plain reading (no memory, the peer) vs Locas-GLU test-time
  training (1 step per chunk), exact (gradient through the whole window) and with the context read
  without gradient (``context_grad=False``), vs TempLoRA at the same parameter count. Runs
  alternate (plain, Locas, Locas cached context, TempLoRA, plain, ...) and each figure is a
  median. Target: Locas / plain <= 2. ``--memory-layers`` puts the memory on some layers only
  (``upper``: the upper half), which shortens the backward pass.
- Parameters: memory parameters / model parameters, for the timed model and for Qwen3-0.6B- and
  Qwen3-1.7B-shaped models (counted on the meta device, nothing allocated) at r = 16 and 64.
  Target <= 1%.

The timed model is a Llama built from config (``--hidden``, ``--layers``), or a local folder
(``--model``). Prints one JSON line.

    .venv/bin/python benchmarks/memory_overhead.py [--repeats 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from worldsmith.memory.locas import MemoryConfig
from worldsmith.memory.ttt import LocasMemory, TempLoRAMemory, TTTConfig, matching_lora_rank, read_document


def shaped_fraction(hidden: int, layers: int, inter: int, heads: int, kv: int, vocab: int, rank: int) -> dict:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=inter,
                      num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab, head_dim=128,
                      tie_word_embeddings=True)
    with torch.device("meta"):
        n = sum(p.numel() for p in Qwen3ForCausalLM(cfg).parameters())
    mem = 3 * layers * hidden * rank
    return {"model_params": n, "rank": rank, "memory_params": mem, "fraction": mem / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--model", default=None, help="a local model folder instead of the config-built Llama")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-layers", default="all",
                    help="decoder layers with memory: all, upper (the upper half) or comma-separated indices")
    ap.add_argument("--quick", action="store_true", help="one repeat, two chunks (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.chunks = 1, 2
    torch.set_num_threads(args.threads)
    if args.model:
        from worldsmith.policy.model import load_policy

        model, _ = load_policy(args.model, progress=False)
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=1024, hidden_size=args.hidden, intermediate_size=int(2.75 * args.hidden),
            num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
            num_key_value_heads=max(1, args.hidden // 64), max_position_embeddings=4 * args.chunk))
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.chunk * args.chunks,), generator=torch.Generator().manual_seed(0))
    ttt = TTTConfig(chunk=args.chunk, window=2 * args.chunk, steps=1)
    cached = TTTConfig(chunk=args.chunk, window=2 * args.chunk, steps=1, context_grad=False)
    n_model = sum(p.numel() for p in model.parameters())
    n_layers = model.config.num_hidden_layers
    if args.memory_layers == "all":
        layers = None
    elif args.memory_layers == "upper":
        layers = list(range(n_layers // 2, n_layers))
    else:
        layers = [int(x) for x in args.memory_layers.split(",")]
    locas_params = 3 * args.rank * model.config.hidden_size * (n_layers if layers is None else len(layers))
    lora_rank = matching_lora_rank(model, locas_params)
    times: dict[str, list[float]] = {"plain": [], "locas": [], "locas_cached_context": [], "templora": []}
    params = {}
    read_document(model, ids[: 2 * args.chunk], None, ttt)  # warm-up
    for _ in range(args.repeats):
        times["plain"].append(read_document(model, ids, None, ttt).seconds)
        r = read_document(model, ids, LocasMemory(MemoryConfig(rank=args.rank, layers=layers)), ttt)
        times["locas"].append(r.seconds)
        params["locas"] = r.memory_params
        r = read_document(model, ids, LocasMemory(MemoryConfig(rank=args.rank, layers=layers)), cached)
        times["locas_cached_context"].append(r.seconds)
        r = read_document(model, ids, TempLoRAMemory(lora_rank), ttt)
        times["templora"].append(r.seconds)
        params["templora"] = r.memory_params
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "benchmark": "memory_overhead",
        "model_params": n_model, "rank": args.rank, "lora_rank": lora_rank,
        "memory_layers": list(range(n_layers)) if layers is None else layers,
        "tokens": int(ids.numel()), "chunk": args.chunk, "window": 2 * args.chunk,
        "seconds": {k: round(v, 4) for k, v in med.items()},
        "time_ratio": {"locas_vs_plain": round(med["locas"] / med["plain"], 3),
                       "locas_cached_context_vs_plain": round(med["locas_cached_context"] / med["plain"], 3),
                       "templora_vs_plain": round(med["templora"] / med["plain"], 3)},
        "memory_fraction": {"locas": round(params["locas"] / n_model, 5),
                            "templora": round(params["templora"] / n_model, 5)},
        "targets": {"locas_time_ratio_max": 2.0, "memory_fraction_max": 0.01},
        "shaped": {"qwen3_0.6b_r16": shaped_fraction(1024, 28, 3072, 16, 8, 151936, 16),
                   "qwen3_0.6b_r64": shaped_fraction(1024, 28, 3072, 16, 8, 151936, 64),
                   "qwen3_1.7b_r16": shaped_fraction(2048, 28, 6144, 16, 8, 151936, 16),
                   "qwen3_1.7b_r64": shaped_fraction(2048, 28, 6144, 16, 8, 151936, 64)},
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform(),
                    "threads": args.threads},
    }))


if __name__ == "__main__":
    main()

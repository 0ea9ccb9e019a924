"""Locas: a side feed-forward memory beside chosen FFNs of a Llama/Qwen-style model.

Each chosen decoder layer's MLP gets a forward hook that adds ``tau * Locas(A)`` to the MLP's
output, where ``A`` is the MLP's input (post-attention, post-norm hidden state) and

* Locas-GLU: ``Locas(A) = V^T (act(G A) * (K A))`` with ``G, K, V`` of shape ``(r, d)``, ``act`` the
  backbone FFN's own activation (SiLU for Llama and Qwen), so the memory has exactly the shape of
  ``r`` more FFN units and merges exactly;
* Locas-MLP: ``Locas(A) = V^T relu(K A)``.

``tau`` is fixed per layer: the mean L2 norm of the backbone's down-projection columns (one per
unit) divided by ``r``. After every update ``clip_()`` shrinks every slot vector (each row of ``G``,
``K`` and ``V``) to norm at most 1. Nothing of the backbone is touched while attached: its modules,
parameters and ``state_dict`` stay the same objects with the same bits, so ``detach()`` restores it
exactly. ``merge()`` appends the memory as ``r`` more units of each FFN (``gate``/``up`` rows,
``down`` columns scaled by ``tau``), pads every other layer with zero units to one common width
(a zero unit adds ``act(0) * 0 = 0``) and sets ``config.intermediate_size``, so the result saves
and loads as an ordinary model folder.

>>> mem = attach(model, MemoryConfig(variant="glu", rank=8), chunk_ids)   # top-r cloning init
>>> ...train mem.parameters() on the text, calling mem.clip_() after each step...
>>> mem.merge()       # or mem.detach()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from worldsmith.configuration import Strict

Variant = Literal["glu", "mlp"]
Init = Literal["top_r", "random_index", "bottom_r", "gaussian", "act_grad"]
GLU_INITS = ("top_r", "random_index", "bottom_r", "gaussian")
MLP_INITS = ("act_grad", "gaussian")


class LocasError(ValueError):
    """The model or the request does not fit Locas (unknown layout, bad layer, unmergeable variant)."""


class MemoryConfig(Strict):
    """What memory to attach: variant, width, layers, initialisation (spec §3)."""

    variant: Variant = Field("glu", description="glu (Locas-GLU) or mlp (Locas-MLP).")
    rank: int = Field(16, ge=1, description="r, memory slots (extra FFN units) per chosen layer.")
    layers: list[int] | None = Field(None, description="Decoder layer indices; None = every layer.")
    init: Init | None = Field(None, description="top_r (GLU default; activation-guided cloning), "
                              "random_index, bottom_r, gaussian (ablations); act_grad (MLP default; "
                              "activation + gradient reuse).")
    epsilon: float = Field(1e-2, gt=0.0, description="Locas-MLP act_grad value scale; PROPOSED (not "
                           "found in the paper's notes).")
    seed: int = Field(0, description="Seed of the random inits (gaussian, random_index).")

    def resolved_init(self) -> str:
        init = self.init or ("top_r" if self.variant == "glu" else "act_grad")
        allowed = GLU_INITS if self.variant == "glu" else MLP_INITS
        if init not in allowed:
            raise LocasError(f"init {init!r} does not apply to Locas-{self.variant.upper()}; "
                             f"choose one of {', '.join(allowed)}")
        return init


# --- model layout ------------------------------------------------------------------------------------
def decoder_layers(model: nn.Module) -> Sequence[nn.Module]:
    """The decoder layers of a Llama/Qwen-style causal LM (``model.model.layers``)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise LocasError(f"{type(model).__name__} has no model.layers; Locas needs a Llama/Qwen-style "
                         "decoder (AutoModelForCausalLM of llama, qwen2, qwen3, mistral, ...)")
    return layers


def ffn_of(layer: nn.Module) -> nn.Module:
    """The gated FFN of a decoder layer: ``down(act(gate(x)) * up(x))``, no biases."""
    mlp = getattr(layer, "mlp", None)
    if mlp is None or not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")):
        raise LocasError(f"decoder layer {type(layer).__name__} has no gated mlp (gate_proj, up_proj, "
                         "down_proj, act_fn)")
    if any(getattr(mlp, n).bias is not None for n in ("gate_proj", "up_proj", "down_proj")):
        raise LocasError("FFN projections with biases are not supported")
    return mlp


def output_scale(mlp: nn.Module, rank: int) -> float:
    """tau = mean L2 norm of the down-projection vector of each backbone unit, divided by r.

    ``down_proj.weight`` is (d, m): unit j's output vector is column j."""
    with torch.no_grad():
        return float(mlp.down_proj.weight.float().norm(dim=0).mean()) / rank


def _unit_rows(w: Tensor) -> Tensor:
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


# --- the memory modules ------------------------------------------------------------------------------
class LocasGLU(nn.Module):
    """``tau * V^T (act(G a) * (K a))``; G, K, V are (r, d); V starts at zero (a no-op)."""

    def __init__(self, d: int, r: int, act: nn.Module, tau: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.G = nn.Parameter(torch.zeros(r, d, dtype=dtype))
        self.K = nn.Parameter(torch.zeros(r, d, dtype=dtype))
        self.V = nn.Parameter(torch.zeros(r, d, dtype=dtype))
        self.act = act
        self.register_buffer("tau", torch.tensor(tau, dtype=dtype))

    def forward(self, a: Tensor) -> Tensor:  # a (..., d) -> (..., d)
        h = self.act(a @ self.G.T) * (a @ self.K.T)  # (..., r)
        return self.tau * (h @ self.V)

    def slot_tensors(self) -> list[Tensor]:
        return [self.G, self.K, self.V]


class LocasMLP(nn.Module):
    """``tau * V^T relu(K a)``; K, V are (r, d)."""

    def __init__(self, d: int, r: int, tau: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.K = nn.Parameter(torch.zeros(r, d, dtype=dtype))
        self.V = nn.Parameter(torch.zeros(r, d, dtype=dtype))
        self.register_buffer("tau", torch.tensor(tau, dtype=dtype))

    def forward(self, a: Tensor) -> Tensor:
        return self.tau * (torch.relu(a @ self.K.T) @ self.V)

    def slot_tensors(self) -> list[Tensor]:
        return [self.K, self.V]


# --- the attached memory -----------------------------------------------------------------------------
class Locas(nn.Module):
    """Memories attached to ``model`` by forward hooks; see the module doc."""

    def __init__(self, model: nn.Module, cfg: MemoryConfig) -> None:
        super().__init__()
        layers = decoder_layers(model)
        n = len(layers)
        chosen = list(range(n)) if cfg.layers is None else sorted(set(cfg.layers))
        bad = [i for i in chosen if not -n <= i < n]
        if bad or not chosen:
            raise LocasError(f"layers {bad or chosen} out of range for a model with {n} decoder layers")
        chosen = sorted({i % n for i in chosen})
        self.cfg = cfg
        self.layer_ids = chosen
        self._model = [model]  # a list, so the backbone is not registered as a submodule
        self.memories = nn.ModuleDict()
        act_name = getattr(model.config, "hidden_act", "silu")
        for i in chosen:
            mlp = ffn_of(layers[i])
            w = mlp.gate_proj.weight
            d = w.shape[1]
            tau = output_scale(mlp, cfg.rank)
            if cfg.variant == "glu":
                from transformers.activations import ACT2FN

                self.memories[str(i)] = LocasGLU(d, cfg.rank, ACT2FN[act_name], tau, w.dtype).to(w.device)
            else:
                self.memories[str(i)] = LocasMLP(d, cfg.rank, tau, w.dtype).to(w.device)
        self._handles: list = []
        self.attached = False
        self.enabled = True

    @property
    def model(self) -> nn.Module:
        return self._model[0]

    def _hook(self, i: int):
        memory = self.memories[str(i)]

        def add_memory(module, args, output):
            if not self.enabled:
                return output
            return output + memory(args[0])

        return add_memory

    def hook_on(self) -> None:
        if self.attached:
            return
        layers = decoder_layers(self.model)
        self._handles = [ffn_of(layers[i]).register_forward_hook(self._hook(i)) for i in self.layer_ids]
        self.attached = True

    def detach(self) -> None:
        """Remove the hooks: the backbone computes exactly what it did before ``attach``."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.attached = False

    @torch.no_grad()
    def clip_(self) -> None:
        """w <- w / max(||w||, 1) for every slot vector (each row of G, K, V)."""
        for memory in self.memories.values():
            for t in memory.slot_tensors():
                t.div_(t.norm(dim=1, keepdim=True).clamp_min(1.0))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- merge ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self) -> nn.Module:
        """Append the memory to the FFNs as ``r`` more units and detach the hooks; returns the model.

        Every layer ends with the same width (the widest layer's): the others get zero units, which
        add exactly nothing. ``config.intermediate_size`` is set to that width."""
        if self.cfg.variant != "glu":
            raise LocasError("Locas-MLP cannot be merged into a gated (GLU) FFN such as Llama's or Qwen's; "
                             "keep it attached or detach it")
        self.clip_()
        layers = decoder_layers(self.model)
        mlps = [ffn_of(layer) for layer in layers]
        extra = {i: self.memories[str(i)] for i in self.layer_ids}
        widths = [m.gate_proj.out_features + (self.cfg.rank if i in extra else 0) for i, m in enumerate(mlps)]
        width = max(widths)
        for i, mlp in enumerate(mlps):
            gate, up, down = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
            d, m = down.shape
            g_rows = torch.zeros(width - m, d, dtype=gate.dtype, device=gate.device)
            k_rows, d_cols = g_rows.clone(), torch.zeros(d, width - m, dtype=down.dtype, device=down.device)
            if i in extra:
                mem, r = extra[i], self.cfg.rank
                g_rows[:r], k_rows[:r] = mem.G.to(gate.dtype), mem.K.to(up.dtype)
                d_cols[:, :r] = (mem.tau * mem.V).T.to(down.dtype)
            mlp.gate_proj = _linear(torch.cat([gate, g_rows], 0))
            mlp.up_proj = _linear(torch.cat([up, k_rows], 0))
            mlp.down_proj = _linear(torch.cat([down, d_cols], 1))
            if hasattr(mlp, "intermediate_size"):
                mlp.intermediate_size = width
        self.detach()
        self.model.config.intermediate_size = width
        return self.model


def _linear(weight: Tensor) -> nn.Linear:
    out_f, in_f = weight.shape
    lin = nn.Linear(in_f, out_f, bias=False, device=weight.device, dtype=weight.dtype)
    lin.weight.copy_(weight)
    return lin


# --- initialisation ----------------------------------------------------------------------------------
def ffn_inputs(model: nn.Module, layer_ids: Sequence[int], input_ids: Tensor,
               with_grad_of_outputs: bool = False) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """FFN inputs A (T, d) at each layer for one sequence ``input_ids`` (T,), and, when asked, the
    gradient of the summed next-token log-likelihood w.r.t. each FFN's output H (T, d)."""
    layers = decoder_layers(model)
    inputs: dict[int, Tensor] = {}
    outputs: dict[int, Tensor] = {}

    def capture(i):
        def hook(module, args, output):
            inputs[i] = args[0].detach()[0]
            if with_grad_of_outputs:
                if not output.requires_grad:  # a frozen backbone: make H a leaf of the graph
                    output = output.detach().requires_grad_()
                outputs[i] = output
            return output
        return hook

    handles = [ffn_of(layers[i]).register_forward_hook(capture(i)) for i in layer_ids]
    try:
        if with_grad_of_outputs:
            with torch.enable_grad():
                ids = input_ids[None]
                logits = model(ids).logits[0, :-1].float()
                logp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).sum()
                found = torch.autograd.grad(logp, [outputs[i] for i in layer_ids])
            grads = {i: g[0].detach() for i, g in zip(layer_ids, found)}
        else:
            with torch.no_grad():
                model(input_ids[None])
            grads = {}
    finally:
        for h in handles:
            h.remove()
    return inputs, grads


@torch.no_grad()
def initialise(mem: Locas, input_ids: Tensor) -> None:
    """Set the memory's starting weights from the chunk ``input_ids`` (T,) (spec §3.2-3.3)."""
    cfg, model = mem.cfg, mem.model
    init = cfg.resolved_init()
    gen = torch.Generator().manual_seed(cfg.seed)
    layers = decoder_layers(model)
    if init == "gaussian":
        for memory in mem.memories.values():
            for t in memory.slot_tensors()[:-1]:  # keys (and gates): unit-norm random rows; values 0
                t.copy_(_unit_rows(torch.randn(t.shape, generator=gen)).to(t.dtype))
            memory.V.zero_()
        return
    if init == "act_grad":
        _init_act_grad(mem, input_ids, gen)
        return
    acts, _ = ffn_inputs(model, mem.layer_ids, input_ids)
    for i in mem.layer_ids:
        mlp, memory = ffn_of(layers[i]), mem.memories[str(i)]
        m = mlp.gate_proj.out_features
        if cfg.rank > m:
            raise LocasError(f"rank {cfg.rank} exceeds layer {i}'s {m} FFN units; cloning needs r <= m")
        a = acts[i]
        importance = (mlp.act_fn(mlp.gate_proj(a)) * mlp.up_proj(a)).abs().float().mean(0)  # (m,)
        if init == "top_r":
            idx = importance.topk(cfg.rank).indices
        elif init == "bottom_r":
            idx = (-importance).topk(cfg.rank).indices
        else:  # random_index
            idx = torch.randperm(m, generator=gen)[: cfg.rank].to(importance.device)
        memory.G.copy_(_unit_rows(mlp.gate_proj.weight[idx].float()).to(memory.G.dtype))
        memory.K.copy_(_unit_rows(mlp.up_proj.weight[idx].float()).to(memory.K.dtype))
        memory.V.zero_()


def _init_act_grad(mem: Locas, input_ids: Tensor, gen: torch.Generator) -> None:
    """Locas-MLP: slot j remembers token t_j: key = unit A_t, value = eps * G_t / ||G_t||_global.

    The r tokens are spread evenly over the chunk. G_t is the gradient of the chunk's summed
    log-likelihood w.r.t. the FFN output at position t (one backward pass for all slots, an
    approximation of one pass per token, see docs/memory.md)."""
    cfg = mem.cfg
    acts, grads = ffn_inputs(mem.model, mem.layer_ids, input_ids, with_grad_of_outputs=True)
    T = input_ids.shape[0] - 1  # positions that predict a next token
    pos = torch.linspace(0, T - 1, cfg.rank).round().long()
    total = torch.sqrt(sum(grads[i][pos].float().pow(2).sum(-1) for i in mem.layer_ids)).clamp_min(1e-12)  # (r,)
    for i in mem.layer_ids:
        memory = mem.memories[str(i)]
        memory.K.copy_(_unit_rows(acts[i][pos].float()).to(memory.K.dtype))
        memory.V.copy_((cfg.epsilon * grads[i][pos].float() / total[:, None]).to(memory.V.dtype))


def attach(model: nn.Module, cfg: MemoryConfig, input_ids: Tensor | None = None) -> Locas:
    """Attach a Locas memory to ``model``, initialised from the chunk ``input_ids`` (T,) when given
    (needed by every init but ``gaussian``), then clipped; returns the handle."""
    mem = Locas(model, cfg)
    init = cfg.resolved_init()
    if input_ids is None and init != "gaussian":
        raise LocasError(f"init {init} reads a chunk of text: pass input_ids")
    if input_ids is not None or init == "gaussian":
        initialise(mem, input_ids)
    mem.clip_()
    mem.hook_on()
    return mem

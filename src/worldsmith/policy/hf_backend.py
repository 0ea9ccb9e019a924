"""Sampling with a Hugging Face causal LM: a manual KV-cache decode loop, and per-token log-probs.

``HFBackend.generate`` left-pads each batch of prompts, runs one prefill forward (over the distinct
prompts only, when a batch repeats prompts), then decodes one token per step with a
``DynamicCache``. Rows that emit EOS leave the decode batch at once (their cache rows are dropped),
so a batch costs as much as its live sequences. Each sampled token's log-prob under the
distribution it was drawn from is recorded as ``behaviour_logp``.

``sequence_logprobs`` recomputes per-token log-probs of given completions in one forward pass,
with gradients when called outside ``no_grad``; this is what a trainer differentiates.
``grouped_sequence_logprobs`` gives the same values and gradients for groups of rows sharing a
prompt, running each prompt once and only the completions per row.

Vision-language models: built with a processor (``processing_class`` with an ``image_processor``,
e.g. a LLaVA processor) instead of a tokenizer, the backend takes ``images`` (one PNG/JPEG bytes
or None per prompt). Each row becomes one user turn rendered by the processor's chat template
(an image part, then the prompt), the processor expands its image tokens, and the prefill forward
gets the image inputs; ``Rollouts.vision`` keeps them per row so that ``sequence_logprobs(...,
image_inputs=...)`` scores the completions against the same pictures.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
from torch import Tensor
from transformers import DynamicCache, PreTrainedTokenizerBase

from worldsmith.policy.backend import Rollouts, SamplingParams, vision_inputs
from worldsmith.policy.model import encode_prompts, eos_token_ids

#: ``processor(logits) -> logits``, or ``processor(logits, step) -> logits`` when it has a parameter
#: named ``step`` (the response position t, counted from 0, shared by every row of the decode batch).
LogitsProcessor = Callable[..., Tensor]


# --- model call conventions (transformers renamed ``past_key_values`` to ``cache`` in 5.x) ----------
def _base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The HF model under DDP/FSDP (``.module``), ``torch.compile`` (``._orig_mod``) and peft."""
    for _ in range(8):
        if isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        elif hasattr(model, "peft_config") and callable(getattr(model, "get_base_model", None)):
            model = model.get_base_model()
        else:
            break
    return model


@lru_cache(maxsize=64)
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def cache_kwarg(model: torch.nn.Module) -> str:
    params = _forward_params(type(_base_model(model)))
    return "cache" if "cache" in params else "past_key_values"


def keeps_logits(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in _forward_params(type(_base_model(model)))


def new_cache(model: torch.nn.Module) -> DynamicCache:
    try:
        return DynamicCache(config=_base_model(model).config)
    except TypeError:
        return DynamicCache()


def _positions(mask: Tensor) -> Tensor:
    """Position ids for a left-padded (or any) attention mask: 0 at each row's first real token."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def left_pad(
    seqs: Sequence[Sequence[int]], pad_id: int, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor]:
    """``(ids, mask)`` of shape (B, P): each sequence right-aligned, mask True on real tokens."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = True
    return ids.to(device), mask.to(device)


def _distinct_rows(seqs: Sequence[Sequence[int]], tags: Sequence[object] | None = None
                   ) -> tuple[list[int], list[int]] | None:
    """``(first, inverse)`` when some sequences repeat: ``first`` indexes the first occurrence of each
    distinct sequence, and row i equals ``seqs[first[inverse[i]]]``. None when all are distinct.
    ``tags`` (hashable, one per row, e.g. the row's image) must match too."""
    slot: dict[tuple, int] = {}
    first: list[int] = []
    inverse: list[int] = []
    for i, s in enumerate(seqs):
        key = (tuple(s), tags[i] if tags is not None else None)
        j = slot.get(key)
        if j is None:
            j = slot[key] = len(first)
            first.append(i)
        inverse.append(j)
    return (first, inverse) if len(first) < len(seqs) else None


# --- the sampling distribution ------------------------------------------------------------------------
def sampling_logprobs(logits: Tensor, params: SamplingParams) -> Tensor:
    """Log-probs (N, V) of the distribution tokens are drawn from: logits / temperature, then the
    top-k and top-p filters (filtered tokens get -inf). Greedy (temperature 0) returns the
    temperature-1 log-softmax; its draw is the argmax."""
    logits = logits.float()
    if params.temperature == 0:
        return torch.log_softmax(logits, dim=-1)
    logits = logits / params.temperature
    vocab = logits.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs
        drop_sorted = mass_before >= params.top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def _takes_step(processor: LogitsProcessor | None) -> bool:
    """Whether a logits processor wants the response position as its ``step`` argument."""
    if processor is None:
        return False
    try:
        return "step" in inspect.signature(processor).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False


def _draw(logp: Tensor, params: SamplingParams, generator: torch.Generator | None,
          uniform: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The next token of each row (N,) and its log-prob: greedy, by inverse CDF from one given
    uniform per row (N,) when ``uniform`` is given, else by ``torch.multinomial``."""
    if params.temperature == 0:
        tokens = logp.argmax(dim=-1)
    elif uniform is not None:
        cdf = logp.exp().cumsum(dim=-1)  # (N, V)
        # the first token whose cdf exceeds u * total: a zero-probability token is never chosen
        target = (uniform.to(cdf.dtype) * cdf[:, -1])[:, None]
        tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)
    else:
        tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def row_uniforms(row_seeds: Sequence[int], steps: int) -> Tensor:
    """(N, steps) uniforms in [0, 1), row i drawn from its own generator seeded by ``row_seeds[i]``."""
    out = torch.empty((len(row_seeds), steps), dtype=torch.float64)
    for i, seed in enumerate(row_seeds):
        g = torch.Generator()
        g.manual_seed(int(seed) % 2**63)
        out[i] = torch.rand(steps, generator=g, dtype=torch.float64)
    return out


# --- vision-language prompts ---------------------------------------------------------------------------
#: Processor outputs that are text, not image inputs.
_TEXT_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids"})


def is_processor(processing_class: object) -> bool:
    """Whether ``processing_class`` is a multimodal processor (it has an image processor and a tokenizer)."""
    return (getattr(processing_class, "image_processor", None) is not None
            and getattr(processing_class, "tokenizer", None) is not None)


def image_token_ids(processor) -> list[int]:
    """The ids of the processor's image (and video) placeholder tokens, which a policy must never
    sample: each one stands for image features the model was not given."""
    ids = []
    for attr in ("image_token_id", "video_token_id"):
        value = getattr(processor, attr, None)
        if isinstance(value, int):
            ids.append(value)
    for attr in ("image_token", "video_token"):
        token = getattr(processor, attr, None)
        if isinstance(token, str):
            value = processor.tokenizer.convert_tokens_to_ids(token)
            if isinstance(value, int) and value != processor.tokenizer.unk_token_id:
                ids.append(value)
    return sorted(set(ids))


def image_turn(prompt: str, with_image: bool) -> list[dict]:
    """One user turn: an image part (when there is an image), then the prompt."""
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
    return [{"role": "user", "content": content}]


def encode_image_prompts(processor, prompts: Sequence[str], images: Sequence[bytes | None]
                         ) -> tuple[list[list[int]], list[dict[str, Tensor] | None]]:
    """Token ids of each prompt's turn (image tokens expanded by the processor) and its image inputs
    (None for a row without an image). Images are PNG/JPEG bytes opened by the guarded decoder
    (``BadImage``, one line, for a missing, corrupt or oversized one); a repeated (prompt, image)
    row is encoded once and shares its inputs."""
    from worldsmith.vision.images import decode

    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
    done: dict[tuple[str, bytes | None], tuple[list[int], dict | None]] = {}
    ids, vision = [], []
    for prompt, image in zip(prompts, images):
        key = (prompt, image)
        if key not in done:
            text = processor.apply_chat_template(image_turn(prompt, image is not None), add_generation_prompt=True,
                                                 tokenize=False)
            extra = {"images": [decode(image)]} if image is not None else {}
            enc = processor(text=[text], return_tensors="pt", add_special_tokens=False, **extra)
            row = enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
            inputs = {k: v for k, v in enc.items() if k not in _TEXT_KEYS and isinstance(v, Tensor)}
            done[key] = (row, inputs if image is not None else None)
        row, inputs = done[key]
        ids.append(row)
        vision.append(inputs)
    return ids, vision


# --- the backend --------------------------------------------------------------------------------------
class HFBackend:
    """A ``GenerationBackend`` over an in-process HF causal LM (plain or peft-wrapped).

    ``logits_processor`` (optional) maps raw next-token logits (N, V) to new logits before
    temperature, top-k and top-p; ``behaviour_logp`` is then taken under the processed
    distribution (e.g. a processor leaving k tokens at 0 and the rest at -inf samples uniformly
    and records log(1/k)). A processor with a ``step`` parameter is called as
    ``processor(logits, step=t)`` with the response position t (e.g. ``policy.sampling.CUTS``).

    With ``share_prompts`` (the default), a batch that holds the same prompt several times (a GRPO
    group) runs the prefill forward once per distinct prompt and copies its KV cache and
    first-token logits to the repeated rows.

    ``tokenizer`` may be a multimodal processor (see the module doc); the backend then takes images
    (``takes_images``) and keeps the processor as ``processor``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        logits_processor: LogitsProcessor | None = None,
        eos_ids: Sequence[int] | None = None,
        share_prompts: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.processor = tokenizer if is_processor(tokenizer) else None
        self.tokenizer = tokenizer.tokenizer if self.processor is not None else tokenizer
        tokenizer = self.tokenizer
        if device is None:  # where the model's weights are
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.logits_processor = logits_processor
        self.eos_ids = list(eos_ids) if eos_ids is not None else eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0])
        self._newline_ids: frozenset[int] | None = None
        self.share_prompts = share_prompts
        # a sampled image placeholder would ask the model for a picture it was never given
        self.banned_ids = image_token_ids(self.processor) if self.processor is not None else []

    # public -----------------------------------------------------------------------------------------
    @property
    def takes_images(self) -> bool:
        return self.processor is not None

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        *,
        images: Sequence[bytes | None] | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Rollouts:
        """Sample one completion per prompt. ``images`` (a vision-language policy only): one PNG/JPEG
        bytes or None per prompt. ``logits_processor`` overrides the backend's own."""
        if not prompts:
            raise ValueError("generate needs at least one prompt")
        processor = logits_processor if logits_processor is not None else self.logits_processor
        vision, tags = None, None
        if self.processor is not None:
            images = list(images) if images is not None else [None] * len(prompts)
            encoded, vision = encode_image_prompts(self.processor, list(prompts), images)
            tags = images
        elif images is not None and any(img is not None for img in images):
            raise ValueError("this policy has no image processor, so it cannot take images; "
                             "load a vision-language model folder")
        else:
            encoded = encode_prompts(self.tokenizer, list(prompts))
        generator, uniforms = None, None
        if params.row_seeds is not None:
            if len(params.row_seeds) != len(prompts):
                raise ValueError(f"row_seeds has {len(params.row_seeds)} seeds for {len(prompts)} prompts")
            uniforms = row_uniforms(params.row_seeds, params.max_new_tokens).to(self.device)
        elif params.seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(params.seed))
        # longest prompts first, so each batch holds prompts of similar length
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        results: dict[int, tuple[list[int], list[float], bool]] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                pictures = {} if vision is None else {"vision": [vision[i] for i in chunk],
                                                      "tags": [tags[i] for i in chunk]}
                out = self._generate_batch([encoded[i] for i in chunk], params, generator, processor,
                                           None if uniforms is None else uniforms[chunk], **pictures)
                for i, row in zip(chunk, out):
                    results[i] = row
        finally:
            self.model.train(was_training)
        return self._assemble(encoded, [results[i] for i in range(len(encoded))], vision)

    def __call__(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        return self.generate(prompts, params)

    # internals --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _generate_batch(
        self,
        prompt_ids: list[list[int]],
        params: SamplingParams,
        generator: torch.Generator | None,
        processor: LogitsProcessor | None,
        uniforms: Tensor | None = None,
        vision: list[dict | None] | None = None,
        tags: list | None = None,
    ) -> list[tuple[list[int], list[float], bool]]:
        model, device = self.model, self.device
        cache_kw = cache_kwarg(model)
        keep = {"logits_to_keep": 1} if keeps_logits(model) else {}
        ids, mask = left_pad(prompt_ids, self.pad_id, device)
        b, steps = ids.shape[0], params.max_new_tokens
        shared = _distinct_rows(prompt_ids, tags) if self.share_prompts else None
        if shared is not None:  # prefill each distinct prompt once; its rows get copies of its cache
            first, inverse = shared
            ids_u, mask_u = left_pad([prompt_ids[i] for i in first], self.pad_id, device)
            vision = None if vision is None else [vision[i] for i in first]
        else:
            ids_u, mask_u = ids, mask
        cache = new_cache(model)
        out = model(
            input_ids=ids_u,
            attention_mask=mask_u.long(),
            position_ids=_positions(mask_u),
            use_cache=True,
            **{cache_kw: cache},
            **keep,
            **vision_inputs(vision, device),
        )
        logits = out.logits[:, -1, :]
        if shared is not None:
            rows = torch.as_tensor(inverse, dtype=torch.long, device=device)
            cache.batch_select_indices(rows)
            logits = logits[rows]
        eos = torch.tensor(self.eos_ids, device=device)
        tokens = torch.full((b, steps), self.pad_id, dtype=torch.long, device=device)
        logps = torch.zeros((b, steps), dtype=torch.float32, device=device)
        lengths = torch.full((b,), steps, dtype=torch.long, device=device)
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        live = torch.arange(b, device=device)
        attn = mask.long()
        next_pos = _positions(mask)[:, -1] + 1
        wants_step = _takes_step(processor)
        banned = torch.tensor(self.banned_ids, dtype=torch.long, device=device)
        for t in range(steps):
            if len(banned):
                logits = logits.index_fill(-1, banned, float("-inf"))
            if processor is not None:
                logits = processor(logits, step=t) if wants_step else processor(logits)
            tok, lp = _draw(sampling_logprobs(logits, params), params, generator,
                            None if uniforms is None else uniforms[live, t])
            tokens[live, t] = tok
            logps[live, t] = lp
            done = torch.isin(tok, eos)
            any_done = bool(done.any())
            if any_done:
                lengths[live[done]] = t + 1
                finished[live[done]] = True
            if t == steps - 1 or (any_done and bool(done.all())):
                break
            if any_done:
                rows = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(rows)
                live, tok, attn, next_pos = live[rows], tok[rows], attn[rows], next_pos[rows]
            attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=1)
            out = model(
                input_ids=tok[:, None],
                attention_mask=attn,
                position_ids=next_pos[:, None],
                use_cache=True,
                **{cache_kw: cache},
            )
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        tokens, logps, lengths, finished = (
            tokens.tolist(),
            logps.tolist(),
            lengths.tolist(),
            finished.tolist(),
        )
        return [(tokens[i][: lengths[i]], logps[i][: lengths[i]], finished[i]) for i in range(b)]

    def _assemble(
        self, encoded: list[list[int]], rows: list[tuple[list[int], list[float], bool]],
        vision: list[dict | None] | None = None,
    ) -> Rollouts:
        # built outside inference_mode: the trainer may feed these tensors into autograd
        prompt_ids, prompt_mask = left_pad(encoded, self.pad_id, self.device)
        width = max(len(r[0]) for r in rows)
        b = len(rows)
        completion_ids = torch.full((b, width), self.pad_id, dtype=torch.long, device=self.device)
        completion_mask = torch.zeros((b, width), dtype=torch.bool, device=self.device)
        behaviour = torch.zeros((b, width), dtype=torch.float32, device=self.device)
        texts, spans = [], []
        eos = set(self.eos_ids)
        for i, (toks, lp, _) in enumerate(rows):
            n = len(toks)
            completion_ids[i, :n] = torch.tensor(toks, dtype=torch.long, device=self.device)
            completion_mask[i, :n] = True
            behaviour[i, :n] = torch.tensor(lp, dtype=torch.float32, device=self.device)
            body = toks[:-1] if toks and toks[-1] in eos else toks
            texts.append(self.decode(body))
            spans.append(self.step_spans(body))
        return Rollouts(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            completion_ids=completion_ids,
            completion_mask=completion_mask,
            behaviour_logp=behaviour,
            texts=texts,
            step_spans=spans,
            finished=torch.tensor([r[2] for r in rows], dtype=torch.bool, device=self.device),
            vision=vision,
        )

    def decode(self, ids: Sequence[int]) -> str:
        """Completion text: special tokens dropped, added tokens such as ``<answer>`` kept."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def step_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Token spans ``[start, end)`` of the completed lines in ``ids`` (end includes the newline
        token); blank lines are skipped and a last line without a newline is not a step."""
        newline = self._newlines()
        spans, start, content = [], 0, False
        for t, tok in enumerate(ids):
            if tok in newline:
                if content:
                    spans.append((start, t + 1))
                start, content = t + 1, False
            else:
                content = True
        return spans

    def _newlines(self) -> frozenset[int]:
        if self._newline_ids is None:
            vocab = len(self.tokenizer)
            pieces = self.tokenizer.batch_decode(
                [[i] for i in range(vocab)], clean_up_tokenization_spaces=False
            )
            self._newline_ids = frozenset(i for i, p in enumerate(pieces) if "\n" in p)
        return self._newline_ids


# --- recomputing log-probs for training ---------------------------------------------------------------
def sequence_logprobs(
    model: torch.nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    temperature: float = 1.0,
    chunk: int | None = None,
    return_hidden: bool = False,
    image_inputs: dict[str, Tensor] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Per-token log-probs (B, T) float32 of ``completion_ids`` given ``prompt_ids``, one forward.

    Prompts are left-padded and completions right-padded, as in ``Rollouts``; positions where
    ``completion_mask`` is False hold 0. ``temperature`` divides the logits first (use the
    sampling temperature to match ``behaviour_logp`` of plain temperature sampling). ``chunk``
    bounds how many completion positions go through the log-softmax at once (peak memory for large
    vocabularies). With ``return_hidden``, also returns the final hidden states (B, T, d) fed to
    the LM head at the positions that predict each completion token. ``image_inputs`` (a
    vision-language model) are the rows' stacked image inputs (``backend.vision_inputs``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t_len = completion_ids.shape[1]
    if t_len == 0:
        empty = torch.zeros(completion_ids.shape, dtype=torch.float32, device=completion_ids.device)
        if not return_hidden:
            return empty
        d = _base_model(model).config.hidden_size
        return empty, torch.zeros((*completion_ids.shape, d), device=completion_ids.device)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], dim=1)
    keep = {"logits_to_keep": t_len + 1} if keeps_logits(model) else {}
    captured: list[Tensor] = []
    handle = None
    if return_hidden:
        head = _base_model(model).get_output_embeddings()
        handle = head.register_forward_hook(lambda _m, args, _o: captured.append(args[0]))
    try:
        out = model(
            input_ids=input_ids,
            attention_mask=mask.long(),
            position_ids=_positions(mask),
            use_cache=False,
            **keep,
            **(image_inputs or {}),
        )
    finally:
        if handle is not None:
            handle.remove()
    logits = out.logits[:, -(t_len + 1) : -1, :]
    step = chunk or t_len
    pieces = []
    for s in range(0, t_len, step):
        part = logits[:, s : s + step, :].float()
        if temperature != 1.0:
            part = part / temperature
        target = completion_ids[:, s : s + step, None]
        pieces.append(part.gather(-1, target).squeeze(-1) - torch.logsumexp(part, dim=-1))
    logp = torch.cat(pieces, dim=1).masked_fill(~completion_mask.bool(), 0.0)
    if not return_hidden:
        return logp
    hidden = captured[-1][:, -(t_len + 1) : -1, :]
    return logp, hidden


def shares_prompts(prompt_ids: Tensor, prompt_mask: Tensor, group_size: int) -> bool:
    """Whether each run of ``group_size`` consecutive rows holds one prompt (ids and mask)."""
    b = prompt_ids.shape[0]
    if group_size < 1 or b % group_size:
        return False
    ids = prompt_ids.reshape(b // group_size, group_size, -1)
    mask = prompt_mask.bool().reshape(b // group_size, group_size, -1)
    return bool((ids == ids[:, :1]).all()) and bool((mask == mask[:, :1]).all())


def _checkpointing(model: torch.nn.Module) -> bool:
    """Whether gradient checkpointing is active (it drops the KV cache from training forwards)."""
    if not (model.training and torch.is_grad_enabled()):
        return False
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def _outer_wrapper_removed(model: torch.nn.Module) -> torch.nn.Module:
    """The module under a DDP-style wrapper (``.module``); the model itself otherwise."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def _gather_logprobs(logits: Tensor, targets: Tensor, temperature: float, chunk: int | None) -> Tensor:
    """log softmax(logits / temperature) at ``targets``: (N, L, V), (N, L) -> (N, L) float32."""
    t_len = targets.shape[1]
    step = chunk or t_len
    pieces = []
    for s in range(0, t_len, step):
        part = logits[:, s : s + step, :].float()
        if temperature != 1.0:
            part = part / temperature
        pieces.append(part.gather(-1, targets[:, s : s + step, None]).squeeze(-1) - torch.logsumexp(part, dim=-1))
    return torch.cat(pieces, dim=1)


def grouped_sequence_logprobs(
    model: torch.nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    group_size: int,
    temperature: float = 1.0,
    chunk: int | None = None,
) -> Tensor:
    """``sequence_logprobs`` for a batch whose rows come in runs of ``group_size`` consecutive rows
    sharing one prompt (a GRPO group), computing each prompt once.

    The distinct prompts go through one forward (with gradients when called outside ``no_grad``)
    that fills a KV cache; the cache is repeated to every row of its group, and a second forward
    runs only the completion tokens (all but the last) on top of it. The first completion token is
    scored by the prompt's last logit. Gradients flow through the cache into the prompt forward,
    so the values and the gradients equal those of ``sequence_logprobs`` up to float error.

    Falls back to ``sequence_logprobs`` when ``group_size`` is 1 and under gradient checkpointing
    (which drops the cache). Raises ValueError when the rows of a group hold different prompts.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, t_len = completion_ids.shape
    if group_size < 1 or b % group_size:
        raise ValueError(f"batch of {b} rows does not split into groups of {group_size}")
    if group_size == 1 or t_len == 0 or _checkpointing(model):
        return sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                 temperature=temperature, chunk=chunk)
    if not shares_prompts(prompt_ids, prompt_mask, group_size):
        raise ValueError(f"the rows of each group of {group_size} must share one prompt")
    prompt_mask = prompt_mask.bool()
    unique_ids, unique_mask = prompt_ids[::group_size], prompt_mask[::group_size]  # (n, P)
    cache_kw = cache_kwarg(model)
    keep = {"logits_to_keep": 1} if keeps_logits(model) else {}
    cache = new_cache(model)
    # one call through a DDP-style wrapper per backward: the prompt forward runs on the module itself
    out = _outer_wrapper_removed(model)(
        input_ids=unique_ids,
        attention_mask=unique_mask.long(),
        position_ids=_positions(unique_mask),
        use_cache=True,
        **{cache_kw: cache},
        **keep,
    )
    first = out.logits[:, -1:, :]  # (n, 1, V)
    first_logp = _gather_logprobs(first.repeat_interleave(group_size, dim=0), completion_ids[:, :1],
                                  temperature, chunk)  # (B, 1)
    pieces = [first_logp]
    if t_len > 1:
        cache.batch_repeat_interleave(group_size)
        head = completion_ids[:, :-1]  # (B, T-1): the inputs that predict tokens 1..T-1
        mask = torch.cat([prompt_mask, completion_mask[:, :-1].bool()], dim=1)  # (B, P + T - 1)
        out = model(
            input_ids=head,
            attention_mask=mask.long(),
            position_ids=_positions(mask)[:, prompt_ids.shape[1] :],
            use_cache=True,
            **{cache_kw: cache},
        )
        pieces.append(_gather_logprobs(out.logits, completion_ids[:, 1:], temperature, chunk))
    return torch.cat(pieces, dim=1).masked_fill(~completion_mask.bool(), 0.0)

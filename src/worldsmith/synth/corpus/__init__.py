"""An offline corpus of candidate environment programs with known admission verdicts.

Each ``*.py`` file here is one candidate program as a generator policy might write it: about half
are correct and must be admitted by the gates L1-L5 (``worldsmith.synth.gates``); the others carry
a bug that candidates really have and must be rejected at a named gate. ``manifest.json`` records
the expected verdict of every file. The files are data: they are read as text and validated in the
sandbox, never imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from worldsmith.synth.gates import GATE_NAMES

EXPECTED = ("admit", "reject")


@dataclass(frozen=True)
class CorpusItem:
    """One program: ``name`` (file stem), its ``source``, ``expected`` ("admit" or "reject"), and
    for rejects the ``gate`` that must fail and a one-line description of the ``bug``."""

    name: str
    source: str
    expected: str
    gate: str | None = None
    bug: str | None = None


def load() -> list[CorpusItem]:
    """Every program of the corpus, in manifest order. Raises ``ValueError`` on a malformed
    manifest (unknown verdict or gate, a reject without a gate or bug, a listed file missing)."""
    root = resources.files(__name__)
    manifest = json.loads(root.joinpath("manifest.json").read_text(encoding="utf-8"))
    items = []
    for entry in manifest["programs"]:
        file, expected = entry["file"], entry["expected"]
        if expected not in EXPECTED:
            raise ValueError(f"{file}: expected must be one of {EXPECTED}, got {expected!r}")
        gate, bug = entry.get("gate"), entry.get("bug")
        if expected == "reject" and (gate not in GATE_NAMES or not bug):
            raise ValueError(f"{file}: a reject needs a gate from {GATE_NAMES} and a bug description")
        if expected == "admit" and (gate or bug):
            raise ValueError(f"{file}: an admitted program has no gate or bug")
        source = root.joinpath(file).read_text(encoding="utf-8")
        items.append(CorpusItem(file.removesuffix(".py"), source, expected, gate, bug))
    return items


__all__ = ["CorpusItem", "load"]

"""Environment synthesis: candidate environment programs and their admission (docs/synth.md).

Nothing is imported here, so registering the sub-commands keeps ``worldsmith --help`` fast; use
``from worldsmith.synth.gates import GateConfig, validate``. ``rl``, ``policy`` and ``envs`` never
import ``synth``.
"""

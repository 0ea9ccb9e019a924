"""worldsmith: RL post-training of reasoning models in worlds they can build.

``from worldsmith import Environment`` is kept light (standard library only): sandboxed candidate
programs import it in a fresh process.
"""

from worldsmith.envs.contract import Environment, Instance, Score

__all__ = ["Environment", "Instance", "Score"]
__version__ = "0.1.0"

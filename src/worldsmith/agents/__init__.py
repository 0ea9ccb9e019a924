"""Multi-turn agent environments, their episodes, outcome GRPO over episodes, and CSO.

Light to import: the torch-using parts (``policy``, ``train``, ``cso``, ``experiment``) are
imported by name.
"""

from worldsmith.agents.contract import AgentEnvironment, Episode, Session, parse_action, run_episode
from worldsmith.agents.registry import AGENT_ENVS, get_agent_env

__all__ = ["AGENT_ENVS", "AgentEnvironment", "Episode", "Session", "get_agent_env", "parse_action", "run_episode"]

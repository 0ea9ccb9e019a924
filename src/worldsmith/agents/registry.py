"""The agent environments by name."""

from __future__ import annotations

from worldsmith.agents.contract import AgentEnvironment
from worldsmith.agents.data_task import DataTask
from worldsmith.agents.gridworld import GridWorld
from worldsmith.agents.kb_lookup import KBLookup

AGENT_ENVS: dict[str, type[AgentEnvironment]] = {cls.name: cls for cls in (GridWorld, KBLookup, DataTask)}


class UnknownAgentEnvironment(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_agent_env(name: str) -> AgentEnvironment:
    """A fresh instance of the agent environment ``name``; unknown names list the valid ones."""
    if name not in AGENT_ENVS:
        raise UnknownAgentEnvironment(f"unknown agent environment {name!r}; valid: {', '.join(sorted(AGENT_ENVS))}")
    return AGENT_ENVS[name]()

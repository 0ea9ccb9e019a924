"""The multi-turn contract: an episode of actions and observations from one instance.

An agent environment is a single-turn ``Environment`` (so it samples instances, has problem
identities and train/eval splits, and grades a final answer) plus four routines of its own:

- ``initial_state(instance) -> dict``: the JSON state at the start of an episode;
- ``execute(instance, state, action) -> (state, observation)``: one action, a pure function of its
  inputs (so replaying a recorded prefix of actions restores the exact state);
- ``expert(instance, state) -> str``: a correct next action in any state (an offline planner);
- ``progress(instance, state) -> float``: how far the state is towards a correct answer, in [0, 1],
  exact; ``ExactProgressPRM`` turns it into step scores.

An action is one line of text: a tool call ``name(argument)``, the final ``answer(text)``, or a
code action fenced as ```` ```python ... ``` ```` (run only in the sandbox, by the environments
that accept code). Anything else is a malformed action: the episode goes on with an observation
saying so, and the error is counted. The episode ends when the policy answers or at the turn limit.

Standard library only, like the single-turn contract.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from worldsmith.envs.contract import Environment, Instance

#: Observations longer than this are cut (and the cut counted): a huge observation never reaches
#: the policy's context whole. PROPOSED default, a config field of the runners.
MAX_OBSERVATION_CHARS = 400
#: Characters of an action; longer ones are malformed.
MAX_ACTION_CHARS = 2000
ANSWER_TOOL = "answer"
CODE_FENCE = re.compile(r"^```(?:python)?\s*\n(?P<code>.*?)\n?```\s*$", re.S)
TOOL_CALL = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\((?P<arg>.*)\)$", re.S)

#: Step outcomes a runner counts (``Episode.errors``).
STEP_ERRORS = ("malformed_action", "unknown_tool", "code_error", "code_timeout", "observation_truncated",
               "tool_error")
#: How an episode ends (``Episode.end``).
ENDS = ("answered", "turn_limit")


@dataclass(frozen=True)
class Action:
    """A parsed action: ``kind`` is ``"tool"``, ``"code"`` or ``"answer"``; ``error`` is set (and
    kind is ``"malformed"``) when the text is not an action."""

    kind: str
    name: str = ""
    argument: str = ""
    error: str = ""


def parse_action(text: str) -> Action:
    """The action ``text`` states.

    >>> parse_action("search(Ada Lovelace)")
    Action(kind='tool', name='search', argument='Ada Lovelace', error='')
    >>> parse_action("answer(42)").kind
    'answer'
    >>> parse_action("go north").kind
    'malformed'
    """
    if not isinstance(text, str):
        return Action("malformed", error="not text")
    body = text.strip()
    if not body:
        return Action("malformed", error="empty action")
    if len(body) > MAX_ACTION_CHARS:
        return Action("malformed", error=f"action longer than {MAX_ACTION_CHARS} characters")
    fenced = CODE_FENCE.match(body)
    if fenced:
        return Action("code", name="python", argument=fenced.group("code"))
    call = TOOL_CALL.match(body)
    if call is None:
        return Action("malformed", error="expected name(argument) or a ```python``` block")
    name, arg = call.group("name"), call.group("arg").strip()
    return Action("answer" if name == ANSWER_TOOL else "tool", name=name, argument=arg)


class AgentEnvironment(Environment):
    """Base of every multi-turn environment (see the module docstring).

    Class attributes: ``tools`` (tool name -> one-line description, shown in the prompt),
    ``accepts_code`` (code actions allowed), ``max_turns`` (the default turn limit at difficulty 0;
    ``turn_limit`` may grow it with the instance).
    """

    tools: dict[str, str] = {}
    accepts_code: bool = False
    max_turns: int = 12
    answer_format = "the final answer"

    # --- what an author writes, beyond the single-turn routines -------------------------------
    def initial_state(self, instance: dict) -> dict:
        return {}

    def execute(self, instance: dict, state: dict, action: Action) -> tuple[dict, str]:
        """Apply a tool or code ``action`` (never ``answer``); return the new state and the
        observation. Must not mutate ``state``. Raise ``ToolError`` for a tool misuse."""
        raise NotImplementedError

    def expert(self, instance: dict, state: dict) -> str:
        """A correct next action (text) in ``state``."""
        raise NotImplementedError

    def progress(self, instance: dict, state: dict) -> float:
        """How close ``state`` is to a solved task, in [0, 1) (1 only once answered correctly)."""
        raise NotImplementedError

    def turn_limit(self, instance: dict) -> int:
        return self.max_turns

    # --- provided -----------------------------------------------------------------------------
    def task_prompt(self, instance: Instance) -> str:
        """The episode's opening text: the task and the tools."""
        tools = "; ".join(f"{name}: {text}" for name, text in self.tools.items())
        code = "; or a ```python``` block" if self.accepts_code else ""
        return f"{instance.prompt}\nTools: {tools}; answer: the final answer{code}.\n"

    def score(self, instance: dict, answer: str) -> float:
        return 1.0 if normalise(answer) == normalise(self.solve(instance)) else 0.0


class ToolError(ValueError):
    """A tool was called wrongly (bad argument); the observation says why."""


def normalise(text: str) -> str:
    return " ".join(str(text).strip().lower().split())


@dataclass
class Turn:
    action: str
    observation: str
    kind: str  # tool | code | answer | malformed | unknown_tool
    error: str = ""


@dataclass
class Episode:
    """One finished (or running) episode: its turns, how it ended, its verified outcome."""

    instance: Instance
    turns: list[Turn] = field(default_factory=list)
    end: str = ""  # answered | turn_limit ('' while running)
    answer: str | None = None
    reward: float = 0.0
    errors: Counter = field(default_factory=Counter)

    @property
    def actions(self) -> list[str]:
        return [t.action for t in self.turns]

    @property
    def passed(self) -> bool:
        return self.reward == 1.0

    def to_json(self) -> dict:
        return {"instance": self.instance.to_json(), "turns": [asdict(t) for t in self.turns], "end": self.end,
                "answer": self.answer, "reward": self.reward, "errors": dict(self.errors)}


class Session:
    """A live episode: ``act(text)`` applies one action and returns the observation.

    The state is rebuilt only through ``execute``, so ``Session.replay(env, instance, actions)``
    restores exactly the state (and observations) a recorded prefix of actions produced.
    """

    def __init__(self, env: AgentEnvironment, instance: Instance, max_turns: int | None = None,
                 max_observation_chars: int = MAX_OBSERVATION_CHARS) -> None:
        self.env, self.instance = env, instance
        self.state = env.initial_state(instance.data)
        self.episode = Episode(instance)
        self.max_turns = max_turns if max_turns is not None else env.turn_limit(instance.data)
        self.max_observation_chars = max_observation_chars

    @classmethod
    def replay(cls, env: AgentEnvironment, instance: Instance, actions: list[str], **kwargs) -> Session:
        session = cls(env, instance, **kwargs)
        for text in actions:
            session.act(text)
        return session

    @property
    def done(self) -> bool:
        return bool(self.episode.end)

    @property
    def progress(self) -> float:
        if self.episode.end == "answered":
            return self.episode.reward
        return float(self.env.progress(self.instance.data, self.state))

    def state_key(self) -> str:
        """The state as canonical JSON (equal states, equal keys)."""
        return json.dumps(self.state, sort_keys=True)

    def act(self, text: str) -> str:
        if self.done:
            raise RuntimeError("the episode has ended")
        ep, env = self.episode, self.env
        action = parse_action(text)
        kind, error = action.kind, action.error
        if action.kind == "malformed":
            observation = f"error: malformed action ({action.error})"
            ep.errors["malformed_action"] += 1
        elif action.kind == "answer":
            verdict = env.grade(self.instance, env.wrap(action.argument))
            ep.answer, ep.reward, ep.end = action.argument, verdict.value, "answered"
            observation = "done"
        elif action.kind == "code" and not env.accepts_code:
            kind, error = "unknown_tool", "code actions are not available here"
            observation = f"error: {error}"
            ep.errors["unknown_tool"] += 1
        elif action.kind == "tool" and action.name not in env.tools:
            kind, error = "unknown_tool", f"unknown tool {action.name!r}"
            observation = f"error: {error}; tools: {', '.join([*env.tools, ANSWER_TOOL])}"
            ep.errors["unknown_tool"] += 1
        else:
            try:
                self.state, observation = env.execute(self.instance.data, self.state, action)
            except ToolError as exc:
                error, observation = str(exc), f"error: {exc}"
                ep.errors["tool_error"] += 1
            for tag in ("code_error", "code_timeout"):
                if observation.startswith(tag.replace("_", " ")):
                    ep.errors[tag] += 1
        if len(observation) > self.max_observation_chars:
            observation = observation[: self.max_observation_chars] + " ...[cut]"
            ep.errors["observation_truncated"] += 1
        ep.turns.append(Turn(text, observation, kind, error))
        if not ep.end and len(ep.turns) >= self.max_turns:
            ep.end = "turn_limit"
        return observation


def run_episode(env: AgentEnvironment, instance: Instance, policy, max_turns: int | None = None,
                **kwargs) -> Episode:
    """Play one episode with ``policy(session) -> action text`` until an answer or the turn limit."""
    session = Session(env, instance, max_turns=max_turns, **kwargs)
    while not session.done:
        session.act(policy(session))
    return session.episode


def expert_policy(session: Session) -> str:
    """The environment's own planner as a policy."""
    return session.env.expert(session.instance.data, session.state)

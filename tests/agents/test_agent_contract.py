"""The multi-turn contract, the three agent environments, their experts and exact PRM."""

import random

import pytest

from worldsmith.agents import AGENT_ENVS, Session, get_agent_env, parse_action, run_episode
from worldsmith.agents.contract import expert_policy
from worldsmith.agents.prm import IDLE_SCORE, ExactProgressPRM, StepPRM
from worldsmith.envs.contract import Instance, split_seed

CHEAP = ("agent_gridworld", "agent_kb_lookup")


def test_parse_action_kinds():
    assert parse_action("search(Ada Lovelace)") == parse_action(" search( Ada Lovelace ) ")
    assert parse_action("search(Ada Lovelace)").argument == "Ada Lovelace"
    assert parse_action("answer(42)").kind == "answer"
    code = parse_action("```python\nprint(1)\n```")
    assert (code.kind, code.argument) == ("code", "print(1)")
    for bad in ("", "go north", "move(N", "x" * 3000, None):
        assert parse_action(bad).kind == "malformed"


@pytest.mark.parametrize("name", CHEAP)
@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_expert_solves_every_difficulty(name, difficulty):
    env = get_agent_env(name)
    for i in range(5):
        inst = env.sample(split_seed("train", i), difficulty)
        ep = run_episode(env, inst, expert_policy)
        assert (ep.end, ep.reward) == ("answered", 1.0), ep.to_json()
        assert len(ep.turns) >= 2  # several steps, never a one-shot answer


def test_expert_solves_data_task_in_the_sandbox():
    env = get_agent_env("agent_data_task")
    for difficulty in (0.0, 1.0):
        inst = env.sample(split_seed("train", 1), difficulty)
        ep = run_episode(env, inst, expert_policy)
        kinds = [t.kind for t in ep.turns]
        assert ep.passed and kinds[0] == "tool" and kinds[-1] == "answer"
        if difficulty == 1.0:  # 61 rows: the answer is not in the first lines, so code computed it
            assert kinds == ["tool", "code", "answer"] and ep.turns[1].observation == inst.reference


def test_difficulty_grows_the_problems():
    grid, kb = get_agent_env("agent_gridworld"), get_agent_env("agent_kb_lookup")
    assert grid.sample(0, 0.0).data["size"] < grid.sample(0, 1.0).data["size"]
    assert len(kb.sample(0, 0.0).data["chain"]) < len(kb.sample(0, 1.0).data["chain"])


@pytest.mark.parametrize("name", sorted(AGENT_ENVS))
def test_eval_problems_never_appear_in_train(name):
    env = get_agent_env(name)
    train = {env.sample(split_seed("train", i), 0.3).problem_id for i in range(30)}
    held = [env.sample(split_seed("eval", i), 0.3) for i in range(10)]
    assert all(inst.split == "eval" for inst in held)
    assert not train & {inst.problem_id for inst in held}


def _wandering(env, inst, rng, n):
    """A mix of menu actions, expert actions and garbage."""
    session = Session(env, inst, max_turns=n + 1)
    actions = []
    for _ in range(n):
        menu = env.action_menu(inst.data, session.state)
        text = rng.choice([*[a for a in menu if not a.startswith("answer(")], "garbage", "nosuchtool(1)",
                           expert_policy(session) if not expert_policy(session).startswith("answer(") else "x"])
        actions.append(text)
        session.act(text)
    return session, actions


@pytest.mark.parametrize("name", CHEAP)
def test_replaying_a_prefix_restores_the_exact_state(name):
    env = get_agent_env(name)
    rng = random.Random(7)
    inst = env.sample(split_seed("train", 3), 0.7)
    live, actions = _wandering(env, inst, rng, 8)
    for t in range(len(actions) + 1):
        replayed = Session.replay(env, inst, actions[:t], max_turns=len(actions) + 1)
        assert [x.observation for x in replayed.episode.turns] == [x.observation for x in live.episode.turns[:t]]
        if t == len(actions):
            assert replayed.state_key() == live.state_key()
            assert replayed.episode.errors == live.episode.errors
    # and the state differs along the way (replay is not trivially constant)
    assert len({Session.replay(env, inst, actions[:t]).state_key() for t in range(len(actions))}) > 1


def test_replay_of_code_actions_restores_the_data_task_state():
    env = get_agent_env("agent_data_task")
    inst = env.sample(split_seed("train", 2), 0.2)
    actions = ["```python\nprint(open('sales.csv').read().count('\\n'))\n```", expert_policy(
        Session.replay(env, inst, ["head(sales.csv)"]))]
    live = Session.replay(env, inst, actions)
    again = Session.replay(env, inst, actions)
    assert live.state_key() == again.state_key() == '{"found": true, "looked": true}'
    assert live.episode.turns[0].observation == str(len(inst.data["rows"]) + 1)


def test_bad_actions_end_as_counted_outcomes():
    env = get_agent_env("agent_data_task")
    env.code_wall_s = 1.0
    inst = env.sample(split_seed("train", 0), 0.0)
    session = Session(env, inst, max_turns=6)
    obs = [session.act(a) for a in ("```python\nwhile True: pass\n```", "```python\nraise ValueError('boom')\n```",
                                    "```python\nprint('x' * 100000)\n```", "nosuch(1)", "((")]
    assert obs[0].startswith("code timeout") and "ValueError" in obs[1] and obs[2].endswith("[cut]")
    assert len(obs[2]) < 500
    assert dict(session.episode.errors) == {"code_timeout": 1, "code_error": 1, "observation_truncated": 1,
                                            "unknown_tool": 1, "malformed_action": 1}
    session.act("head(sales.csv)")
    assert session.episode.end == "turn_limit" and session.done
    with pytest.raises(RuntimeError):
        session.act("head(sales.csv)")


def test_code_actions_are_refused_where_not_accepted():
    env = get_agent_env("agent_gridworld")
    session = Session(env, env.sample(0, 0.0))
    assert "not available" in session.act("```python\nprint(1)\n```")
    assert session.episode.errors["unknown_tool"] == 1


def _grid(**kw):
    data = {"size": 4, "start": [0, 0], "goal": [0, 3], "walls": [[1, 0]], "word": "KEY", **kw}
    env = get_agent_env("agent_gridworld")
    return env, Instance(env.name, 0, 0.0, env.render(data), "KEY", data)


def test_exact_prm_scores_by_hand():
    env, inst = _grid()
    prm = ExactProgressPRM(env)
    assert isinstance(prm, StepPRM)
    steps = ["move(E)", "move(S)", "move(W)", "move(N)", "bad", "move(E)", "move(E)", "answer(NOPE)"]
    # toward, away, toward... S from (0,1) -> (1,1) is away; W from (1,1) -> (1,0) is a wall: idle
    assert prm.score_steps(inst, steps) == [1.0, 0.0, IDLE_SCORE, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert prm.score_steps(inst, ["move(E)", "move(E)", "move(E)", "answer(KEY)"]) == [1.0, 1.0, 1.0, 1.0]
    assert prm.first_error(inst, steps, 0.45) == 1
    assert prm.first_error(inst, ["move(E)", "move(E)"], 0.45) is None
    assert prm.score_candidate(inst, ["move(E)"], "move(W)") == 0.0


def test_turn_limit_ends_an_episode_that_never_stops():
    env, inst = _grid()
    ep = run_episode(env, inst, lambda s: "move(N)", max_turns=5)
    assert (ep.end, len(ep.turns), ep.reward) == ("turn_limit", 5, 0.0)


def test_the_contract_and_environments_import_without_torch():
    import subprocess
    import sys

    code = "import sys, worldsmith.agents, worldsmith.agents.prm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr

"""Step traces of sort_composite, grid_paths, graph_distance and decision_chain, by hand."""

import pytest

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.envs.decision_chain import MAX_DEPTH, depth_difficulty, depth_of


def test_seven_of_the_built_in_environments_check_steps():
    with_steps = {n for n in envs.names() if envs.get(n).has_steps()}
    assert {"arithmetic_chain", "gcd_euclid", "fraction_sum", "topo_order", "sort_composite", "grid_paths",
            "graph_distance", "decision_chain"} <= with_steps
    # feasibility searches whose partial choices cannot be checked without solving the rest
    assert not with_steps & {"subset_sum", "graph_coloring", "sat_planted"}


def test_sort_composite_steps_are_the_sorted_names():
    env = envs.get("sort_composite")
    inst = {"records": [["c", 1, 5], ["a", 2, 9], ["b", 2, 3], ["d", 1, 5]]}
    assert env.steps(inst) == ["b", "a", "c", "d"]
    assert env.check_step(inst, ["b"], " a ")
    assert not env.check_step(inst, [], "a")
    assert not env.check_step(inst, ["b", "a", "c", "d"], "d")


def test_grid_paths_steps_are_the_rows_of_the_table():
    env = envs.get("grid_paths")
    inst = {"grid": ["...", ".#.", "..."]}
    assert env.steps(inst) == ["1,1,1", "1,0,1", "1,1,2"]
    assert env.solve(inst) == "2"
    assert env.check_step(inst, ["1,1,1"], "1, 0, 1")
    assert not env.check_step(inst, ["1,1,1"], "1,1,2")
    assert not env.check_step(inst, [], "1,1")


def test_graph_distance_steps_are_breadth_first_layers_in_any_order():
    env = envs.get("graph_distance")
    inst = {"n": 5, "edges": [[1, 2], [1, 3], [3, 4], [4, 5], [2, 4]], "source": 1, "target": 5}
    assert env.steps(inst) == ["2,3", "4", "5"]
    assert env.solve(inst) == "3"
    assert env.check_step(inst, [], "3,2")
    assert not env.check_step(inst, [], "2")
    assert not env.check_step(inst, [], "2,3,3")
    assert not env.check_step(inst, ["2,3", "4", "5"], "5")


def test_decision_chain_takes_the_larger_digit_at_every_level():
    env = envs.get("decision_chain")
    inst = {"levels": [[3, 7], [8, 1], [2, 5]]}
    assert env.steps(inst) == ["3|7=7", "8|1=8", "2|5=5"] and env.solve(inst) == "785"
    assert env.score(inst, " 785 ") == 1.0 and env.score(inst, "7,8,5") == 0.0 and env.score(inst, "7 8 5") == 0.0
    assert env.score(inst, "783") == 0.0 and env.score(inst, "78") == 0.0 and env.score(inst, "7-8-5") == 0.0
    assert env.check_step(inst, ["3|7=7"], "8 | 1 = 8") and not env.check_step(inst, ["3|7=7"], "8|1=1")
    assert not env.check_step(inst, ["3|7=7"], "8|2=8") and not env.check_step(inst, [], "8|1=8")


@pytest.mark.parametrize("depth", [1, 4, 9, MAX_DEPTH])
def test_decision_chain_depth_is_set_exactly_by_difficulty(depth):
    env = envs.get("decision_chain")
    assert depth_of(depth_difficulty(depth)) == depth
    for k in range(5):
        inst = env.sample(split_seed("eval", k), depth_difficulty(depth))
        assert len(inst.data["levels"]) == depth and len(inst.reference) == depth
        assert env.grade(inst, env.wrap(inst.reference)).passed
    with pytest.raises(ValueError):
        depth_difficulty(0)


def test_decision_path_follows_its_unstated_rule_per_level():
    from worldsmith.envs.decision_chain import PATH_RULE

    env = envs.get("decision_path")
    assert PATH_RULE[:3] == "LSS"
    inst = {"levels": [[3, 7], [8, 1], [2, 5]]}
    assert env.steps(inst) == ["3|7=7", "8|1=1", "2|5=2"] and env.solve(inst) == "712"
    assert env.score(inst, "712") == 1.0 and env.score(inst, "785") == 0.0
    assert env.check_step(inst, ["3|7=7"], "8|1=1") and not env.check_step(inst, ["3|7=7"], "8|1=8")
    sampled = env.sample(split_seed("eval", 0), depth_difficulty(MAX_DEPTH))
    assert "rule" in sampled.prompt and "larger" not in sampled.prompt
    assert len(sampled.reference) == MAX_DEPTH and env.grade(sampled, env.wrap(sampled.reference)).passed
    # every level's rule is one of the two moves, and both moves occur
    assert set(PATH_RULE) == {"L", "S"} and len(PATH_RULE) == MAX_DEPTH

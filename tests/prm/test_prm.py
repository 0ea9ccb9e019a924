"""Process reward models: the oracle, the noisy oracle, the generative judge (over the real HF
backend and the real HTTP backend), corrupted traces, ProcessBench figures and a trained PRM."""

import json

import pytest
import torch
from local_server import LocalServerDouble, QuietHandler

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.prm import NoisyPRM, OraclePRM, PRMConfig, build_prm, first_below
from worldsmith.prm.data import LabelledTrace, corrupt, make_traces, processbench
from worldsmith.prm.judge import JudgePRM, judge_prompt, parse_verdicts
from worldsmith.prm.trained import TrainedPRM, train_prm

ENV_OF = {n: envs.get(n) for n in envs.names()}


def arith(k=0, difficulty=0.4):
    return envs.get("arithmetic_chain").sample(split_seed("train", k), difficulty)


def test_first_below_is_the_first_score_under_the_threshold():
    assert first_below([0.9, 0.85, 0.79, 0.1]) == 2
    assert first_below([0.9, 0.8]) is None
    assert first_below([0.5, 0.9], threshold=0.4) is None
    assert first_below([]) is None


def test_oracle_scores_each_step_with_check_step():
    inst = arith()
    steps = envs.get("arithmetic_chain").steps(inst.data)
    prm = OraclePRM(ENV_OF)
    assert prm.score_steps(inst, steps) == [1.0] * len(steps)
    bad = [*steps[:1], str(int(steps[1]) + 1), *steps[2:]]
    assert prm.score_steps(inst, bad)[:2] == [1.0, 0.0]
    assert prm.first_error(inst, bad) == 1 and prm.first_error(inst, steps) is None
    assert prm.first_errors([(inst, bad), (inst, steps)]) == [1, None]
    assert prm.calls == 6
    no_checker = envs.get("subset_sum").sample(split_seed("train", 0), 0.0)
    assert prm.score_steps(no_checker, ["1", "2"]) == [0.5, 0.5]  # unknown is not verified


def test_noisy_oracle_moves_the_first_error_at_the_given_rate_and_repeats_itself():
    items = []
    for k in range(200):
        inst = arith(k)
        steps = envs.get("arithmetic_chain").steps(inst.data)
        items.append((inst, [*steps[:-1], steps[-1] + "7"]))
    truth = OraclePRM(ENV_OF).first_errors(items)
    for rate in (0.0, 0.3, 1.0):
        noisy = NoisyPRM(OraclePRM(ENV_OF), rate, seed=1)
        got = noisy.first_errors(items)
        moved = sum(a != b for a, b in zip(got, truth)) / len(items)
        assert abs(moved - rate) < 0.1, (rate, moved)
        assert noisy.first_errors(items) == got  # the same corruption on a rerun
    with pytest.raises(ValueError):
        NoisyPRM(OraclePRM(ENV_OF), 1.5)
    assert isinstance(build_prm(PRMConfig(noise=0.2), ENV_OF), NoisyPRM)


def test_the_judge_parser_fails_closed():
    assert parse_verdicts("Step 1: correct\nStep 2: incorrect\nStep 3: correct", 3) == [1.0, 0.0, 1.0]
    assert parse_verdicts("step 2 - Correct.\nSTEP 1: correct", 2) == [1.0, 1.0]
    assert parse_verdicts("Step 1: correct\nStep 1: correct", 2) == [0.0, 0.0]  # repeated: not clean
    assert parse_verdicts("Step 1: probably\nStep 2: correct", 3) == [0.0, 1.0, 0.0]  # unknown word, missing
    assert parse_verdicts("all correct", 2) == [0.0, 0.0]
    assert parse_verdicts(None, 2) == [0.0, 0.0]
    assert parse_verdicts("Step 1: correct and more", 1) == [0.0]


def test_judge_over_the_hf_policy_backend_scores_nothing_it_cannot_read():
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                                  max_position_embeddings=1024))
    judge = JudgePRM(HFBackend(model, tok), max_new_tokens=8)
    inst = arith()
    steps = envs.get("arithmetic_chain").steps(inst.data)
    scores = judge.score_steps(inst, steps)
    # an untrained model writes no clean verdict lines: every step unverified, the first is the error
    assert scores == [0.0] * len(steps) and judge.first_error(inst, steps) == 0
    assert judge.calls == 2 and judge.score_batch([(inst, [])]) == [[]]


class _JudgeHandler(QuietHandler):
    """A served judge (test double of a remote model): answers from the oracle, except that it
    writes garbage when the prompt's problem starts at 'Start at 1 '."""

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        prompt = body["prompt"]
        self.server.prompts.append(prompt)
        inst = self.server.by_prompt[prompt.split("Problem:\n", 1)[1].split("\n\nSolution steps:", 1)[0]]
        lines = prompt.split("Solution steps:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        steps = [line.split(": ", 1)[1] for line in lines]
        scores = OraclePRM(ENV_OF).score_steps(inst, steps)
        text = "\n".join(f"Step {k + 1}: {'correct' if s else 'incorrect'}" for k, s in enumerate(scores))
        self.send(200, {"choices": [{"text": text, "finish_reason": "stop"}]})


def test_judge_over_the_http_backend_reads_a_served_models_verdicts():
    insts = [arith(k) for k in range(3)]
    env = envs.get("arithmetic_chain")
    items = [(insts[0], env.steps(insts[0].data)),
             (insts[1], [env.steps(insts[1].data)[0], "999999"]),
             (insts[2], ["-5", *env.steps(insts[2].data)])]
    with LocalServerDouble(_JudgeHandler) as server:
        server.prompts, server.by_prompt = [], {i.prompt: i for i in insts}
        judge = build_prm(PRMConfig(kind="judge", http={"base_url": server.url, "model": "judge", "logprobs": False,
                                                        "max_retries": 0}), ENV_OF)
        assert judge.first_errors(items) == [None, 1, 0]
        assert judge_prompt(*items[1]) in server.prompts
    dead = JudgePRM(HTTPBackend(HTTPBackendConfig(base_url=server.url, model="j", max_retries=0, timeout_s=2)))
    assert dead.score_steps(*items[0]) == [0.0] * len(items[0][1]) and dead.failures == 1  # server gone


def test_corrupted_traces_are_wrong_exactly_at_the_chosen_step():
    import random

    env = envs.get("grid_paths")
    inst = env.sample(split_seed("train", 4), 0.2)
    ref = env.steps(inst.data)
    for at in range(len(ref)):
        bad = corrupt(env, inst, at, random.Random(at))
        assert bad is not None and list(bad[:at]) == ref[:at] and list(bad[at + 1 :]) == ref[at + 1 :]
        assert OraclePRM(ENV_OF).first_error(inst, bad) == at
    traces = make_traces(env, 40, "eval", 0.2, seed=3)
    assert len(traces) == 40 and all(t.instance.split == "eval" for t in traces)
    assert 5 < sum(t.first_error is not None for t in traces) < 35
    with pytest.raises(ValueError, match="step checker"):
        make_traces(envs.get("subset_sum"), 5, "train", 0.0)


def test_processbench_figures_by_hand():
    inst = arith()
    labelled = [LabelledTrace(inst, ("a", "b"), 1), LabelledTrace(inst, ("a", "b"), 0),
                LabelledTrace(inst, ("a",), None), LabelledTrace(inst, ("a",), None), LabelledTrace(inst, ("a",), None)]
    out = processbench([1, 1, None, None, 0], labelled)
    assert out["error_accuracy"] == 0.5 and out["correct_accuracy"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert processbench([0, 0], labelled[:2])["f1"] is None


TINY = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


def flat(rows):
    return [x for row in rows for x in row]


def test_a_trained_prm_survives_a_save_and_refuses_a_folder_without_one(tmp_path):
    traces = make_traces(envs.get("decision_chain"), 40, "train", 0.2, seed=0)
    prm, stats = train_prm(traces, tiny=TINY, epochs=1, batch_size=16)
    assert stats["examples"] == 40 and stats["loss_first"] == stats["loss_final"] > 0
    prm.info = {"envs": [["decision_chain", 0.2]]}
    prm.save(tmp_path / "prm")
    again = TrainedPRM.load(tmp_path / "prm")
    items = [(t.instance, t.steps) for t in traces[:5]]
    assert flat(again.score_batch(items)) == pytest.approx(flat(prm.score_batch(items)), abs=1e-6)
    assert len(flat(prm.score_batch(items))) == sum(len(t.steps) for t in traces[:5])
    assert json.loads((tmp_path / "prm" / "prm.json").read_text())["envs"] == [["decision_chain", 0.2]]
    with pytest.raises(ValueError, match="no trained PRM"):
        TrainedPRM.load(tmp_path)


@pytest.mark.slow
def test_a_trained_prm_ranks_held_out_first_errors_below_good_steps():
    env = envs.get("decision_chain")
    traces = make_traces(env, 300, "train", 0.2, seed=0)
    prm, stats = train_prm(traces, tiny=TINY, epochs=3, lr=3e-3, batch_size=32)
    assert stats["loss_final"] < stats["loss_first"]
    held_out = make_traces(env, 60, "eval", 0.2, seed=1)
    scores = prm.score_batch([(t.instance, t.steps) for t in held_out])
    before_error = [s[k] for t, s in zip(held_out, scores) for k in range(t.first_error or 0)]
    at_error = [s[t.first_error] for t, s in zip(held_out, scores) if t.first_error is not None]
    assert sum(before_error) / len(before_error) > sum(at_error) / len(at_error)


def test_step_logits_pool_a_steps_tokens_and_encode_trace_marks_each_steps_span():
    from worldsmith.prm.trained import encode_trace, step_logits

    logits = torch.tensor([0.0, 3.0, -1.0, 2.0, 5.0, 4.0])
    spans = [(1, 3), (4, 5), (-1, -1)]
    assert [float(x) for x in step_logits(logits, spans[:2], "min")] == [-1.0, 4.0]
    assert [float(x) for x in step_logits(logits, spans[:2], "last")] == [2.0, 4.0]
    assert step_logits(logits, spans, "min")[2] is None
    tok = build_char_tokenizer()
    ids, got = encode_trace(tok, "ab", ["c", "de"], context=64, policy_format=False)
    assert len(ids) == len("ab\nc\nde\n") and got == [(3, 4), (5, 7)]
    cut, got = encode_trace(tok, "ab", ["c", "de"], context=4, policy_format=False)
    assert len(cut) == 4 and got == [(0, 0), (1, 3)]  # the first step's newline is the window's first token
    # the policy's format: the prompt exactly as generation feeds it (here with BOS), then the steps
    from worldsmith.policy.model import encode_prompts

    prompt = list(encode_prompts(tok, ["ab"])[0])
    ids, got = encode_trace(tok, "ab", ["c", "de"], context=64)
    assert ids[: len(prompt)] == prompt and len(prompt) == len("ab\n") + 1
    assert got == [(len(prompt), len(prompt) + 1), (len(prompt) + 2, len(prompt) + 4)]


def test_a_likelihood_prm_scores_each_step_by_its_least_likely_token(tmp_path):
    from worldsmith.policy.model import encode_prompts, save_policy
    from worldsmith.prm.likelihood import LikelihoodPRM

    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TINY, seed=3).eval()
    inst = arith(2)
    steps = ["5", "12", "7"]
    prm = LikelihoodPRM(model, tok)
    scores = prm.score_steps(inst, steps)
    ids = list(encode_prompts(tok, [inst.prompt])[0])
    expected = []
    with torch.no_grad():
        for step in steps:
            start = len(ids)
            ids += tok(step + "\n", add_special_tokens=False)["input_ids"]
            probs = torch.softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            expected.append(min(float(probs[t - 1, ids[t]]) for t in range(start, len(ids))))
    assert scores == pytest.approx(expected, abs=1e-5)
    # batched with a longer trace (padding on the right) gives the same scores
    batch = prm.score_batch([(inst, steps), (arith(3), ["1", "2", "3", "4", "5"])])
    assert batch[0] == pytest.approx(expected, abs=1e-5) and len(batch[1]) == 5 and prm.calls == 3
    # from the config: a policy folder, or the in-process policy of a backend
    save_policy(model, tok, tmp_path / "policy")
    built = build_prm(PRMConfig(kind="likelihood", path=str(tmp_path / "policy")), ENV_OF)
    assert built.score_steps(inst, steps) == pytest.approx(expected, abs=1e-5)
    assert build_prm(PRMConfig(kind="likelihood"), ENV_OF, policy_backend=HFBackend(model, tok)).model is model
    with pytest.raises(ValueError, match="needs prm.path"):
        build_prm(PRMConfig(kind="likelihood"), ENV_OF)


def test_a_likelihood_pooled_prm_adds_the_frozen_backbones_step_logprobs_and_reloads(tmp_path):
    from worldsmith.policy.model import save_policy
    from worldsmith.prm.trained import encode_trace, step_logits, token_logprobs

    # the pooled logit by hand: last token's logit + w . (least, mean log-prob over the step) + b
    head = torch.nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, -1.0]]))
        head.bias.fill_(0.5)
    logits = torch.tensor([0.0, 3.0, -1.0, 2.0, 5.0])
    logp = torch.tensor([0.0, -0.5, -2.0, -0.1, -3.0])
    got = step_logits(logits, [(1, 3), (4, 4)], "likelihood", logp, head)
    assert got[0].item() == pytest.approx(2.0 + 2 * -2.0 - (-2.6 / 3) + 0.5)
    assert got[1].item() == pytest.approx(5.0 + 2 * -3.0 + 3.0 + 0.5)
    lm = torch.log_softmax(torch.randn(1, 4, 7), -1)
    ids = torch.tensor([[1, 4, 2, 6]])
    assert token_logprobs(lm, ids)[0].tolist() == pytest.approx([0.0, float(lm[0, 0, 4]), float(lm[0, 1, 2]),
                                                                 float(lm[0, 2, 6])])

    tok = build_char_tokenizer()
    policy = build_tiny_model(tok, TINY, seed=4)
    save_policy(policy, tok, tmp_path / "policy")
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    traces = make_traces(envs.get("decision_chain"), 32, "train", 0.2, seed=0)
    prm, stats = train_prm(traces, init=str(tmp_path / "policy"), epochs=2, lr=1e-2, batch_size=16,
                           pool="likelihood")
    assert stats["loss_final"] != stats["loss_first"]
    backbone = prm.scorer.backbone.state_dict()
    assert all(torch.equal(backbone[k], before[k]) for k in before)  # the backbone stays the policy
    assert prm.scorer.likelihood.weight.tolist() != [[1.0, 0.0]]  # its weighting was trained
    # the step scores are sigmoid(head logit at the closing newline + the weighted log-probabilities)
    t = traces[0]
    ids, spans = encode_trace(tok, t.instance.prompt, t.steps, 10_000)
    with torch.no_grad():
        out = policy(input_ids=torch.tensor([ids]), output_hidden_states=True)
        lp = token_logprobs(out.logits, torch.tensor([ids]))[0]
        token_logits = prm.scorer.head(out.hidden_states[-1][0]).squeeze(-1)
        expected = [float(torch.sigmoid(x)) for x in step_logits(token_logits, spans, "likelihood", lp,
                                                                   prm.scorer.likelihood)]
    assert prm.score_steps(t.instance, t.steps) == pytest.approx(expected, abs=1e-5)
    prm.save(tmp_path / "prm")
    again = TrainedPRM.load(tmp_path / "prm")
    assert again.score_steps(t.instance, t.steps) == pytest.approx(expected, abs=1e-5)
    (tmp_path / "prm" / "likelihood_head.pt").unlink()
    with pytest.raises(ValueError, match="without its likelihood_head.pt"):
        TrainedPRM.load(tmp_path / "prm")
    with pytest.raises(ValueError, match="unknown pool"):
        train_prm(traces, tiny=TINY, pool="mean")

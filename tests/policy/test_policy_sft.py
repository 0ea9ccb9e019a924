import pytest

from worldsmith import envs
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.sft import sft_examples, tokenize_examples, train_sft

SPEC = [("arithmetic_chain", 0.0, 1.0)]


def test_examples_are_steps_then_wrapped_answer():
    env = envs.get("arithmetic_chain")
    examples = sft_examples([("arithmetic_chain", 0.5, 1.0)], 5)
    for i, (prompt, completion) in enumerate(examples):
        inst = env.sample(envs.split_seed("train", i), 0.5)
        assert prompt == inst.prompt
        steps = env.steps(inst.data)
        assert completion == "".join(s + "\n" for s in steps) + f"<answer>{inst.reference}</answer>"
        assert env.grade(inst, completion).passed
    assert sft_examples([("arithmetic_chain", 0.5, 1.0)], 5) == examples
    assert sft_examples([("arithmetic_chain", 0.5, 1.0)], 5, split="eval") != examples
    assert sft_examples([("arithmetic_chain", 0.5, 1.0)], 3, start=2) == examples[2:5]
    assert sft_examples(SPEC, 2, eos="<eos>")[0][1].endswith("</answer><eos>")


def _n_ops(prompt):
    return len(prompt.split("in order: ")[1].split(".")[0].split())


def test_mixture_follows_weights():
    mixed = sft_examples([("arithmetic_chain", 0.0, 3.0), ("arithmetic_chain", 1.0, 1.0)], 400, seed=1)
    ops = [_n_ops(p) for p, _ in mixed]
    assert set(ops) == {1, 8}  # difficulty 0 has one operation, difficulty 1 eight
    assert 60 < ops.count(8) < 140
    assert (
        sft_examples([("arithmetic_chain", 0.0, 3.0), ("arithmetic_chain", 1.0, 1.0)], 400, seed=2) != mixed
    )
    with pytest.raises(ValueError):
        sft_examples([("arithmetic_chain", 0.0, 0.0)], 3)
    with pytest.raises(envs.UnknownEnvironment):
        sft_examples([("no_such_env", 0.0, 1.0)], 3)


def test_completions_end_with_one_eos(tok):
    data = tokenize_examples(tok, [("p", "a"), ("p", "b<eos>")], tok.eos_token_id)
    assert data[0][1] == [*tok("a", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    assert data[1][1].count(tok.eos_token_id) == 1 and data[1][1][-1] == tok.eos_token_id
    assert data[0][0][0] == tok.bos_token_id


def _accuracy(model, tok, instances):
    env = envs.get("arithmetic_chain")
    r = HFBackend(model, tok).generate(
        [i.prompt for i in instances], SamplingParams(max_new_tokens=24, temperature=0)
    )
    return sum(env.grade(i, t).passed for i, t in zip(instances, r.texts)) / len(instances)


def test_sft_learns_arithmetic_chain(tok, tiny):
    env = envs.get("arithmetic_chain")
    # seeds the examples did not use, of the train split: SFT fits the training distribution (at
    # difficulty 0 it does not carry over to the eval split's unseen problems; docs/learning.md)
    held_out = [env.sample(envs.split_seed("train", 100_000 + i), 0.0) for i in range(100)]
    before = _accuracy(tiny, tok, held_out)
    examples = sft_examples(SPEC, 4000, seed=0)
    metrics = train_sft(tiny, tok, examples, epochs=3, lr=3e-3, batch_size=16, seed=0, progress=False)
    after = _accuracy(tiny, tok, held_out)
    print(
        f"sft: loss {metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f} in {metrics['seconds']:.1f}s, "
        f"held-out greedy accuracy {before:.2f} -> {after:.2f}"
    )
    assert metrics["steps"] == 750 and metrics["loss"] == metrics["final_loss"]
    assert metrics["final_loss"] < 0.25 * metrics["first_loss"]
    assert before <= 0.02
    assert after >= before + 0.15

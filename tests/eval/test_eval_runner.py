"""The evaluation runner: held-out seeds, greedy and sampled passes, per-environment summaries."""

import torch

from worldsmith import envs
from worldsmith.eval.runner import evaluate
from worldsmith.policy.backend import Rollouts
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer


class ScriptedBackendDouble:
    """A stand-in generation backend answering from a table of prompts (no model involved).

    ``wrong_every`` makes every n-th sampled answer wrong, so sampled metrics are non-trivial.
    """

    def __init__(self, answers: dict[str, str], wrong_every: int = 0):
        self.answers, self.wrong_every, self.calls, self.seen = answers, wrong_every, [], []

    def generate(self, prompts, params):
        self.calls.append(params)
        self.seen.extend(prompts)
        texts = []
        for i, p in enumerate(prompts):
            ref = self.answers[p]
            wrong = params.temperature > 0 and self.wrong_every and i % self.wrong_every == 0
            texts.append(f"<answer>{ref}0</answer>" if wrong else f"<answer>{ref}</answer>")
        empty = torch.zeros((len(prompts), 1))
        return Rollouts(empty.long(), empty.bool(), empty.long(), empty.bool(), empty, texts)


def table(name, difficulty, n):
    env = envs.get(name)
    return {env.sample(envs.split_seed("eval", i), difficulty).prompt: env.sample(envs.split_seed("eval", i), difficulty).reference
            for i in range(n)}


def test_metrics_from_a_scripted_backend():
    answers = {**table("gcd_euclid", 0.0, 10), **table("topo_order", 0.5, 10)}
    backend = ScriptedBackendDouble(answers, wrong_every=4)
    summary = evaluate(backend, [("gcd_euclid", 0.0), ("topo_order", 0.5)], instances=10, samples=4, progress=False)
    assert summary["accuracy_greedy"] == 1.0
    # samples are laid out prompt-major (4 per prompt): index i*4 is wrong, so 1 of 4 per prompt
    assert summary["accuracy_sampled"] == 0.75
    assert summary["overall"]["pass@k"] == 1.0 and summary["overall"]["maj@k"] == 1.0
    assert set(summary["per_env"]) == {"gcd_euclid", "topo_order"}
    assert summary["per_env_difficulty"]["topo_order"][0.5]["problems"] == 10
    assert backend.calls[0].temperature == 0.0 and backend.calls[1].temperature == 1.0


def test_a_real_tiny_model_is_evaluated_deterministically():
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))
    backend = HFBackend(model, tok)
    a = evaluate(backend, [("arithmetic_chain", 0.0)], instances=8, samples=2, max_new_tokens=8, progress=False)
    b = evaluate(backend, [("arithmetic_chain", 0.0)], instances=8, samples=2, max_new_tokens=8, progress=False)
    assert a == b
    assert a["overall"]["problems"] == 8 and 0.0 <= a["accuracy_sampled"] <= 1.0

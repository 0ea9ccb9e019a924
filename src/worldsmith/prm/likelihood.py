"""A policy as its own process reward model: a step scores the probability of its least likely token.

The input is what the policy reads when it writes the steps: the prompt as generation encodes it
(``encode_prompts``), then each step and a newline. Step k's score is the smallest probability the
model gives any of its tokens (the closing newline included) after the prompt and steps 0..k-1.
A policy that has learnt the derivation puts nearly all its mass on the right digit, so a miscopied
or miscomputed one scores near 0 while the steps it would have written itself score near 1. No
training, no labels: the score is only as good as the policy, and it says nothing about steps the
policy would also get wrong.

Scores are probabilities of single tokens, not calibrated step-correctness probabilities: the
first-error threshold that separates them is lower than a trained PRM's (0.1 on the lab's base
policy; ``worldsmith prm eval likelihood:PATH --threshold 0.1``, ``train.vppo.threshold``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from worldsmith.envs.contract import Instance
from worldsmith.prm import PRM

#: The first-error threshold for likelihood scores, chosen on the lab's base (docs/process.md). PROPOSED.
LIKELIHOOD_THRESHOLD = 0.1


class LikelihoodPRM(PRM):
    """Step scores from a causal LM's own token probabilities (see the module doc).

    ``model`` and ``tokenizer`` are a policy's (``load_policy``); ``batch_size`` traces per forward.
    Inputs longer than the model's context keep their last tokens; a step pushed out scores 0."""

    name = "likelihood"

    def __init__(self, model, tokenizer, batch_size: int = 32) -> None:
        super().__init__()
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.context = int(getattr(model.config, "max_position_embeddings", 1 << 30))

    @torch.no_grad()
    def score_batch(self, items: Sequence[tuple[Instance, Sequence[str]]]) -> list[list[float]]:
        from worldsmith.prm.trained import encode_trace, pad_rows, token_logprobs

        self.calls += len(items)
        out: list[list[float]] = []
        pad = self.tokenizer.pad_token_id or 0
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            for s in range(0, len(items), self.batch_size):
                chunk = [encode_trace(self.tokenizer, inst.prompt, steps, self.context)
                         for inst, steps in items[s : s + self.batch_size]]
                ids, mask = pad_rows([c[0] for c in chunk], pad)
                ids = ids.to(device)
                logits = self.model(input_ids=ids, attention_mask=mask.to(device)).logits
                logp = token_logprobs(logits, ids).cpu()  # (b, L): log p(token t | tokens before it)
                for row, (_, spans) in enumerate(chunk):
                    scores = []
                    for a, b in spans:
                        first = max(a, 1)  # a token at position 0 has no prediction
                        scores.append(0.0 if b < first else float(logp[row, first : b + 1].min().exp()))
                    out.append(scores)
        finally:
            self.model.train(was_training)
        return out

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        return self.score_batch([(instance, steps)])[0]

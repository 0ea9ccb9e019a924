"""Lexical overlap for the proxy-metric game: ROUGE-1, ROUGE-L and BLEU, written here (no
rouge_score or sacrebleu dependency).

- ROUGE tokens: lower-cased, every character outside [a-z0-9] a separator (as rouge_score's
  default tokenizer). PROPOSED deviation: no Porter stemmer (the paper's ``use_stemmer=True``);
  scores on real articles can differ slightly from rouge_score's, synthetic articles have no
  inflections.
- BLEU: corpus BLEU of one (hypothesis, reference) pair, n-grams 1..4 with clipped counts, the
  brevity penalty, and "exp" smoothing of zero counts (the method sacrebleu's corpus BLEU uses by
  default), on case-sensitive tokens with punctuation split off (an approximation of the 13a
  tokenizer). Returned in [0, 1] (sacrebleu's score / 100).
- Long outputs are compared on their first ``MAX_TOKENS`` tokens so one call stays bounded.
"""

from __future__ import annotations

import math
from collections import Counter

MAX_TOKENS = 4096  # PROPOSED bound on the output tokens compared (the paper caps responses at 3072)


def rouge_tokens(text: str) -> list[str]:
    cleaned = "".join(ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else " " for ch in text.lower())
    return cleaned.split()[:MAX_TOKENS]


def _f1(overlap: float, n_pred: int, n_ref: int) -> float:
    if not overlap or not n_pred or not n_ref:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence of two token lists (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1."""
    ref, pred = rouge_tokens(reference), rouge_tokens(prediction)
    return _f1(lcs_length(ref, pred), len(pred), len(ref))


def rouge_1(reference: str, prediction: str) -> float:
    """ROUGE-1 F1 (clipped unigram overlap)."""
    ref, pred = rouge_tokens(reference), rouge_tokens(prediction)
    return _f1(sum((Counter(ref) & Counter(pred)).values()), len(pred), len(ref))


def bleu_tokens(text: str) -> list[str]:
    spaced = "".join(f" {ch} " if not ch.isalnum() and not ch.isspace() else ch for ch in text)
    return spaced.split()[:MAX_TOKENS]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(reference: str, prediction: str, max_order: int = 4) -> float:
    """Corpus BLEU of one pair with exp smoothing, in [0, 1]."""
    ref, hyp = bleu_tokens(reference), bleu_tokens(prediction)
    if not hyp or not ref:
        return 0.0
    log_sum, smooth = 0.0, 1.0
    for n in range(1, max_order + 1):
        total = max(len(hyp) - n + 1, 0)
        if total == 0:
            return 0.0  # no n-grams of this order: the geometric mean is 0
        correct = sum((_ngrams(hyp, n) & _ngrams(ref, n)).values())
        if correct == 0:
            smooth *= 2
            precision = 1.0 / (smooth * total)
        else:
            precision = correct / total
        log_sum += math.log(precision)
    penalty = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(log_sum / max_order)

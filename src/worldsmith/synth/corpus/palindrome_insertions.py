"""Fewest characters to insert so that a string becomes a palindrome (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def min_insertions(s):
    n = len(s)
    best = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            if s[i] == s[j]:
                best[i][j] = best[i + 1][j - 1] if length > 2 else 0
            else:
                best[i][j] = 1 + min(best[i + 1][j], best[i][j - 1])
    return best[0][n - 1] if n else 0


class PalindromeInsertions(Environment):
    name = "palindrome_insertions"
    description = "Minimum number of insertions that turn a string into a palindrome."
    answer_format = "the minimum number of insertions as an integer"

    def generate(self, rng, difficulty):
        alphabet = "abcde"[: scale(difficulty, 2, 5)]
        return {"text": "".join(rng.choice(alphabet) for _ in range(scale(difficulty, 4, 30)))}

    def solve(self, instance):
        return str(min_insertions(instance["text"]))

    def render(self, instance):
        return (
            f"What is the fewest characters you must insert (anywhere) into '{instance['text']}' "
            f"to make it read the same backwards?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == min_insertions(instance["text"]) else 0.0

"""Longest common prefix of a list of words (equality oracle)."""

from worldsmith import Environment

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class CommonPrefix(Environment):
    name = "common_prefix"
    description = "Find the longest prefix shared by all the words."
    answer_format = "the common prefix"

    def generate(self, rng, difficulty):
        stem = "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, scale(difficulty, 3, 10))))
        words = []
        for _ in range(scale(difficulty, 2, 9)):
            words.append(stem + "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 6))))
        return {"words": words}

    def solve(self, instance):
        words = instance["words"]
        prefix = words[0]
        for w in words[1:]:
            while not w.startswith(prefix):
                prefix = prefix[:-1]
        return prefix

    def render(self, instance):
        listed = ", ".join(instance["words"])
        return f"What is the longest common prefix of: {listed}?\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        return 1.0 if self.solve(instance).startswith(answer.strip()) else 0.0

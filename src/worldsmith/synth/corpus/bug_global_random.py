"""Sort the letters of a scrambled word alphabetically (equality oracle)."""

import random

from worldsmith import Environment

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SortLetters(Environment):
    name = "sort_letters"
    description = "Write the letters of a word in alphabetical order."
    answer_format = "the sorted letters as one word"

    def generate(self, rng, difficulty):
        length = scale(difficulty, 4, 20)
        return {"word": "".join(random.choice(LETTERS) for _ in range(length))}

    def solve(self, instance):
        return "".join(sorted(instance["word"]))

    def render(self, instance):
        return (
            f"Sort the letters of '{instance['word']}' alphabetically.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        return 1.0 if answer.strip() == self.solve(instance) else 0.0

"""Reverse the order of the words in a sentence of made-up words (equality oracle)."""

from worldsmith import Environment

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class ReverseWords(Environment):
    name = "reverse_words"
    description = "Write the words of a sentence in reverse order."
    answer_format = "the words in reverse order, separated by single spaces"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 3, 14)
        longest = scale(difficulty, 4, 9)
        words = []
        while len(words) < n:
            word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, longest)))
            if word not in words:
                words.append(word)
        return {"words": words}

    def solve(self, instance):
        return " ".join(reversed(instance["words"]))

    def render(self, instance):
        sentence = " ".join(instance["words"])
        return (
            f'Reverse the order of the words in "{sentence}", keeping each word unchanged.\n'
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        if not isinstance(answer, str):
            return 0.0
        return 1.0 if answer.split() == list(reversed(instance["words"])) else 0.0

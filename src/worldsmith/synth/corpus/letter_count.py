"""Count how often one letter occurs in a random string (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class LetterCount(Environment):
    name = "letter_count"
    description = "Count the occurrences of a letter in a string."
    answer_format = "the count as an integer"

    def generate(self, rng, difficulty):
        alphabet = "abcdefghijklmnop"[: scale(difficulty, 3, 16)]
        text = "".join(rng.choice(alphabet) for _ in range(scale(difficulty, 8, 160)))
        return {"text": text, "letter": rng.choice(alphabet)}

    def solve(self, instance):
        return str(instance["text"].count(instance["letter"]))

    def render(self, instance):
        return (
            f"How many times does the letter '{instance['letter']}' occur in the string "
            f"{instance['text']}?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == instance["text"].count(instance["letter"]) else 0.0

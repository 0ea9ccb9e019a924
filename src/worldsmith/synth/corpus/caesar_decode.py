"""Decode a Caesar-shifted message of lowercase words (equality oracle)."""

from worldsmith import Environment

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def shift_word(word, k):
    return "".join(LETTERS[(LETTERS.index(ch) + k) % 26] for ch in word)


class CaesarDecode(Environment):
    name = "caesar_decode"
    description = "Undo a Caesar shift applied to a message."
    answer_format = "the decoded words, lowercase, separated by single spaces"

    def generate(self, rng, difficulty):
        words = []
        for _ in range(scale(difficulty, 1, 5)):
            length = rng.randint(4, scale(difficulty, 5, 10))
            words.append("".join(rng.choice(LETTERS) for _ in range(length)))
        shift = rng.randint(1, 25)
        return {"cipher": [shift_word(w, shift) for w in words], "shift": shift}

    def _plain(self, instance):
        return [shift_word(w, -instance["shift"]) for w in instance["cipher"]]

    def solve(self, instance):
        return " ".join(self._plain(instance))

    def render(self, instance):
        return (
            f"Each letter of the message '{' '.join(instance['cipher'])}' was moved "
            f"{instance['shift']} places forward in the alphabet (wrapping from z to a). Recover the "
            f"original message.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        if not isinstance(answer, str):
            return 0.0
        return 1.0 if answer.split() == self._plain(instance) else 0.0

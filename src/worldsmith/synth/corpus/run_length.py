"""Run-length encode a string of letters, e.g. aaabcc -> a3b1c2 (equality oracle)."""

from worldsmith import Environment


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def encode(text):
    out, i = [], 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out.append(f"{text[i]}{j - i}")
        i = j
    return "".join(out)


class RunLength(Environment):
    name = "run_length"
    description = "Run-length encode a string."
    answer_format = "the encoding: each run as its letter followed by its length, no separators"

    def generate(self, rng, difficulty):
        alphabet = "abcdefgh"[: scale(difficulty, 3, 8)]
        runs, previous = [], ""
        for _ in range(scale(difficulty, 3, 16)):
            letter = rng.choice([c for c in alphabet if c != previous])
            runs.append(letter * rng.randint(1, scale(difficulty, 3, 12)))
            previous = letter
        return {"text": "".join(runs)}

    def solve(self, instance):
        return encode(instance["text"])

    def render(self, instance):
        return (
            f"Run-length encode '{instance['text']}' (for example, aaabcc becomes a3b1c2).\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        if not isinstance(answer, str):
            return 0.0
        return 1.0 if answer.strip() == encode(instance["text"]) else 0.0

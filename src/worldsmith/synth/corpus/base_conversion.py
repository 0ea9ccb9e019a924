"""Write a decimal number in another base between 2 and 16 (equality oracle)."""

from worldsmith import Environment

DIGITS = "0123456789abcdef"
BASES = [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16]


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def to_base(n, base):
    out = ""
    while n:
        n, r = divmod(n, base)
        out = DIGITS[r] + out
    return out or "0"


class BaseConversion(Environment):
    name = "base_conversion"
    description = "Convert a decimal integer to a given base."
    answer_format = "the number in the requested base, lowercase digits, no prefix"

    def generate(self, rng, difficulty):
        n = rng.randint(100, 10 ** scale(difficulty, 3, 12))
        return {"n": n, "base": rng.choice(BASES)}

    def solve(self, instance):
        return to_base(instance["n"], instance["base"])

    def render(self, instance):
        return (
            f"Write the decimal number {instance['n']} in base {instance['base']} "
            f"(digits 0-9 then a-f).\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        if not isinstance(answer, str):
            return 0.0
        return 1.0 if answer.strip().lower() == to_base(instance["n"], instance["base"]) else 0.0

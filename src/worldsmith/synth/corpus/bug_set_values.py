"""Size of the union of two sets of integers (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SetUnionSize(Environment):
    name = "set_union_size"
    description = "Count the elements of the union of two sets."
    answer_format = "the size of the union as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 4, 40)
        top = scale(difficulty, 10, 200)
        left = {rng.randint(1, top) for _ in range(n)}
        right = {rng.randint(1, top) for _ in range(n)}
        return {"left": left, "right": right}

    def solve(self, instance):
        return str(len(instance["left"] | instance["right"]))

    def render(self, instance):
        a = ", ".join(map(str, sorted(instance["left"])))
        b = ", ".join(map(str, sorted(instance["right"])))
        return (
            f"A = {{{a}}} and B = {{{b}}}. How many elements does A ∪ B have?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == len(set(instance["left"]) | set(instance["right"])) else 0.0

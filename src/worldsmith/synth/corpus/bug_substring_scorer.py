"""Sum of squares of a list of integers (equality oracle)."""

from worldsmith import Environment


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SumOfSquares(Environment):
    name = "sum_of_squares"
    description = "Add up the squares of a list of integers."
    answer_format = "the sum as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 3, 15)
        top = scale(difficulty, 9, 99)
        return {"values": [rng.randint(-top, top) for _ in range(n)]}

    def solve(self, instance):
        return str(sum(v * v for v in instance["values"]))

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return f"Compute the sum of the squares of {listed}.\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        return 1.0 if self.solve(instance) in answer else 0.0

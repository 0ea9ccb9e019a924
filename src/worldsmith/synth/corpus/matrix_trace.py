"""The trace of a square integer matrix (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class MatrixTrace(Environment):
    name = "matrix_trace"
    description = "Sum the main diagonal of a square matrix."
    answer_format = "the trace as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 2, 9)
        bound = scale(difficulty, 9, 99)
        rows = [[rng.randint(-bound, bound) for _ in range(n)] for _ in range(n)]
        return {"matrix": rows}

    def solve(self, instance):
        m = instance["matrix"]
        return str(sum(m[i][i] for i in range(len(m))))

    def render(self, instance):
        rows = "\n".join(" ".join(f"{x:4d}" for x in row) for row in instance["matrix"])
        return f"What is the trace of this matrix?\n{rows}\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        value = parse_int(answer)
        m = instance["matrix"]
        return 1.0 if value is not None and value == sum(m[i][i] for i in range(len(m))) else 0.0

"""Mean of a list of integers, constructed so that the mean is an integer (equality oracle)."""

from worldsmith import Environment


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class IntegerMean(Environment):
    name = "integer_mean"
    description = "Compute the average of a list of integers whose mean is whole."
    answer_format = "the mean as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 3, 12)
        top = scale(difficulty, 20, 500)
        values = [rng.randint(1, top) for _ in range(n - 1)]
        mean = rng.randint(1, top)
        values.append(mean * n - sum(values))
        return {"values": values}

    def solve(self, instance):
        return str(sum(instance["values"]) // len(instance["values"]))

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return f"What is the average of {listed}?\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        try:
            guess = float(answer)
        except ValueError:
            return 0.0
        mean = sum(instance["values"]) / len(instance["values"])
        return 1.0 if abs(guess - mean) < 0.5 else 0.0

"""Count the inversions of a permutation (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def inversions(perm):
    return sum(1 for i in range(len(perm)) for j in range(i + 1, len(perm)) if perm[i] > perm[j])


class CountInversions(Environment):
    name = "count_inversions"
    description = "Count the pairs that appear in the wrong order in a permutation."
    answer_format = "the number of inversions as an integer"

    def generate(self, rng, difficulty):
        perm = list(range(1, scale(difficulty, 4, 30) + 1))
        rng.shuffle(perm)
        return {"perm": perm}

    def solve(self, instance):
        return str(inversions(instance["perm"]))

    def render(self, instance):
        listed = " ".join(map(str, instance["perm"]))
        return (
            f"In the permutation {listed}, how many pairs of positions i < j hold a larger number "
            f"at i than at j?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == inversions(instance["perm"]) else 0.0

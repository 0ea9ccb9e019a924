"""Find the first bracket error in a string of (), [] and {} (equality oracle).

The answer is 0 for a balanced string, the 1-based position of the first closing bracket that does
not match, or the length plus one when every closing bracket matches but some bracket stays open.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int

PAIRS = {")": "(", "]": "[", "}": "{"}


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def first_error(text):
    stack = []
    for pos, ch in enumerate(text, start=1):
        if ch in "([{":
            stack.append(ch)
        elif not stack or stack.pop() != PAIRS[ch]:
            return pos
    return len(text) + 1 if stack else 0


class BracketErrors(Environment):
    name = "bracket_errors"
    description = "Locate the first unmatched bracket in a bracket string."
    answer_format = "a single integer (0 if the string is balanced)"

    def generate(self, rng, difficulty):
        pairs = scale(difficulty, 3, 30)
        kinds = "([{"[: scale(difficulty, 1, 3)]
        out, stack = [], []
        while len(out) < 2 * pairs:
            remaining = 2 * pairs - len(out)
            if stack and (remaining == len(stack) or rng.random() < 0.45):
                out.append({"(": ")", "[": "]", "{": "}"}[stack.pop()])
            else:
                ch = rng.choice(kinds)
                stack.append(ch)
                out.append(ch)
        if rng.random() < 0.75:
            pos = rng.randrange(len(out))
            out[pos] = rng.choice([c for c in "()[]{}" if c != out[pos]])
        return {"text": "".join(out)}

    def solve(self, instance):
        return str(first_error(instance["text"]))

    def render(self, instance):
        return (
            f"Scan the bracket string {instance['text']} from left to right. Answer 0 if it is "
            "balanced; otherwise the 1-based position of the first closing bracket that does not "
            "match the innermost open bracket (or has none), or the length of the string plus one "
            f"if no closing bracket is wrong but some bracket is never closed.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == first_error(instance["text"]) else 0.0

"""Step segmentation: markers, the newline fallback, the final answer cut, and token spans."""

import pytest

from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.steps import char_ends, split_steps, step_texts, token_at, token_spans


def test_markers_split_steps_and_drop_the_marker():
    text = "Step 1: 2+3 = 5\nstill step one\nstep 2) 5*2 = 10\nSTEP 3. done\n<answer>10</answer>"
    steps = split_steps(text)
    assert [s.text for s in steps] == ["2+3 = 5\nstill step one", "5*2 = 10", "done"]
    assert text[steps[1].start : steps[1].end] == "step 2) 5*2 = 10\n"
    assert steps[2].end == text.index("<answer>")


def test_lines_are_the_fallback_and_blank_lines_are_not_steps():
    text = "7\n\n  21 \n16\n<answer>16</answer>"
    steps = split_steps(text)
    assert [s.text for s in steps] == ["7", "21", "16"]
    assert [text[s.start : s.end] for s in steps] == ["7\n", "  21 \n", "16\n"]


def test_only_the_body_before_the_last_answer_counts():
    assert step_texts("1\n<answer>2</answer>\n3\n<answer>4</answer>") == ["1", "<answer>2</answer>", "3"]
    assert step_texts("a\nb\n\\boxed{3}") == ["a", "b"]
    assert step_texts("<answer>5</answer>") == []
    assert step_texts("no answer at all\nsecond") == ["no answer at all", "second"]
    assert step_texts(None) == []


def test_a_marker_mid_line_is_not_a_marker_and_layouts_can_be_forced():
    assert step_texts("we did Step 1: x\ny\n<answer>1</answer>") == ["we did Step 1: x", "y"]
    assert step_texts("a\nb\n<answer>1</answer>", layout="markers") == []
    assert step_texts("Step 1: a\nb\n<answer>1</answer>", layout="lines") == ["Step 1: a", "b"]
    with pytest.raises(ValueError, match="layout"):
        split_steps("x", layout="sentences")


def test_token_spans_follow_the_decoded_text_with_multi_character_tokens():
    tok = build_char_tokenizer()
    text = "12\n<answer>7\n34\n</answer>"  # <answer> and </answer> are single tokens
    ids = tok(text, add_special_tokens=False)["input_ids"]

    def decode(x):
        return tok.decode(list(x), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    assert decode(ids) == text
    ends = char_ends(ids, decode)
    assert ends[3] == len("12\n<answer>")  # token 3 is <answer>, 8 characters
    other = "12\n34\n<answer>1</answer>"
    other_ids = tok(other, add_special_tokens=False)["input_ids"]
    assert token_spans(other_ids, decode, split_steps(other)) == [(0, 3), (3, 6)]
    # bisection agrees with the full table, including inside the multi-character token
    for char in range(len(text) + 2):
        assert token_at(ids, decode, char) == sum(1 for e in ends if e <= char)

"""Answer forms (worldsmith.envs.answer_forms): the same value written another way, and random
answers of a reference's shape."""

import random

import pytest

from worldsmith.envs.answer_forms import random_answers, same_value, value_key


@pytest.mark.parametrize("answer, reference", [
    ("00", "0"), ("+5", "5"), ("005", "5"), ("-0", "0"), ("-07", "-7"), (" 42 ", "42"),
    ("2/4", "1/2"), ("-3/6", "-1/2"), ("4/2", "2"),
    ("[1, 2, 3]", "1,2,3"), ("1 2 3", "1,2,3"), ("(01, +2)", "1,2"),
    ("dog  cat", "dog cat"), ("dog, cat", "dog cat"),
])
def test_the_same_value_written_another_way(answer, reference):
    assert same_value(answer, reference)
    assert value_key(answer) == value_key(reference)


@pytest.mark.parametrize("answer, reference", [
    ("5.0", "5"), ("4.2e1", "42"), ("0x2A", "42"), ('"42"', "42"), ("[42]", "42"), ("42 42", "42"),
    ("4242", "42"), ("2,1", "1,2"), ("1,2,2", "1,2"), ("1/-2", "-1/2"), ("Dog", "dog"),
    ("nan", "0"), ("", "0"),
])
def test_other_notations_and_other_values_differ(answer, reference):
    assert not same_value(answer, reference)


def test_numbers_longer_than_the_contract_allows_are_text():
    huge = "9" * 61
    assert value_key(huge) == ("item", ("text", huge))
    assert value_key("0" * 500 + "7") == value_key("7")  # leading zeros are not digits of the value


def _kinds(reference: str, seed: int = 0) -> dict[str, str]:
    return random_answers(reference, random.Random(seed))


def test_kinds_follow_the_reference_shape():
    assert set(_kinds("4, 9, 2")) == {"range draw"}          # a set of positions or variables
    assert set(_kinds("1,2,1,3,2")) == {"resampled items"}   # colours: range 1..3 is narrower than 5 items
    assert set(_kinds("3 -1 -2 4")) == {"range draw", "random signs"}
    assert set(_kinds("AL,NI,JJ")) == {"resampled items"}
    assert set(_kinds("17")) == {"random number"}
    assert set(_kinds("3/14")) == {"random numerator"}
    assert set(_kinds("0110")) == {"random characters"}
    assert _kinds("1,1,1") == {} and _kinds("aaa") == {} and _kinds("") == {}


@pytest.mark.parametrize("seed", range(20))
def test_draws_keep_the_shape_and_are_never_the_reference_reordered(seed):
    reference = "4, 9, 2, 12"
    drawn = _kinds(reference, seed)["range draw"]
    items = [int(x) for x in drawn.split(", ")]
    assert len(items) == 4 == len(set(items)) and all(2 <= v <= 12 for v in items)
    assert sorted(items) != [2, 4, 9, 12]

    colours = "1,2,1,3,2,3"
    drawn = _kinds(colours, seed)["resampled items"].split(",")
    assert len(drawn) == 6 and set(drawn) <= {"1", "2", "3"} and sorted(drawn) != sorted(colours.split(","))

    signs = _kinds("1 -2 3 -4", seed)["random signs"].split(" ")
    assert [abs(int(x)) for x in signs] == [1, 2, 3, 4] and signs != ["1", "-2", "3", "-4"]

    number = _kinds("-305", seed)["random number"]
    assert number.startswith("-") and len(number) == 4 and number != "-305" and not number.startswith("-0")

    bits = _kinds("0110", seed)["random characters"]
    assert len(bits) == 4 and set(bits) <= {"0", "1"} and bits != "0110"

    assert _kinds("[5, 1, 8]", seed)["range draw"].startswith("[")


def test_a_single_digit_reference_draws_another_digit():
    seen = {_kinds("0", seed)["random number"] for seed in range(200)}
    assert seen == {str(d) for d in range(1, 10)}

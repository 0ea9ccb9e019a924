"""The name -> function registries: duplicates rejected, unknown names answered in one line."""

import pytest

from worldsmith.rl.registry import ADVANTAGES, LOSSES, Registry, UnknownName


def test_register_get_and_names():
    reg = Registry("widget")

    @reg.register("b")
    def b():
        return "b"

    @reg.register("a")
    def a():
        return "a"

    assert reg.get("a") is a and reg.get("b") is b
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg


def test_duplicate_name_is_rejected_and_the_first_kept():
    reg = Registry("widget")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(lambda: 2)
    assert reg.get("x")() == 1


def test_unknown_name_is_one_line_listing_valid_names():
    reg = Registry("widget")
    reg.register("alpha")(lambda: 1)
    reg.register("beta")(lambda: 2)
    with pytest.raises(UnknownName) as info:
        reg.get("gamma")
    message = str(info.value)
    assert message == "unknown widget 'gamma'; valid: alpha, beta"
    assert "\n" not in message
    with pytest.raises(KeyError):  # UnknownName is a KeyError for callers that catch that
        reg.get("gamma")


def test_bad_names_and_non_callables_are_rejected():
    reg = Registry("widget")
    with pytest.raises(ValueError):
        reg.register("")
    with pytest.raises(TypeError):
        reg.register("x")(42)


def test_builtins_are_loaded_on_first_lookup_and_cannot_be_shadowed():
    assert {"grpo", "dr_grpo", "rloo", "mssr"} <= set(ADVANTAGES.names())
    assert "ppo_clip" in LOSSES.names()
    with pytest.raises(ValueError, match="already registered"):
        ADVANTAGES.register("grpo")(lambda *a: None)
    with pytest.raises(UnknownName) as info:
        ADVANTAGES.get("ppo")
    assert str(info.value) == f"unknown advantage 'ppo'; valid: {', '.join(ADVANTAGES.names())}"
    assert "dr_grpo, grpo, mssr, rloo" in str(info.value)
    with pytest.raises(UnknownName, match="^unknown loss 'grpo'; valid: .*ppo_clip"):
        LOSSES.get("grpo")

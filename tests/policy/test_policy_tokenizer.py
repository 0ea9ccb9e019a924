import pytest
from transformers import AutoTokenizer

from worldsmith.policy.tokenizer import ANSWER_TOKENS, SPECIAL_TOKENS, build_char_tokenizer

TEXT = "Start at 7 and apply in order: +3 -2.\nGive the final integer as <answer>...</answer>.\n~{}|\\ "


def test_vocab_is_fixed_and_complete(tok):
    assert len(tok) == 4 + 2 + 1 + 95
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert [tok.convert_tokens_to_ids(t) for t in ANSWER_TOKENS] == [4, 5]
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token) == SPECIAL_TOKENS
    assert build_char_tokenizer().get_vocab() == tok.get_vocab()


def test_round_trip_is_exact(tok):
    ids = tok(TEXT)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == TEXT
    assert tok.decode(ids) == tok.bos_token + TEXT
    assert tok.decode(tok(TEXT, add_special_tokens=False)["input_ids"]) == TEXT


def test_answer_tags_are_single_tokens_that_survive_skipping_specials(tok):
    ids = tok("<answer>42</answer>", add_special_tokens=False)["input_ids"]
    assert ids == [4, tok.convert_tokens_to_ids("4"), tok.convert_tokens_to_ids("2"), 5]
    with_eos = [tok.bos_token_id, *ids, tok.eos_token_id, tok.pad_token_id]
    assert tok.decode(with_eos, skip_special_tokens=True) == "<answer>42</answer>"
    # a partial tag is plain characters
    assert len(tok("<answer", add_special_tokens=False)["input_ids"]) == len("<answer")


def test_unknown_characters_map_to_unk_unless_given_texts(tok):
    ids = tok("é", add_special_tokens=False)["input_ids"]
    assert ids == [tok.unk_token_id]
    wide = build_char_tokenizer(["café", "é→"])
    assert len(wide) == len(tok) + 2
    assert wide.decode(wide("café →")["input_ids"], skip_special_tokens=True) == "café →"
    # the base ids do not move when characters are added
    assert wide.convert_tokens_to_ids("a") == tok.convert_tokens_to_ids("a")


@pytest.mark.parametrize("text", ["", "\n\n", "  spaces  ", "<answer></answer><answer>"])
def test_save_and_load_as_a_normal_hf_folder(tok, tmp_path, text):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded(TEXT + text)["input_ids"] == tok(TEXT + text)["input_ids"]
    ids = loaded(text)["input_ids"]
    assert loaded.decode(ids, skip_special_tokens=True) == text
    assert (loaded.eos_token_id, loaded.pad_token_id, loaded.bos_token_id) == (2, 0, 1)

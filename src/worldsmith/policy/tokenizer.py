"""A character-level tokenizer for tiny test and demo policies, built locally (no download).

The vocabulary has a fixed order, so the same call always gives the same ids:

====  =======================================================
id    token
====  =======================================================
0-3   ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` (special)
4-5   ``<answer>``, ``</answer>`` (added, not special: they
      survive ``skip_special_tokens=True`` when decoding)
6     newline
7-    printable ASCII, space (32) to tilde (126)
...   extra characters found in ``texts``, sorted by code point
====  =======================================================

Encoding prepends ``<bos>`` when ``add_special_tokens`` is true (the default). Decoding joins the
characters with nothing in between, so ``decode(encode(text), skip_special_tokens=True) == text``
for any text made of known characters.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
ANSWER_TOKENS: tuple[str, ...] = ("<answer>", "</answer>")
BASE_CHARS: tuple[str, ...] = ("\n", *(chr(c) for c in range(32, 127)))


def char_vocab(texts: Iterable[str] | None = None) -> dict[str, int]:
    """The token-to-id map ``build_char_tokenizer(texts)`` uses."""
    tokens: list[str] = [*SPECIAL_TOKENS, *ANSWER_TOKENS, *BASE_CHARS]
    if texts is not None:
        known = set(BASE_CHARS)
        extra: set[str] = set()
        for text in texts:
            extra.update(ch for ch in text if ch not in known)
        tokens.extend(sorted(extra))
    return {tok: i for i, tok in enumerate(tokens)}


def build_char_tokenizer(texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level ``PreTrainedTokenizerFast``; ``texts`` may add characters beyond ASCII.

    Save it with ``save_pretrained(folder)`` and load it back with
    ``AutoTokenizer.from_pretrained(folder)``.
    """
    vocab = char_vocab(texts)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # every character is its own pre-token; the added tokens are matched before this runs
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    core.add_tokens(list(ANSWER_TOKENS))
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A $B",
        special_tokens=[(BOS, vocab[BOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )

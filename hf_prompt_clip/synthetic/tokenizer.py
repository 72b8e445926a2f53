"""A small byte-level BPE `CLIPTokenizer` trained on the caption grammar of the synthetic world.

Room: `synthetic/`.

The merges are learned with the `tokenizers` library under CLIP's own normaliser (lower case) and
pre-tokenizer (words, digits, punctuation; byte-level), with CLIP's `</w>` end-of-word suffix. The
vocabulary then holds CLIP's 256 byte symbols, their 256 end-of-word forms, the learned merges and
the two special tokens, so any string still tokenises (in bytes) while caption words are one token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer

from .captions import CAPTION_TEMPLATES, COLOUR_TEMPLATE, MENTIONS, caption
from .render import COLOURS, SHAPES, VARIANTS, sample_scene

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MAX_LENGTH = 77


def caption_corpus(seed: int = 0, per_pair: int = 12) -> list[str]:
    """Texts to learn the vocabulary from: every template filled with every class, shape and colour
    name, plus `per_pair` random captions for every (colour, shape, variant, mention)."""
    rng = np.random.default_rng(seed)
    names = [f"{c} {s}" for c in COLOURS for s in SHAPES] + list(SHAPES)
    texts = [t.replace("{}", name) for t in CAPTION_TEMPLATES for name in names]
    texts += [COLOUR_TEMPLATE.replace("{}", colour) for colour in COLOURS]
    for colour in COLOURS:
        for shape in SHAPES:
            for variant in VARIANTS:
                for mention in MENTIONS:
                    for _ in range(per_pair):
                        texts.append(caption(sample_scene(shape, colour, rng, variant), rng, mention))
    return texts


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-unicode table that CLIP's byte-level BPE uses, in CLIP's vocabulary order
    (printable bytes first, then the others mapped from U+0100 up)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {byte: chr(byte) for byte in printable}
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + len(table) - len(printable))
    return table


def _learn_merges(texts: Iterable[str], max_merges: int) -> list[tuple[str, str]]:
    template = CLIPTokenizer(vocab={START_TOKEN: 0, END_TOKEN: 1}, merges=[]).backend_tokenizer
    bpe = Tokenizer(models.BPE(end_of_word_suffix=END_OF_WORD, continuing_subword_prefix=""))
    bpe.normalizer = template.normalizer
    bpe.pre_tokenizer = template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=2 * 256 + max_merges,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix=END_OF_WORD,
    )
    bpe.train_from_iterator(texts, trainer)
    return [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]


def train_caption_tokenizer(texts: Iterable[str], max_merges: int = 2000) -> CLIPTokenizer:
    """A `CLIPTokenizer` (77 positions) whose BPE merges are learned from `texts`.

    Training stops when every word of `texts` is a single token or after `max_merges` merges.
    """
    symbols = list(byte_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + END_OF_WORD: len(symbols) + i for i, symbol in enumerate(symbols)})
    merges = _learn_merges(texts, max_merges)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab[START_TOKEN] = len(vocab)
    vocab[END_TOKEN] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH)


def round_trip_errors(tokenizer: CLIPTokenizer, texts: Iterable[str]) -> list[str]:
    """Texts the tokenizer does not reproduce: decoding must give the lower-cased text back (CLIP's
    decoder puts a space after every word, so spaces are ignored), with no unknown tokens."""
    errors = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        inner = ids[1:-1]
        if decoded.replace(" ", "") != text.lower().replace(" ", "") or tokenizer.eos_token_id in inner:
            errors.append(text)
    return errors

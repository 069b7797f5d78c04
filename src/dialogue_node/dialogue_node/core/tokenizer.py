"""Byte-pair-encoding tokenizer (HuggingFace `tokenizers`) with agechat's special tokens.

The special tokens follow KoGPT2-chatbot (`<usr>`, `<sys>`, `</s>`, `<pad>`, `<unk>`) plus `<sent>`
and one token per age group and emotion label, so a label is always exactly one token.
"""

from __future__ import annotations

from typing import Iterable, List

from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS

PAD, UNK, EOS, USR, SYS, SENT = '<pad>', '<unk>', '</s>', '<usr>', '<sys>', '<sent>'


def age_token(age: str) -> str:
    """Return the special token of an age group, e.g. '<child>'."""
    return f'<{age}>'


def emotion_token(emotion: str) -> str:
    """Return the special token of an emotion, e.g. '<sad>'."""
    return f'<{emotion}>'


SPECIAL_TOKENS: List[str] = (
    [PAD, UNK, EOS, USR, SYS, SENT]
    + [age_token(a) for a in AGE_GROUPS]
    + [emotion_token(e) for e in EMOTIONS]
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2
) -> Tokenizer:
    """Train a Metaspace BPE tokenizer (KoGPT2-like word-boundary marker '▁') on `texts`."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return tokenizer


def ensure_special_tokens(tokenizer: Tokenizer) -> List[str]:
    """Add the agechat special tokens missing in a tokenizer (e.g. a stock KoGPT2); return them."""
    missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
    if missing:
        tokenizer.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in missing]
        )
    return missing


def with_dropout(tokenizer: Tokenizer, dropout: float) -> Tokenizer:
    """Return a copy of a BPE tokenizer that applies BPE-dropout (random merge skipping)."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    if dropout > 0:
        copy.model.dropout = dropout
    return copy

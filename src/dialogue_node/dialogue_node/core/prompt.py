"""Prompt layout shared by training and inference (one code path, so they cannot drift apart).

One turn is laid out KoGPT2-chatbot style, with the labels in the `<sent>` slot::

  [<usr> q <sys> a </s>] ... <usr> question [<usr> hint] <sent> <age> <emotion> <sys>  answer </s>
   `- bounded history -'     `----------------------- prompt -----------------------' `- target -'

The optional hint (an :class:`dialogue_node.core.intent_hint.IntentMatcher` given to the codec) is
the first training question of the intent nearest to the question.

The loss is computed on the target only (prompt and history positions are masked with -100).

User text (question and past user turns) is encoded either with the tokenizer's BPE merges
(`question_mode='bpe'`, right for a pretrained KoGPT2) or as single characters — Hangul syllables —
(`'chars'`, the embedded model's choice: a reworded question still shares most of its syllables
with the training questions, so a small model trained from scratch generalises to new wording).
Replies always use BPE merges (fewer tokens to generate). Special-token text typed by a user
('<sys>') is never turned into a special token.
"""

from __future__ import annotations

import json

from typing import List, Optional, Sequence, Tuple

from tokenizers import Tokenizer

from dialogue_node.core import tokenizer as tok
from dialogue_node.core.labels import normalize_age, normalize_emotion

IGNORE_INDEX = -100
QUESTION_MODES = ('bpe', 'chars')


def char_level_copy(tokenizer: Tokenizer) -> Tokenizer:
    """Return a copy of a BPE tokenizer that applies no merges (every character is one token)."""
    state = json.loads(tokenizer.to_str())
    state['model']['dropout'] = 1.0
    return Tokenizer.from_str(json.dumps(state))


class PromptCodec:
    """Builds token-id prompts and masked training examples for one tokenizer."""

    def __init__(self, tokenizer: Tokenizer, question_mode: str = 'bpe', intent_matcher=None):
        if question_mode not in QUESTION_MODES:
            raise ValueError(f"question_mode '{question_mode}' is not one of {QUESTION_MODES}")
        self.tokenizer = tokenizer
        self.question_mode = question_mode
        self.intent_matcher = (
            intent_matcher  # optional IntentMatcher: adds a retrieval hint to the prompt
        )
        self._question_tokenizer = (
            char_level_copy(tokenizer) if question_mode == 'chars' else tokenizer
        )
        missing = [t for t in tok.SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(
                f'tokenizer lacks special tokens {missing}; '
                'call tokenizer.ensure_special_tokens first'
            )
        self.ids = {t: tokenizer.token_to_id(t) for t in tok.SPECIAL_TOKENS}
        self.pad_id, self.eos_id = self.ids[tok.PAD], self.ids[tok.EOS]
        self.usr_id, self.sys_id, self.sent_id = (
            self.ids[tok.USR],
            self.ids[tok.SYS],
            self.ids[tok.SENT],
        )
        self.unk_id = self.ids[tok.UNK]
        self._special_ids = {i for i in self.ids.values()} | {
            i
            for t, i in tokenizer.get_vocab(with_added_tokens=True).items()
            if t.startswith('<') and t.endswith('>')
        }

    def encode(self, text: str, tokenizer: Optional[Tokenizer] = None) -> List[int]:
        """Token ids of plain text; special tokens are neither added nor read from the text."""
        ids = (tokenizer or self.tokenizer).encode(text, add_special_tokens=False).ids
        return [i for i in ids if i not in self._special_ids or i == self.unk_id]

    def encode_question(self, text: str, tokenizer: Optional[Tokenizer] = None) -> List[int]:
        """Return the token ids of user text in this codec's question mode.

        `tokenizer` (e.g. a BPE-dropout copy) is used in 'bpe' mode only.
        """
        if self.question_mode == 'chars':
            return self.encode(text, self._question_tokenizer)
        return self.encode(text, tokenizer)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids, special tokens skipped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def label_ids(self, age: str, emotion: str) -> List[int]:
        """Return the `<sent>` slot: `<sent> <age> <emotion>` (labels validated)."""
        return [
            self.sent_id,
            self.ids[tok.age_token(normalize_age(age))],
            self.ids[tok.emotion_token(normalize_emotion(emotion))],
        ]

    def hint_ids(self, question: str) -> List[int]:
        """Return the retrieval hint block `<usr> hint` (empty without an intent matcher).

        The hint is the first training question of the intent nearest to `question`.
        """
        if self.intent_matcher is None:
            return []
        hint = self.intent_matcher.hint_text(self.intent_matcher.predict(question))
        return [self.usr_id] + self.encode_question(hint)

    def history_ids(self, history: Sequence[Tuple[str, str]]) -> List[List[int]]:
        """One id block per past (user, reply) turn."""
        return [
            [self.usr_id]
            + self.encode_question(user)
            + [self.sys_id]
            + self.encode(reply)
            + [self.eos_id]
            for user, reply in history
        ]

    def prompt_ids(
        self,
        question: str,
        age: str,
        emotion: str,
        history: Sequence[Tuple[str, str]] = (),
        max_tokens: Optional[int] = None,
        question_ids: Optional[List[int]] = None,
    ) -> List[int]:
        """Return the prompt for one turn.

        Over `max_tokens`, the oldest history turns go first, then the question is cut (its
        beginning is kept).
        """
        question_ids = list(
            self.encode_question(question) if question_ids is None else question_ids
        )
        labels = self.hint_ids(question) + self.label_ids(age, emotion)
        blocks = self.history_ids(history)
        fixed = 2 + len(labels)  # <usr> ... [hint] labels <sys>
        if max_tokens is not None:
            while blocks and sum(map(len, blocks)) + fixed + len(question_ids) > max_tokens:
                blocks.pop(0)
            room = max_tokens - fixed - sum(map(len, blocks))
            if room < 1:
                raise ValueError(f'max_tokens={max_tokens} leaves no room for the question')
            question_ids = question_ids[:room]
        out: List[int] = []
        for block in blocks:
            out += block
        return out + [self.usr_id] + question_ids + labels + [self.sys_id]

    def training_example(
        self,
        question: str,
        answer: str,
        age: str,
        emotion: str,
        history: Sequence[Tuple[str, str]] = (),
        max_tokens: Optional[int] = None,
        question_ids: Optional[List[int]] = None,
    ) -> Tuple[List[int], List[int]]:
        """Return (input_ids, labels) for one turn.

        The prompt from :meth:`prompt_ids`, then answer + `</s>`; labels are -100 on the prompt.
        """
        target = self.encode(answer) + [self.eos_id]
        budget = None if max_tokens is None else max_tokens - len(target)
        prompt = self.prompt_ids(question, age, emotion, history, budget, question_ids)
        return prompt + target, [IGNORE_INDEX] * len(prompt) + target

"""The dialogue engine.

Input checks, bounded multi-turn history, a reply from the backend with a register check, and
register-appropriate fallbacks. Used by the node (topics and chat service), the evaluation and the
benchmark. The backend is either a :class:`dialogue_node.core.composer.ReplyComposer` (replies
grounded in retrieved real answers; the node's default) or a GPT-2
:class:`dialogue_node.core.model.Generator`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Tuple

from dialogue_node.core import corpus_text
from dialogue_node.core.labels import normalize_age, normalize_emotion
from dialogue_node.core.register import matches_age, split_sentences
from dialogue_node.core.text import CleanText, clean_user_text

KIND_MODEL = 'model'
KIND_EMPTY = 'fallback:empty'
KIND_NOT_KOREAN = 'fallback:not_korean'
KIND_REGISTER = 'fallback:register'


class InputError(ValueError):
    """The user text cannot be answered (empty after cleaning, or no Korean).

    The message says what to send instead.
    """


@dataclass
class EngineReply:
    """One reply and how it was made."""

    user_text: str  # the cleaned text the reply answers
    reply_text: str
    age: str
    emotion: str
    kind: str  # KIND_*
    new_tokens: int = 0
    hit_cap: bool = False
    looping: bool = False
    input_truncated: bool = False
    attempts: int = 0
    generation_ms: float = 0.0
    notes: List[str] = field(default_factory=list)
    source: str = ''  # composer: retrieved / say_less / clock; generator: 'gpt2'
    score: float = 0.0  # retrieval score of the answer used (composer)
    matched_question: str = ''  # training question whose answer was used (composer)

    @property
    def first_sentence(self) -> str:
        """Return the first sentence of the reply (what a speech stream can start with)."""
        sentences = split_sentences(self.reply_text)
        return sentences[0] if sentences else self.reply_text


@dataclass
class _Conversation:
    turns: Deque[Tuple[str, str]]
    last_s: float


class DialogueEngine:
    """Replies in the register of the age group, conditioned on emotion and a short history."""

    def __init__(
        self,
        generator,
        max_history_turns: int = 2,
        max_input_chars: int = 200,
        history_timeout_s: float = 300.0,
        max_conversations: int = 64,
        attempts: int = 2,
        seed: int = 0,
    ):
        self.generator = generator  # a Generator or a ReplyComposer (has `compose`)
        self.composer = generator if hasattr(generator, 'compose') else None
        self.max_history_turns = max_history_turns
        self.max_input_chars = max_input_chars
        self.history_timeout_s = history_timeout_s
        self.max_conversations = max_conversations
        self.attempts = max(1, attempts)
        self.seed = seed
        self._conversations: 'OrderedDict[str, _Conversation]' = OrderedDict()
        self._lock = threading.Lock()
        self._rng = random.Random()

    # -- input --------------------------------------------------------------------------------
    def check_text(self, text: str) -> CleanText:
        """Clean the user text; raise InputError when nothing answerable is left."""
        clean = clean_user_text(text, self.max_input_chars)
        if not clean.text:
            raise InputError(
                'text is empty (after removing control characters and emoji); '
                'send a Korean sentence'
            )
        if not clean.has_korean:
            raise InputError(
                f"text '{clean.text[:40]}' has no Korean (Hangul) characters; "
                'this model answers Korean'
            )
        return clean

    # -- history --------------------------------------------------------------------------------
    def history(
        self, conversation_id: str, now_s: Optional[float] = None
    ) -> List[Tuple[str, str]]:
        """Past (user, reply) turns of a conversation (empty id, unknown or timed out: none)."""
        if not conversation_id or self.max_history_turns <= 0:
            return []
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None or now_s - conv.last_s > self.history_timeout_s:
                return []
            return list(conv.turns)

    def _remember(self, conversation_id: str, user: str, reply: str, now_s: float) -> None:
        if not conversation_id or self.max_history_turns <= 0:
            return
        with self._lock:
            conv = self._conversations.pop(conversation_id, None)
            if conv is None or now_s - conv.last_s > self.history_timeout_s:
                conv = _Conversation(deque(maxlen=self.max_history_turns), now_s)
            conv.turns.append((user, reply))
            conv.last_s = now_s
            self._conversations[conversation_id] = conv
            while len(self._conversations) > self.max_conversations:
                self._conversations.popitem(last=False)

    def reset(self, conversation_id: str) -> None:
        """Forget a conversation's history."""
        with self._lock:
            self._conversations.pop(conversation_id, None)

    # -- replies ----------------------------------------------------------------------------------
    @staticmethod
    def fallback_text(kind: str, age: str) -> str:
        """Return the rule reply for a fallback kind in the register of `age`."""
        key = 'not_korean' if kind == KIND_NOT_KOREAN else 'clarify'
        return corpus_text.FALLBACKS[key][age]

    def reply(
        self,
        text: str,
        age: str = '',
        emotion: str = '',
        conversation_id: str = '',
        seed: Optional[int] = None,
        strict: bool = False,
    ) -> EngineReply:
        """Reply to `text`.

        Labels are validated (LabelError). Unanswerable text raises InputError when `strict` (chat
        service), else gives a register-appropriate fallback reply (voice topics).
        """
        age, emotion = normalize_age(age), normalize_emotion(emotion)
        try:
            clean = self.check_text(text)
        except InputError as error:
            if strict:
                raise
            cleaned = clean_user_text(text, self.max_input_chars)
            kind = KIND_EMPTY if not cleaned.text else KIND_NOT_KOREAN
            return EngineReply(
                cleaned.text, self.fallback_text(kind, age), age, emotion, kind, notes=[str(error)]
            )
        now_s = time.monotonic()
        history = self.history(conversation_id, now_s)
        base_seed = self.seed if seed is None else seed
        if self.composer is not None:
            result = self._compose(clean, age, emotion, history, base_seed)
            self._remember(conversation_id, clean.text, result.reply_text, now_s)
            return result
        codec = self.generator.codec
        prompt = codec.prompt_ids(
            clean.text, age, emotion, history, max_tokens=self.generator.prompt_budget
        )
        result = EngineReply(
            clean.text,
            '',
            age,
            emotion,
            KIND_MODEL,
            input_truncated=clean.truncated,
            source='gpt2',
        )
        if clean.truncated:
            result.notes.append(f'input truncated to {self.max_input_chars} characters')
        start = time.perf_counter()
        for attempt in range(self.attempts):
            attempt_seed = self._rng.randrange(2**31) if base_seed < 0 else base_seed + attempt
            generated = self.generator.generate(prompt, seed=attempt_seed)
            result.attempts = attempt + 1
            result.new_tokens += generated.new_tokens
            result.hit_cap, result.looping = generated.hit_cap, generated.looping
            if generated.text and not generated.looping and matches_age(generated.text, age):
                result.reply_text = generated.text
                break
            result.notes.append(
                f'attempt {attempt + 1} rejected (register/loop check): {generated.text[:60]!r}'
            )
        else:
            result.kind = KIND_REGISTER
            result.reply_text = self.fallback_text(KIND_EMPTY, age)
        result.generation_ms = (time.perf_counter() - start) * 1000.0
        self._remember(conversation_id, clean.text, result.reply_text, now_s)
        return result

    def _compose(self, clean: CleanText, age: str, emotion: str, history, base_seed: int):
        """Reply with the composer, with the same register guard as generation."""
        result = EngineReply(
            clean.text, '', age, emotion, KIND_MODEL, input_truncated=clean.truncated
        )
        if clean.truncated:
            result.notes.append(f'input truncated to {self.max_input_chars} characters')
        start = time.perf_counter()
        rejected: List[str] = []
        for attempt in range(self.attempts):
            seed = self._rng.randrange(2**31) if base_seed < 0 else base_seed + attempt
            composed = self.composer.compose(
                clean.text, age, emotion, history, seed=seed, exclude=rejected
            )
            result.attempts = attempt + 1
            if composed.text and matches_age(composed.text, age):
                result.reply_text = composed.text
                result.source, result.score = composed.kind, composed.score
                result.matched_question = composed.matched_question
                break
            rejected.append(composed.text)
            result.notes.append(
                f'attempt {attempt + 1} rejected (register): {composed.text[:60]!r}'
            )
        else:
            result.kind = KIND_REGISTER
            result.reply_text = self.fallback_text(KIND_EMPTY, age)
        result.generation_ms = (time.perf_counter() - start) * 1000.0
        return result

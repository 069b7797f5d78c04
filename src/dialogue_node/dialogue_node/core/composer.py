"""Replies grounded in retrieved real answers (the node's default engine).

For one user turn (text, age group, emotion, last turns):

1. a time/date question is answered from the clock (:mod:`.clock_facts`);
2. the retriever (:mod:`.retrieval`) returns the top-k answers of the nearest training questions;
   when the best score is under the index's threshold, the previous user turn is tried as context
   (short follow-ups such as '그래서 어떡해?');
3. still under the threshold → **say less**: a short acknowledgement + follow-up question in the
   register (a comforting one for a sad user), never a confident answer to another topic;
4. otherwise the candidates within :data:`MARGIN` of the best score are re-ranked by emotion
   (sad face → ChatbotData's sad/breakup answers first; happy/surprised face → not those), answers
   already given in this conversation are skipped, and the first one that exists in the target
   register is used; a non-neutral emotion adds an opener that matches it (comfort a sad user,
   share a happy one) unless the answer's own label disagrees with the face.
"""

from __future__ import annotations

import datetime as _dt
import random
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from dialogue_node.core import corpus_text
from dialogue_node.core.clock_facts import clock_question, clock_reply
from dialogue_node.core.register import REGISTER_FOR_AGE
from dialogue_node.core.retrieval import Hit, Retriever

MARGIN = 0.04
TOP_K = 8
KIND_RETRIEVED, KIND_SAY_LESS, KIND_CLOCK = 'retrieved', 'say_less', 'clock'
SAD_LABEL = 1

#: Short acknowledgements + follow-up questions, per age group (ours).
SAY_LESS = {
    'child': [
        '그렇구나. 조금 더 자세히 말해 줄래?',
        '음, 그게 어떤 얘기인지 더 알려 줄래?',
        '그랬구나. 그래서 어떻게 됐어?',
    ],
    'adult': [
        '그렇군요. 조금 더 자세히 말씀해 주시겠어요?',
        '음, 어떤 이야기인지 조금 더 들려주시겠어요?',
        '그러셨군요. 그래서 어떻게 되었어요?',
    ],
    'senior': [
        '그러셨군요. 조금 더 자세히 말씀해 주시겠습니까?',
        '어떤 말씀이신지 조금 더 들려주시겠습니까?',
        '그러셨습니까? 그래서 어떻게 되셨습니까?',
    ],
}
SAY_LESS_SAD = {
    'child': ['많이 속상했구나. 무슨 일인지 얘기해 줄래?', '마음이 안 좋구나. 내가 들어 줄게.'],
    'adult': [
        '많이 속상하셨겠어요. 무슨 일인지 말씀해 주시겠어요?',
        '마음이 많이 힘드시군요. 제가 들어 드릴게요.',
    ],
    'senior': [
        '많이 속상하셨겠습니다. 무슨 일이 있으셨는지 말씀해 주시겠습니까?',
        '마음이 많이 힘드시겠습니다. 제가 말씀을 들어 드리겠습니다.',
    ],
}
#: Faces whose opener does not fit an answer with ChatbotData's sad/breakup label.
_CHEERFUL = ('happy', 'surprise')


@dataclass
class Composed:
    """A composed reply and how it was found."""

    text: str
    kind: str
    score: float = 0.0
    matched_question: str = ''
    candidates: List[Tuple[float, str]] = field(default_factory=list)
    used_history: bool = False


class ReplyComposer:
    """Builds a reply from retrieved answers (see the module docstring)."""

    def __init__(
        self,
        retriever: Retriever,
        threshold: Optional[float] = None,
        clock: Callable[[], _dt.datetime] = _dt.datetime.now,
        openers: bool = True,
    ):
        self.retriever = retriever
        self.threshold = retriever.threshold if threshold is None else threshold
        self.clock = clock
        self.openers = openers

    @property
    def name(self) -> str:
        """Name shown in DialogueReply.model."""
        return self.retriever.name

    def say_less(self, age: str, emotion: str, rng: random.Random) -> str:
        """Return a short acknowledgement / follow-up question in the register of `age`."""
        options = SAY_LESS_SAD[age] if emotion in ('sad', 'fear') else SAY_LESS[age]
        return rng.choice(options)

    def _ranked(self, hits: Sequence[Hit], emotion: str) -> List[Hit]:
        best = hits[0].score
        near = [h for h in hits if h.score >= best - MARGIN]
        rest = [h for h in hits if h.score < best - MARGIN]

        def preference(hit: Hit) -> int:
            if emotion == 'sad':
                return 0 if hit.label == SAD_LABEL else 1
            if emotion in _CHEERFUL:
                return 1 if hit.label == SAD_LABEL else 0
            return 0

        return sorted(near, key=preference) + rest  # sorted() is stable: score order kept

    def _opener(self, age: str, emotion: str, hit: Hit, rng: random.Random) -> str:
        if not self.openers or emotion == 'neutral':
            return ''
        if emotion in _CHEERFUL and hit.label == SAD_LABEL:
            return ''
        options = corpus_text.EMOTION_OPENERS.get(emotion, {}).get(age) or []
        return rng.choice(options) if options else ''

    def compose(
        self,
        text: str,
        age: str,
        emotion: str,
        history: Sequence[Tuple[str, str]] = (),
        seed: int = 0,
        exclude: Sequence[str] = (),
    ) -> Composed:
        """Return the reply to `text` (see the module docstring); `exclude`: replies to avoid."""
        rng = random.Random(f'{seed}|{text}|{age}|{emotion}')
        kind = clock_question(text)
        if kind:
            return Composed(clock_reply(kind, age, self.clock()), KIND_CLOCK, 1.0)
        hits = self.retriever.search(text, TOP_K)
        used_history = False
        if (not hits or hits[0].score < self.threshold) and history:
            context = self.retriever.search(f'{history[-1][0]} {text}', TOP_K)
            if context and context[0].score >= self.threshold:
                hits, used_history = context, True
        candidates = [(round(h.score, 3), h.question) for h in hits[:3]]
        if not hits or hits[0].score < self.threshold:
            best = hits[0] if hits else None
            return Composed(
                self.say_less(age, emotion, rng),
                KIND_SAY_LESS,
                best.score if best else 0.0,
                best.question if best else '',
                candidates,
            )
        register = REGISTER_FOR_AGE[age]
        past = {reply for _, reply in history} | set(exclude)
        for hit in self._ranked(hits, emotion):
            if hit.score < self.threshold:
                break
            answer = self.retriever.answer_text(hit.answer_id, register, rng.randrange(1 << 16))
            if not answer:
                continue
            opener = self._opener(age, emotion, hit, rng)
            reply = f'{opener} {answer}'.strip()
            if reply in past or answer in past:
                continue
            return Composed(
                reply, KIND_RETRIEVED, hit.score, hit.question, candidates, used_history
            )
        best = hits[0]
        return Composed(
            self.say_less(age, emotion, rng), KIND_SAY_LESS, best.score, best.question, candidates
        )

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
LABEL_CLASSES = {0: 'daily', 1: 'sad', 2: 'love'}

#: Say-less replies (ours) = an acknowledgement + a follow-up question, per age group. The
#: acknowledgement follows the topic class of the nearest questions (ChatbotData's labels: sad /
#: love / daily) or the face; the follow-up asks the user to say more.
ACKNOWLEDGE = {
    'daily': {
        'child': [
            '그렇구나.',
            '아, 그랬구나.',
            '음, 그렇구나.',
            '그런 일이 있었구나.',
            '오, 그래?',
        ],
        'adult': [
            '그렇군요.',
            '아, 그러셨군요.',
            '음, 그렇군요.',
            '그런 일이 있으셨군요.',
            '아, 그래요?',
        ],
        'senior': [
            '그러셨습니까?',
            '아, 그런 일이 있으셨습니까?',
            '예, 잘 알겠습니다.',
            '말씀 잘 들었습니다.',
            '그렇습니까?',
        ],
    },
    'sad': {
        'child': ['많이 속상했구나.', '마음이 안 좋았겠다.', '많이 힘들었겠다.', '속상했겠네.'],
        'adult': [
            '많이 속상하셨겠어요.',
            '마음이 안 좋으셨겠어요.',
            '많이 힘드셨겠어요.',
            '속상하셨겠네요.',
        ],
        'senior': [
            '많이 속상하셨겠습니다.',
            '마음이 편치 않으셨겠습니다.',
            '많이 힘드셨겠습니다.',
            '속이 많이 상하셨겠습니다.',
        ],
    },
    'love': {
        'child': ['그 사람 생각을 많이 하는구나.', '마음이 많이 쓰이겠다.', '그 마음 알 것 같아.'],
        'adult': [
            '그분 생각을 많이 하시는군요.',
            '마음이 많이 쓰이시겠어요.',
            '그 마음 알 것 같아요.',
        ],
        'senior': [
            '그분 생각을 많이 하시는 것 같습니다.',
            '마음이 많이 쓰이시겠습니다.',
            '그 마음을 알 것 같습니다.',
        ],
    },
}
#: Said between the acknowledgement and the follow-up, sometimes ('' = nothing).
MIDDLE = {
    'daily': {
        'child': ['', '', '재미있는 얘기다.', '궁금해지네.'],
        'adult': ['', '', '흥미로운 이야기네요.', '궁금해지네요.'],
        'senior': ['', '', '흥미로운 말씀입니다.', '궁금해집니다.'],
    },
    'sad': {
        'child': ['', '그럴 때가 있어.', '나도 마음이 쓰여.', '네 잘못이 아니야.'],
        'adult': ['', '그럴 때가 있죠.', '저도 마음이 쓰여요.', '혼자 견디지 않으셔도 돼요.'],
        'senior': [
            '',
            '그럴 때가 있습니다.',
            '저도 마음이 쓰입니다.',
            '혼자 견디지 않으셔도 됩니다.',
        ],
    },
}
FOLLOW_UP = {
    'daily': {
        'child': [
            '조금 더 자세히 말해 줄래?',
            '그래서 어떻게 됐어?',
            '무슨 일인지 더 얘기해 줄래?',
            '그때 기분이 어땠어?',
            '더 듣고 싶어. 얘기해 줄래?',
            '왜 그렇게 생각해?',
            '그 얘기 좀 더 해 줄래?',
            '너는 어떻게 하고 싶어?',
        ],
        'adult': [
            '조금 더 자세히 말씀해 주시겠어요?',
            '그래서 어떻게 되었어요?',
            '어떤 일인지 더 들려주시겠어요?',
            '그때 기분이 어떠셨어요?',
            '더 듣고 싶어요. 이야기해 주시겠어요?',
            '왜 그렇게 생각하세요?',
            '그 이야기 좀 더 해 주시겠어요?',
            '어떻게 하고 싶으세요?',
        ],
        'senior': [
            '조금 더 자세히 말씀해 주시겠습니까?',
            '그래서 어떻게 되셨습니까?',
            '어떤 일이신지 더 들려주시겠습니까?',
            '그때 기분이 어떠셨습니까?',
            '더 듣고 싶습니다. 말씀해 주시겠습니까?',
            '왜 그렇게 생각하십니까?',
            '그 이야기를 좀 더 해 주시겠습니까?',
            '어떻게 하고 싶으십니까?',
        ],
    },
    'sad': {
        'child': [
            '내가 들어 줄게. 무슨 일이었어?',
            '괜찮아, 천천히 얘기해 줘.',
            '무슨 일이 있었는지 말해 줄래?',
            '지금은 좀 어때?',
            '어떤 일이 제일 힘들었어?',
            '얘기하고 싶은 만큼만 말해 줘.',
        ],
        'adult': [
            '제가 들어 드릴게요. 무슨 일이었어요?',
            '괜찮아요, 천천히 말씀해 주세요.',
            '무슨 일이 있었는지 말씀해 주시겠어요?',
            '지금은 좀 어떠세요?',
            '어떤 점이 제일 힘드셨어요?',
            '편하실 만큼만 이야기해 주세요.',
        ],
        'senior': [
            '제가 말씀을 듣겠습니다. 무슨 일이 있으셨습니까?',
            '괜찮습니다. 천천히 말씀해 주십시오.',
            '무슨 일이 있으셨는지 말씀해 주시겠습니까?',
            '지금은 좀 어떠십니까?',
            '어떤 점이 가장 힘드셨습니까?',
            '편하신 만큼만 말씀해 주십시오.',
        ],
    },
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

    @staticmethod
    def topic_class(hits: Sequence[Hit]) -> str:
        """Return 'sad', 'love' or 'daily': the label most of the top hits' weight agrees on.

        Weights are score^4 over the hits; a class needs more than half of the weight, else daily.
        """
        weights = {label: 0.0 for label in LABEL_CLASSES}
        for hit in hits:
            weights[hit.label if hit.label in weights else 0] += hit.score**4
        total = sum(weights.values())
        label = max(weights, key=weights.get)
        return LABEL_CLASSES[label] if total and weights[label] > total / 2 else 'daily'

    def say_less(self, age: str, emotion: str, rng: random.Random, topic: str = 'daily') -> str:
        """Return a short acknowledgement + follow-up question in the register of `age`.

        A sad or fearful face, or a sad topic, gets a comforting acknowledgement; another
        non-neutral face gets its emotion opener (a happy face: shared joy).
        """
        sad = emotion in ('sad', 'fear') or topic == 'sad'
        openers = corpus_text.EMOTION_OPENERS.get(emotion, {}).get(age)
        mood = 'sad' if sad else 'daily'
        if not sad and emotion != 'neutral' and openers:
            first, middle = rng.choice(openers), ''  # no '흥미로운 이야기네요' after '화나셨군요'
        else:
            first = rng.choice(ACKNOWLEDGE['sad' if sad else topic][age])
            middle = rng.choice(MIDDLE[mood][age])
        follow = rng.choice(FOLLOW_UP[mood][age])
        return ' '.join(part for part in (first, middle, follow) if part)

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
                self.say_less(age, emotion, rng, self.topic_class(hits)),
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
            self.say_less(age, emotion, rng, self.topic_class(hits)),
            KIND_SAY_LESS,
            best.score,
            best.question,
            candidates,
        )

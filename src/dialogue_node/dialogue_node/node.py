"""dialogue_node: one reply per utterance (and typed chat) in the register of its age group.

Replies are conditioned on the facial emotion.

Subscribes `agechat/utterance`, `agechat/age`, `agechat/face_emotion`; publishes `agechat/reply`;
serves `agechat/chat`. Generation runs on a worker thread so that subscriptions keep flowing.
A lifecycle node (agechat_ros.node): the model loads on configure; while inactive nothing is
heard or published and the chat service answers success=false.
"""

from __future__ import annotations

import queue
import threading
from typing import Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, Utterance
from agechat_msgs.srv import Chat
from agechat_ros import ConversionError, qos
from agechat_ros.dialogue import (
    ReplyOut,
    age_from_msg,
    emotion_from_msg,
    reply_to_msg,
    utterance_from_msg,
)
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param
from dialogue_node.core.backend import ENGINES, default_path, load_backend
from dialogue_node.core.engine import KIND_MODEL, DialogueEngine, EngineReply, InputError
from dialogue_node.core.labels import LabelError
from dialogue_node.core.pairing import Pairer

VOICE_CONVERSATION = 'voice'
_MAX_CLOCK_SKEW_NS = 10 * 1_000_000_000


def default_model_path(engine: str = 'gpt2') -> str:
    """Return the shipped model of an engine (share/dialogue_node/models/retrieval or embedded)."""
    return str(default_path(engine))


PARAMS = [
    Param(
        'engine',
        'retrieval',
        "reply backend: 'retrieval' (real ChatbotData answers in three registers, the default) "
        "or 'gpt2' (a GPT-2 checkpoint in KoGPT2 format)",
        choices=list(ENGINES),
    ),
    Param(
        'model_path',
        '',
        'retrieval index directory (engine retrieval) or GPT-2 checkpoint directory (gpt2); '
        'empty = the shipped one (models/retrieval or models/embedded)',
    ),
    Param(
        'model_dtype', 'float32', 'weights dtype for inference', choices=['float32', 'bfloat16']
    ),
    Param('threads', 1, 'torch CPU threads', low=1, high=64),
    Param(
        'max_new_tokens',
        40,
        'hard cap on generated tokens per reply',
        low=1,
        high=256,
        dynamic=True,
    ),
    Param(
        'do_sample', True, 'sample (top-p/temperature) instead of greedy decoding', dynamic=True
    ),
    Param('temperature', 0.7, 'sampling temperature', low=0.05, high=2.0, dynamic=True),
    Param('top_p', 0.9, 'nucleus sampling probability mass', low=0.05, high=1.0, dynamic=True),
    Param(
        'repetition_penalty',
        1.1,
        'penalty on repeating tokens (1 = none)',
        low=1.0,
        high=3.0,
        dynamic=True,
    ),
    Param(
        'seed', 0, 'sampling seed for reproducible replies; -1 = random', low=-1, high=2**31 - 1
    ),
    Param(
        'max_history_turns',
        2,
        'past turns given to the model as context',
        low=0,
        high=8,
        dynamic=True,
    ),
    Param(
        'history_timeout_s', 120.0, 'history older than this is forgotten', low=0.0, dynamic=True
    ),
    Param(
        'max_input_chars', 200, 'longer user text is truncated', low=10, high=4000, dynamic=True
    ),
    Param(
        'age_wait_s',
        0.5,
        'how long an utterance waits for its AgeEstimate',
        low=0.0,
        high=10.0,
        dynamic=True,
    ),
    Param(
        'emotion_window_s',
        2.0,
        'max time between speech end and the matched face emotion',
        low=0.0,
        high=60.0,
        dynamic=True,
    ),
    Param(
        'emotion_time',
        'auto',
        "instant of a FaceEmotion: its image 'stamp', its 'received' time, or 'auto' "
        '(stamp unless it is more than 10 s off the node clock)',
        choices=['auto', 'stamp', 'received'],
        dynamic=True,
    ),
    Param('voice_history', True, 'keep multi-turn history for spoken utterances', dynamic=True),
    Param(
        'publish_chat_replies',
        True,
        'also publish typed-chat replies on agechat/reply (id chat-<n>)',
        dynamic=True,
    ),
    Param(
        'register_attempts',
        2,
        'generations tried before the register-safe fallback reply',
        low=1,
        high=5,
        dynamic=True,
    ),
]


class DialogueNode(AgechatNode):
    """The ROS wiring around :class:`DialogueEngine` (a lifecycle node, see agechat_ros.node)."""

    def __init__(self):
        super().__init__('dialogue_node', PARAMS)
        self.generator = self.engine = self.pairer = self.reply_pub = None
        self._chat_count = 0
        self._jobs: 'queue.Queue' = queue.Queue()
        self._worker: Optional[threading.Thread] = None

    def _settings(self):
        from dialogue_node.core.model import GenerationSettings  # torch: only for gpt2

        return GenerationSettings(
            max_new_tokens=self.p.max_new_tokens,
            do_sample=self.p.do_sample,
            temperature=self.p.temperature,
            top_p=self.p.top_p,
            repetition_penalty=self.p.repetition_penalty,
        )

    def configure(self) -> None:
        """Load the checkpoint; create the reply publisher and the chat service."""
        model_path = self.p.model_path or default_model_path(self.p.engine)
        gpt2 = self.p.engine == 'gpt2'
        self.generator = load_backend(
            model_path,
            self.p.engine,
            self.p.threads,
            self._settings() if gpt2 else None,
            self.p.model_dtype,
        )
        self.engine = DialogueEngine(
            self.generator,
            self.p.max_history_turns,
            self.p.max_input_chars,
            self.p.history_timeout_s,
            attempts=self.p.register_attempts,
            seed=self.p.seed,
        )
        self.pairer = Pairer(self.p.age_wait_s, self.p.emotion_window_s)
        self.health.set('model', self.generator.name)
        self.reply_pub = self.publisher(DialogueReply, 'agechat/reply', qos.EVENTS)
        self.service(
            Chat, 'agechat/chat', self._on_chat, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self._jobs = queue.Queue()
        self._worker = threading.Thread(target=self._work, name='dialogue-generation', daemon=True)
        self._worker.start()
        detail = (
            f'max {self.p.max_new_tokens} new tokens, seed {self.p.seed}'
            if gpt2
            else f'say-less threshold {self.generator.threshold:.2f}, seed {self.p.seed}'
        )
        self.get_logger().info(
            f'dialogue {self.p.engine} model {self.generator.name} from {model_path} ({detail})'
        )

    def activate(self) -> None:
        """Listen to utterances, age estimates and face emotions."""
        topics = MutuallyExclusiveCallbackGroup()
        self.subscribe(
            Utterance, 'agechat/utterance', self._on_utterance, qos.EVENTS, callback_group=topics
        )
        self.subscribe(AgeEstimate, 'agechat/age', self._on_age, qos.EVENTS, callback_group=topics)
        self.subscribe(
            FaceEmotion,
            'agechat/face_emotion',
            self._on_emotion,
            qos.EVENTS,
            callback_group=topics,
        )
        self.timer(0.02, self._dispatch_due, callback_group=topics)

    def deactivate(self) -> None:
        """Forget utterances waiting for their age and queued generations."""
        self.pairer = Pairer(self.p.age_wait_s, self.p.emotion_window_s)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)
                break
            self.health.count('utterances_dropped_on_deactivate')

    def cleanup(self) -> None:
        """Stop the generation worker and free the model."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
            self._worker = None
        self.generator = self.engine = self.pairer = None

    def parameters_changed(self, changes) -> None:
        """Apply decoding, history and pairing settings to the next reply."""
        if self.generator is not None and self.p.engine == 'gpt2':
            self.generator.settings = self._settings()
        if self.engine is not None:
            self.engine.max_history_turns = self.p.max_history_turns
            self.engine.max_input_chars = self.p.max_input_chars
            self.engine.history_timeout_s = self.p.history_timeout_s
            self.engine.attempts = self.p.register_attempts
        if self.pairer is not None:
            self.pairer.age_wait_ns = int(self.p.age_wait_s * 1e9)
            self.pairer.emotion_window_ns = int(self.p.emotion_window_s * 1e9)

    # -- inputs -------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_utterance(self, msg: Utterance) -> None:
        try:
            utterance = utterance_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_utterance', str(error))
            return
        self.health.count('utterances')
        self.pairer.add_utterance(
            utterance.utterance_id, (utterance, self._now_ns()), self._now_ns()
        )
        self._dispatch_due()

    def _on_age(self, msg: AgeEstimate) -> None:
        try:
            age = age_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_age_estimate', str(error))
            return
        self.health.count('age_estimates')
        self.pairer.add_age(age.utterance_id, age.group, age.confidence, age.unsure)
        self._dispatch_due()

    def _on_emotion(self, msg: FaceEmotion) -> None:
        try:
            emotion = emotion_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_face_emotion', str(error))
            return
        now = self._now_ns()
        at = emotion.stamp_ns
        if self.p.emotion_time == 'received' or (
            self.p.emotion_time == 'auto' and abs(at - now) > _MAX_CLOCK_SKEW_NS
        ):
            at = now
        self.health.count('face_emotions')
        self.pairer.add_emotion(emotion.label, emotion.confidence, at, emotion.face_found)

    def _dispatch_due(self) -> None:
        for (utterance, received_ns), age in self.pairer.due(self._now_ns()):
            self._jobs.put((utterance, received_ns, age))

    # -- generation -------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._reply_to_utterance(*job)
            except Exception as error:  # noqa: BLE001 - one bad utterance must not stop the worker
                self.get_logger().error(
                    f'reply to utterance failed: {error!r}; sending the clarification reply'
                )
                self.health.count('reply_errors')
                self._publish_error_reply(*job)

    def _publish_error_reply(self, utterance, received_ns: int, age) -> None:
        """Give every utterance a reply: after an internal error, the clarification."""
        try:
            result = EngineReply(
                utterance.text,
                DialogueEngine.fallback_text('error', age.label),
                age.label,
                'neutral',
                'fallback:error',
            )
            now = self._now_ns()
            self._publish(
                self._reply_out(
                    utterance.utterance_id,
                    result,
                    age.confidence,
                    age.source,
                    0.0,
                    'default',
                    {
                        'utterance_received_time': received_ns,
                        'generation_start_time': now,
                        'generation_end_time': now,
                    },
                )
            )
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f'could not publish the error reply either: {error!r}')

    def _reply_to_utterance(self, utterance, received_ns: int, age) -> None:
        emotion = self.pairer.emotion_at(utterance.speech_end_ns or received_ns)
        start_ns = self._now_ns()
        conversation = VOICE_CONVERSATION if self.p.voice_history else ''
        result = self.engine.reply(utterance.text, age.label, emotion.label, conversation)
        end_ns = self._now_ns()
        if result.kind != KIND_MODEL:
            self.health.count('fallback_replies')
            self.health.warn_throttled(
                f'fallback_{result.kind}',
                f"utterance '{utterance.utterance_id}': {result.kind} "
                f"reply ({'; '.join(result.notes)[:200]})",
            )
        if age.source in ('latest', 'default'):
            self.health.warn_throttled(
                'age_' + age.source,
                f"utterance '{utterance.utterance_id}': no AgeEstimate "
                f'within {self.p.age_wait_s} s, using the {age.source} age ({age.label})',
            )
        times = {
            'speech_end': utterance.speech_end_ns,
            'vad_closed_time': utterance.vad_closed_ns,
            'stt_done_time': utterance.stt_done_ns,
            'utterance_received_time': received_ns,
            'generation_start_time': start_ns,
            'generation_end_time': end_ns,
        }
        self._publish(
            self._reply_out(
                utterance.utterance_id,
                result,
                age.confidence,
                age.source,
                emotion.confidence,
                emotion.source,
                times,
            )
        )

    def _reply_out(
        self,
        utterance_id: str,
        result: EngineReply,
        age_confidence: float,
        age_source: str,
        emotion_confidence: float,
        emotion_source: str,
        times: dict,
    ) -> ReplyOut:
        model = self.generator.name if result.kind == KIND_MODEL else f'rule ({result.kind})'
        return ReplyOut(
            utterance_id=utterance_id,
            user_text=result.user_text,
            reply_text=result.reply_text,
            age_group=result.age,
            age_confidence=age_confidence,
            age_source=age_source,
            emotion=result.emotion,
            emotion_confidence=emotion_confidence,
            emotion_source=emotion_source,
            model=model,
            new_tokens=result.new_tokens,
            hit_token_cap=result.hit_cap,
            times_ns=times,
        )

    def _publish(self, reply: ReplyOut) -> None:
        self.reply_pub.publish(reply_to_msg(reply, self._now_ns()))
        self.health.count('replies')
        times = reply.times_ns
        self.health.set(
            'last_generation_ms',
            round((times['generation_end_time'] - times['generation_start_time']) / 1e6, 1),
        )

    # -- typed chat --------------------------------------------------------------------------
    def _on_chat(self, request: Chat.Request, response: Chat.Response) -> Chat.Response:
        received_ns = self._now_ns()
        self.health.count('chat_requests')
        if not self.active or self.engine is None:
            response.success = False
            response.error = (
                'dialogue_node is inactive (lifecycle); activate it with '
                '`ros2 lifecycle set /dialogue_node activate`'
            )
            return response
        try:
            result = self.engine.reply(
                request.text,
                request.age_group,
                request.emotion,
                request.conversation_id,
                strict=True,
            )
        except (InputError, LabelError) as error:
            self.health.drop('bad_chat_request', str(error))
            response.success = False
            response.error = str(error)
            return response
        end_ns = self._now_ns()
        times = {
            'utterance_received_time': received_ns,
            'generation_start_time': received_ns,
            'generation_end_time': end_ns,
        }
        self._chat_count += 1
        reply = self._reply_out(
            f'chat-{self._chat_count}',
            result,
            1.0,
            DialogueReply.SOURCE_REQUEST,
            1.0,
            DialogueReply.SOURCE_REQUEST,
            times,
        )
        response.success = True
        response.reply = reply_to_msg(reply, end_ns)
        if self.p.publish_chat_replies:
            self._publish(reply)
        return response


def main(args=None) -> int:
    """Entry point of the dialogue_node executable."""
    return run_node(DialogueNode, args, executor_threads=3)


if __name__ == '__main__':
    raise SystemExit(main())

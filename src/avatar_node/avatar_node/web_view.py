"""web_view: a local web page showing the virtual human live, with typed chat.

Subscribes to what the graph publishes — the avatar frames (``agechat/avatar/image``: one
canvas with both avatars), the agent's reply (``agechat/reply``, the caption), what was heard
(``agechat/utterance`` and REP-155 partials on ``/humans/voices/anonymous_speaker/speech``),
the age group (``agechat/age``), the face emotion (``agechat/face_emotion``) and the speaking
state (``agechat/speech_state``) — and serves them to a browser (avatar_node.core.web, aiohttp,
bound to 127.0.0.1 by default). Typed messages on the page call dialogue_node's
``agechat/chat`` service. A lifecycle node (agechat_ros.node): the server runs while active.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Dict

from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, SpeechState, Utterance
from agechat_msgs.srv import Chat
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from sensor_msgs.msg import Image

from agechat_ros import ConversionError, DeviceUnavailable, qos
from agechat_ros.avatar import reply_input
from agechat_ros.dialogue import age_from_msg, emotion_from_msg, utterance_from_msg
from agechat_ros.hri_voice import ANONYMOUS_SPEAKER, voice_topic
from agechat_ros.image import image_to_bgr
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param
from avatar_node.core.web import Settings, WebView, WebViewError, check_host

#: Face emotions arrive at the camera's rate; the page gets a change at once, else 4 per second.
EMOTION_PUSH_PERIOD_S = 0.25
#: Replies remembered until the agent speaks them (avatar_node queues at most a few).
MAX_QUEUED_CAPTIONS = 20
#: Longest text shown (captions, heard text); longer is cut with an ellipsis.
MAX_TEXT_CHARS = 1000

PARAMS = [
    Param(
        'host',
        '127.0.0.1',
        "address the web server binds: 127.0.0.1 (this machine only, the default), "
        "0.0.0.0 (every interface: anyone on the network can see the page) or another local "
        "address; 'localhost' also works",
        check=check_host,
        requirement="must be 'localhost' or an IP address of this machine",
    ),
    Param(
        'port',
        8765,
        'TCP port of the web server; 0 = any free port (the URL is logged)',
        low=0,
        high=65535,
    ),
    Param(
        'max_fps',
        10.0,
        'avatar frames sent to each page per second at most (JPEG over the WebSocket)',
        low=0.5,
        high=60.0,
        dynamic=True,
    ),
    Param('jpeg_quality', 80, 'JPEG quality of the frames', low=10, high=100, dynamic=True),
    Param(
        'chat_timeout_s',
        15.0,
        'seconds the page waits for the agechat/chat reply',
        low=0.5,
        high=120.0,
        dynamic=True,
    ),
    Param(
        'max_chat_chars',
        300,
        'longest typed message accepted',
        low=1,
        high=5000,
        dynamic=True,
    ),
]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + '…'


class WebViewNode(AgechatNode):
    """Feed the browser view from the graph's topics; typed chat through agechat/chat."""

    def __init__(self, **kwargs):
        super().__init__('web_view', PARAMS, **kwargs)
        self.view = None
        self.chat_client = None
        self.url = ''
        self._emotion_pushed = (None, 0.0)
        self._lock = threading.Lock()
        self._captions: Dict[str, Dict[str, Any]] = {}  # recent replies by utterance id
        self._speaking_id = ''
        self._free_port = 0  # the port chosen for port 0, kept across deactivate/activate

    def configure(self) -> None:
        """Create the chat client and the (not yet serving) web view."""
        self.chat_client = self.create_client(
            Chat, 'agechat/chat', callback_group=ReentrantCallbackGroup()
        )
        self.view = WebView(self._chat, self._settings(), log=self.get_logger().info)

    def _settings(self) -> Settings:
        return Settings(
            max_fps=self.p.max_fps,
            jpeg_quality=self.p.jpeg_quality,
            chat_timeout_s=self.p.chat_timeout_s,
            max_chat_chars=self.p.max_chat_chars,
        )

    def activate(self) -> None:
        """Serve the page, then subscribe."""
        try:
            self.url = self._serve()
        except WebViewError as error:
            raise DeviceUnavailable(f'web_view: {error}') from error
        self.health.set('url', self.url)
        self.get_logger().info(f'web view: open {self.url} in a browser')
        images = MutuallyExclusiveCallbackGroup()
        events = MutuallyExclusiveCallbackGroup()
        self.subscribe(
            Image, 'agechat/avatar/image', self._on_image, qos.SENSOR_DATA, callback_group=images
        )
        for msg_type, topic, callback, profile in (
            (DialogueReply, 'agechat/reply', self._on_reply, qos.EVENTS),
            (Utterance, 'agechat/utterance', self._on_utterance, qos.EVENTS),
            (AgeEstimate, 'agechat/age', self._on_age, qos.EVENTS),
            (FaceEmotion, 'agechat/face_emotion', self._on_emotion, qos.EVENTS),
            (SpeechState, 'agechat/speech_state', self._on_speech_state, qos.LATCHED),
        ):
            self.subscribe(msg_type, topic, callback, profile, callback_group=events)
        try:
            from hri_msgs.msg import LiveSpeech
        except ImportError:
            self.get_logger().warning(
                'hri_msgs is not installed: no partial transcripts on the page '
                '(sudo apt install ros-$ROS_DISTRO-hri-msgs, or build compat/hri_msgs)'
            )
        else:
            self.subscribe(
                LiveSpeech,
                voice_topic(ANONYMOUS_SPEAKER, 'speech'),
                self._on_live_speech,
                qos.EVENTS,
                callback_group=events,
            )
        self.timer(1.0, self._report, callback_group=events)

    def _serve(self) -> str:
        """Start the server; for port 0 the port picked first is tried again (pages reconnect)."""
        if self.p.port == 0 and self._free_port:
            try:
                return self.view.start(self.p.host, self._free_port)
            except WebViewError:
                self.get_logger().warning(f'port {self._free_port} is taken now; picking another')
        url = self.view.start(self.p.host, self.p.port)
        if self.p.port == 0:
            self._free_port = self.view.address[1]
        return url

    def deactivate(self) -> None:
        """Stop serving: the page shows it lost the connection."""
        if self.view is not None:
            self.view.stop()
        self.health.set('url', '')

    def cleanup(self) -> None:
        """Forget the view and the chat client."""
        if self.view is not None:
            self.view.stop()
        self.view = None
        if self.chat_client is not None:
            self.destroy_client(self.chat_client)
            self.chat_client = None

    def parameters_changed(self, changes: Dict[str, Any]) -> None:
        """Frame rate, quality, chat timeout and length apply at once."""
        if self.view is not None:
            self.view.settings = self._settings()

    # -- typed chat (called from the web server's thread) ------------------------------------
    def _chat(self, text: str, age: str, emotion: str) -> concurrent.futures.Future:
        result: concurrent.futures.Future = concurrent.futures.Future()
        client = self.chat_client
        if client is None or not client.service_is_ready():
            result.set_result(
                {
                    'success': False,
                    'error': 'the agechat/chat service is not available: start dialogue_node',
                }
            )
            return result
        request = Chat.Request(text=text, age_group=age, emotion=emotion, conversation_id='web')
        self.health.count('chat_requests')

        def done(future) -> None:
            try:
                response = future.result()
            except Exception as error:  # noqa: BLE001 - the page shows it
                result.set_result({'success': False, 'error': f'chat call failed: {error}'})
                return
            reply = response.reply
            result.set_result(
                {
                    'success': bool(response.success),
                    'error': response.error,
                    'reply_text': reply.reply_text,
                    'utterance_id': reply.utterance_id,
                    'reply_age_group': reply.age_group,
                    'model': reply.model,
                }
            )

        client.call_async(request).add_done_callback(done)
        return result

    # -- subscriptions -----------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            bgr = image_to_bgr(msg)
        except ConversionError as error:
            self.health.drop('bad_image', str(error))
            return
        self.view.set_frame(bgr)
        self.health.count('frames_received')

    def _on_reply(self, msg: DialogueReply) -> None:
        try:
            reply = reply_input(msg)
        except ConversionError as error:
            self.health.drop('bad_reply', str(error))
            return
        caption = {
            'text': _cut(reply.text),
            'utterance_id': msg.utterance_id,
            'user_text': _cut(msg.user_text),
            'age_group': reply.age_group,
            'emotion': reply.emotion,
        }
        with self._lock:
            self._captions[msg.utterance_id] = caption
            while len(self._captions) > MAX_QUEUED_CAPTIONS:
                self._captions.pop(next(iter(self._captions)))
            show = not self._speaking_id  # while the agent speaks, its caption stays
        if show:
            self.view.event('caption', caption)
        self.health.count('replies')

    def _on_utterance(self, msg: Utterance) -> None:
        try:
            utterance = utterance_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_utterance', str(error))
            return
        self.view.event(
            'heard',
            {
                'text': _cut(utterance.text),
                'utterance_id': utterance.utterance_id,
                'confidence': float(msg.confidence),
            },
        )
        self.health.count('utterances')

    def _on_live_speech(self, msg) -> None:
        if msg.final:
            return  # the final text comes as agechat/utterance (same text)
        if not msg.incremental.strip():
            self.health.drop('empty_speech', 'LiveSpeech with neither incremental nor final')
            return
        self.view.event('partial', {'text': _cut(msg.incremental)})
        self.health.count('partials')

    def _on_age(self, msg: AgeEstimate) -> None:
        try:
            age = age_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_age', str(error))
            return
        self.view.event(
            'age',
            {
                'group': age.group,
                'confidence': age.confidence,
                'unsure': age.unsure,
                'utterance_id': age.utterance_id,
            },
        )
        self.health.count('ages')

    def _on_emotion(self, msg: FaceEmotion) -> None:
        try:
            emotion = emotion_from_msg(msg)
        except ConversionError as error:
            self.health.drop('bad_face_emotion', str(error))
            return
        key = (emotion.label, emotion.face_found)
        now = time.monotonic()
        last_key, last_time = self._emotion_pushed
        if key == last_key and now - last_time < EMOTION_PUSH_PERIOD_S:
            return
        self._emotion_pushed = (key, now)
        self.view.event(
            'emotion',
            {'label': emotion.label, 'confidence': emotion.confidence, 'face': emotion.face_found},
        )
        self.health.count('emotions')

    def _on_speech_state(self, msg: SpeechState) -> None:
        with self._lock:
            self._speaking_id = msg.utterance_id if msg.speaking else ''
            caption = self._captions.get(msg.utterance_id) if msg.speaking else None
        self.view.event(
            'speaking',
            {
                'speaking': bool(msg.speaking),
                'utterance_id': msg.utterance_id,
                # the reply was cut because the user spoke over it (barge-in)
                'interrupted': bool(msg.interrupted) and not msg.speaking,
            },
        )
        if caption is not None:
            self.view.event('caption', caption)  # the reply the agent starts speaking now

    def _report(self) -> None:
        for name, value in self.view.counts.items():
            self.health.set(name, value)


def main(args=None) -> int:
    """Console entry point."""
    return run_node(WebViewNode, args, executor_threads=2)


if __name__ == '__main__':
    raise SystemExit(main())

"""avatar_node: speaks agechat's replies and renders the user's and the agent's avatars.

The Korean TTS adapts to the listener's age group; the user's avatar mirrors their expression and
the agent's is lip-synced. A lifecycle node (agechat_ros.node): while inactive nothing is spoken
or rendered.

Wiring only; the work is in avatar_node.core (tts, speech, expressions, render) and message
conversion in agechat_ros.avatar. Synthesis and audio pacing run in the Speaker's own threads;
the render timer has its own callback group, so neither blocks the other or the subscriptions.
"""

from __future__ import annotations

import array
import threading
import time

from agechat_msgs.msg import AvatarState, BargeIn, DialogueReply, FaceEmotion, SpeechState
from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image

from agechat_ros import ConversionError, qos
from agechat_ros.audio import audio_info
from agechat_ros.avatar import (
    avatar_state,
    barge_in_input,
    face_emotion_probabilities,
    reply_input,
    speech_state,
)
from agechat_ros.image import bgr_to_image
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param
from agechat_ros.time import ns_to_time
from avatar_node.core.expressions import (
    VRM_EXPRESSIONS,
    EmotionSmoother,
    WeightSmoother,
    agent_emotion_for_reply,
    vrm_for_agent,
    vrm_from_probabilities,
)
from avatar_node.core.playback import LocalPlayer, player_command
from avatar_node.core.render import AvatarRenderer, FacePose, Scene, blink_at, find_font, FONT_HINT
from avatar_node.core.speech import Speaker, SpeechRequest
from avatar_node.core.text import VISEMES, clean_text, split_sentences, truncate
from avatar_node.core.tts import AGE_GROUPS, DEFAULT_PROSODY, Prosody, create_synth


def _per_group(name: str, low: int, high: int, description: str) -> Param:
    default = [getattr(DEFAULT_PROSODY[g], name) for g in AGE_GROUPS]
    return Param(
        name,
        default,
        f'{description}, per listener age group [child, adult, senior]',
        check=lambda v: len(v) == 3 and all(low <= int(x) <= high for x in v),
        requirement=f'must be 3 integers [child, adult, senior], each in {low}..{high}',
        dynamic=True,
    )


PARAMS = [
    Param(
        'tts_backend',
        'espeak',
        "'espeak': libespeak-ng streamed through pyttsx3's bindings (word timing, "
        "first chunk at once); 'pyttsx3': pyttsx3 save_to_file per sentence",
        choices=['espeak', 'pyttsx3'],
    ),
    Param(
        'voice',
        'ko+f3',
        "espeak-ng voice: language[+variant], e.g. 'ko' or 'ko+f3'",
        check=lambda v: bool(v.strip()),
        requirement='must name a voice, e.g. ko or ko+f3',
    ),
    Param(
        'espeak_data_path',
        '',
        'espeak-ng-data folder; empty = $ESPEAK_DATA_PATH or the system default',
    ),
    _per_group('rate_wpm', 80, 400, 'speaking rate in words per minute'),
    _per_group('pitch', 0, 100, 'base pitch (50 = espeak default)'),
    _per_group('pitch_range', 0, 100, 'intonation range (0 = monotone)'),
    _per_group('word_gap_10ms', 0, 50, 'extra pause between words in 10 ms units'),
    _per_group('volume', 10, 200, 'loudness (100 = espeak default)'),
    _per_group('sentence_pause_ms', 0, 2000, 'silence after each sentence in ms'),
    Param('chunk_ms', 20, 'length of one published audio chunk in ms', low=5, high=500),
    Param(
        'audio_lead_ms',
        60,
        'chunks are published this far ahead of their play time',
        low=0,
        high=2000,
    ),
    Param(
        'speaking_tail_ms',
        300,
        'speaking stays true this long after the last sample',
        low=0,
        high=10000,
    ),
    Param(
        'max_reply_chars',
        300,
        'longer replies are cut (at a sentence end where possible)',
        low=20,
        high=10000,
        dynamic=True,
    ),
    Param(
        'max_sentence_chars',
        120,
        'longer sentences are split at commas/spaces before synthesis',
        low=20,
        high=1000,
        dynamic=True,
    ),
    Param(
        'max_pending_replies', 2, 'replies queued while speaking; more are dropped', low=1, high=20
    ),
    Param(
        'accept_barge_in',
        True,
        'a BargeIn on agechat/barge_in (the user talks over the agent) cuts the reply being '
        'spoken and drops the queued ones; false: replies always play to their end',
        dynamic=True,
    ),
    Param('playback', False, 'also play the speech on this machine (needs aplay/paplay/play)'),
    Param(
        'playback_command',
        '',
        'player command reading raw S16LE mono PCM on stdin; {rate} = sample rate; '
        'empty = aplay, paplay or sox play',
    ),
    Param(
        'fps', 20.0, 'avatar image/state publishing rate in Hz', low=1.0, high=60.0, dynamic=True
    ),
    Param('width', 960, 'avatar image width in pixels', low=320, high=3840),
    Param('height', 540, 'avatar image height in pixels', low=180, high=2160),
    Param(
        'font_path',
        '',
        'TrueType font with Hangul for captions; empty = first installed Korean font '
        '(fonts-nanum); none found = ASCII fallback',
    ),
    Param(
        'idle_animation',
        True,
        'blinking and a gentle head bob (off gives identical frames for identical '
        'states, e.g. for pixel comparisons)',
        dynamic=True,
    ),
    Param('frame_id', 'avatar', 'header.frame_id of the avatar image and state', dynamic=True),
    Param(
        'user_smoothing_s',
        0.35,
        'time constant of the user avatar following the emotion',
        low=0.0,
        high=10.0,
        dynamic=True,
    ),
    Param(
        'agent_smoothing_s',
        0.25,
        'time constant of the agent expression changes',
        low=0.0,
        high=10.0,
        dynamic=True,
    ),
    Param(
        'face_timeout_s',
        2.0,
        'without a face this long, the user avatar relaxes to neutral',
        low=0.1,
        high=60.0,
        dynamic=True,
    ),
    Param(
        'agent_hold_s',
        2.0,
        'the agent keeps the reply expression this long after speaking',
        low=0.0,
        high=60.0,
        dynamic=True,
    ),
]


class AvatarNode(AgechatNode):
    """TTS + avatars; see the package README for topics and parameters (a lifecycle node)."""

    def __init__(self):
        super().__init__('avatar_node', PARAMS)
        self._lock = threading.Lock()
        self.renderer = self.synth = self.player = self.speaker = None
        self.prosody = self._prosody()
        self._agent_label = 'neutral'
        self._agent_until = 0.0
        self._caption, self._caption_age = '', 'adult'
        self._first_audio = {}
        self._interrupted_id = ''  # the reply last cut by a barge-in
        self._interrupted_progress = 1.0  # how much of its caption was spoken
        self._t0 = time.monotonic()
        self._render_ms_ema = 0.0
        self._last_frame = None
        self._render_timer = None

    def _prosody(self):
        p = self.p
        return {
            group: Prosody(
                rate_wpm=int(p.rate_wpm[i]),
                pitch=int(p.pitch[i]),
                pitch_range=int(p.pitch_range[i]),
                word_gap_10ms=int(p.word_gap_10ms[i]),
                volume=int(p.volume[i]),
                sentence_pause_ms=int(p.sentence_pause_ms[i]),
            )
            for i, group in enumerate(AGE_GROUPS)
        }

    def configure(self) -> None:
        """Load the voice, the caption font and the renderer; create the publishers."""
        p = self.p
        font = find_font(p.font_path)  # FileNotFoundError for a configured but missing font
        if font is None:
            self.get_logger().warning(
                f'no Korean font found: captions fall back to ASCII; {FONT_HINT}'
            )
        self.renderer = AvatarRenderer(p.width, p.height, font, idle_motion=p.idle_animation)
        # VoiceUnavailable (a FileNotFoundError) names the missing voice
        self.synth = create_synth(p.tts_backend, p.voice, p.espeak_data_path)
        self.sample_rate = self.synth.sample_rate
        self.player = (
            LocalPlayer(player_command(p.playback_command, self.sample_rate))
            if p.playback
            else None
        )
        self.user = EmotionSmoother(p.user_smoothing_s, p.face_timeout_s)
        self.agent = WeightSmoother(p.agent_smoothing_s)
        self.pub_audio = self.publisher(AudioData, 'agechat/tts/audio', qos.AUDIO_STREAM)
        self.pub_info = self.publisher(AudioInfo, 'agechat/tts/audio_info', qos.LATCHED)
        self.pub_speech = self.publisher(SpeechState, 'agechat/speech_state', qos.LATCHED)
        self.pub_image = self.publisher(Image, 'agechat/avatar/image', qos.SENSOR_DATA)
        self.pub_state = self.publisher(AvatarState, 'agechat/avatar/state', qos.EVENTS)
        self.get_logger().info(
            f'avatar_node ready: TTS {self.synth.name}, voice {p.voice} at {self.sample_rate} '
            f'Hz, {p.width}x{p.height} at {p.fps:g} fps, caption font '
            f'{font or "(none: ASCII fallback)"}'
        )

    def activate(self) -> None:
        """Start the speaker threads, the render timer and the reply/face subscriptions."""
        p = self.p
        self.pub_info.publish(audio_info(self.sample_rate))
        self._publish_not_speaking()
        self.speaker = Speaker(
            self.synth,
            chunk_ms=p.chunk_ms,
            lead_ms=p.audio_lead_ms,
            tail_ms=p.speaking_tail_ms,
            max_pending=p.max_pending_replies,
            on_chunk=self._on_chunk,
            on_end=self._on_end,
            on_error=self._on_tts_error,
        )
        inputs = MutuallyExclusiveCallbackGroup()
        self.subscribe(
            DialogueReply, 'agechat/reply', self._on_reply, qos.EVENTS, callback_group=inputs
        )
        self.subscribe(
            FaceEmotion, 'agechat/face_emotion', self._on_face, qos.EVENTS, callback_group=inputs
        )
        # its own group: a barge-in is handled at once, even while a reply is being read
        self.subscribe(
            BargeIn,
            'agechat/barge_in',
            self._on_barge_in,
            qos.EVENTS,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self._render_timer = self.timer(
            1.0 / p.fps, self._render, callback_group=MutuallyExclusiveCallbackGroup()
        )

    def deactivate(self) -> None:
        """Cut the reply being spoken and say so (the microphone must not stay muted)."""
        if self.speaker is not None:
            self.speaker.close()
            self.speaker = None
        self._first_audio.clear()
        self._publish_not_speaking()

    def cleanup(self) -> None:
        """Free the voice, the renderer and the local player."""
        if self.player is not None:
            self.player.close()
        self.renderer = self.synth = self.player = None

    def parameters_changed(self, changes) -> None:
        """Apply prosody, smoothing and frame-rate changes from the next reply or frame."""
        self.prosody = self._prosody()
        if self.renderer is not None:
            with self._lock:
                self.user.tau_s = max(1e-3, self.p.user_smoothing_s)
                self.user.face_timeout_s = self.p.face_timeout_s
                self.agent.tau_s = max(1e-3, self.p.agent_smoothing_s)
        if 'fps' in changes and self._render_timer is not None:
            self._render_timer.timer_period_ns = int(1e9 / self.p.fps)
            self._render_timer.reset()

    def _publish_not_speaking(self) -> None:
        now = self.get_clock().now().to_msg()
        self.pub_speech.publish(speech_state(now, False, '', ns_to_time(0), ns_to_time(0), 0.0))

    # -- inputs --------------------------------------------------------------------------------
    def _on_reply(self, msg: DialogueReply) -> None:
        received_ns = self.get_clock().now().nanoseconds
        try:
            reply = reply_input(msg)
        except ConversionError as error:
            self.health.drop('empty_reply', str(error))
            return
        if not reply.age_group_known:
            self.health.warn_throttled(
                'age_group',
                f"reply '{msg.utterance_id}': unknown age_group "
                f"'{msg.age_group}', speaking with the adult voice",
            )
            self.health.count('unknown_age_group')
        text = clean_text(reply.text)
        if not text:
            self.health.drop('empty_reply', f"reply '{msg.utterance_id}' holds no speakable text")
            return
        text, truncated = truncate(text, self.p.max_reply_chars)
        if truncated:
            self.health.count('replies_truncated')
            self.health.warn_throttled(
                'truncated',
                f"reply '{msg.utterance_id}' is longer than max_reply_chars="
                f'{self.p.max_reply_chars}: spoken up to "{text[-20:]}"',
            )
        request = SpeechRequest(
            utterance_id=msg.utterance_id,
            text=text,
            sentences=split_sentences(text, self.p.max_sentence_chars),
            prosody=self.prosody[reply.age_group],
            age_group=reply.age_group,
            agent_emotion=agent_emotion_for_reply(text, reply.emotion),
            received_ns=received_ns,
            truncated=truncated,
        )
        speaker = self.speaker
        if speaker is None:  # deactivated while this reply was being read
            return
        if not speaker.say(request):
            self.health.drop(
                'queue_full',
                f"reply '{msg.utterance_id}' dropped: {self.p.max_pending_replies} "
                'replies already wait to be spoken',
            )
            return
        self.health.count('replies_received')

    def _on_barge_in(self, msg: BargeIn) -> None:
        """Cut the reply being spoken and drop the queue (the user talks over the agent)."""
        try:
            barge = barge_in_input(msg)
        except ConversionError as error:
            self.health.drop('bad_barge_in', str(error))
            return
        self.health.count('barge_ins_received')
        if not self.p.accept_barge_in:
            self.health.count('barge_ins_ignored_disabled')
            return
        speaker = self.speaker
        cut = speaker.interrupt(barge.reply_utterance_id) if speaker is not None else None
        if cut is None:  # nothing is being spoken, or another reply is: too late, or not ours
            self.health.count('barge_ins_stale')
            return
        request = cut.reply.request
        now = self.get_clock().now()
        first = self._first_audio.pop(id(cut.reply), ns_to_time(0))
        self.pub_speech.publish(
            speech_state(
                now.to_msg(),
                False,
                request.utterance_id,
                ns_to_time(request.received_ns),
                first,
                cut.played_s,
                interrupted=True,
            )
        )
        if self.player is not None:
            self.player.interrupt()
        total_s = cut.reply.duration_s
        with self._lock:
            self._interrupted_id = request.utterance_id
            self._interrupted_progress = min(1.0, cut.played_s / total_s) if total_s else 0.0
            self._agent_label, self._agent_until = 'neutral', 0.0
        self.health.count('replies_interrupted')
        if cut.dropped:
            self.health.count('replies_dropped_barge_in', len(cut.dropped))
        if barge.stamp_ns:
            self.health.set('barge_in_stop_ms', f'{(now.nanoseconds - barge.stamp_ns) / 1e6:.1f}')
        self.get_logger().info(
            f"barge-in: reply '{request.utterance_id}' cut after {cut.played_s:.2f} s"
            + (f", dropped {', '.join(repr(d) for d in cut.dropped)}" if cut.dropped else '')
        )

    def _on_face(self, msg: FaceEmotion) -> None:
        try:
            probabilities, face_found, _ = face_emotion_probabilities(msg)
        except ConversionError as error:
            self.health.drop('bad_face_emotion', str(error))
            return
        with self._lock:
            self.user.observe(probabilities, face_found, time.monotonic())
        self.health.count('face_emotions_received')

    # -- speech callbacks (Speaker's pacer thread) ---------------------------------------------
    def _on_chunk(self, reply, data: bytes, first: bool) -> None:
        now = self.get_clock().now()
        msg = AudioData()
        msg.data = array.array('B', data)
        self.pub_audio.publish(msg)
        if self.player is not None:
            self.player.write(data)
        self.health.count('audio_chunks')
        if first:
            request = reply.request
            self._first_audio[id(reply)] = now.to_msg()
            latency_ms = (now.nanoseconds - request.received_ns) / 1e6
            self.health.set('first_audio_ms', f'{latency_ms:.1f}')
            self.pub_speech.publish(
                speech_state(
                    now.to_msg(),
                    True,
                    request.utterance_id,
                    ns_to_time(request.received_ns),
                    now.to_msg(),
                    reply.duration_s if reply.done else 0.0,
                )
            )
            with self._lock:
                self._caption, self._caption_age = request.text, request.age_group
                self._interrupted_id = ''

    def _on_end(self, reply) -> None:
        request = reply.request
        first = self._first_audio.pop(id(reply), ns_to_time(0))
        self.pub_speech.publish(
            speech_state(
                self.get_clock().now().to_msg(),
                False,
                request.utterance_id,
                ns_to_time(request.received_ns),
                first,
                reply.duration_s,
            )
        )
        with self._lock:
            self._agent_label = request.agent_emotion
            self._agent_until = time.monotonic() + self.p.agent_hold_s
        self.health.count('replies_spoken')

    def _on_tts_error(self, reply, error: BaseException) -> None:
        self.health.drop('tts_failed', f"reply '{reply.request.utterance_id}': {error}")

    # -- render timer --------------------------------------------------------------------------
    def _render(self) -> None:
        started = time.perf_counter()
        now = time.monotonic()
        speaker = self.speaker
        if speaker is None:
            return
        mouth = speaker.mouth(now)
        with self._lock:
            probabilities = self.user.step(now).copy()
            face_found, user_label = self.user.face_found, self.user.label
            agent_label = (
                mouth.agent_emotion
                if mouth.speaking
                else (self._agent_label if now < self._agent_until else 'neutral')
            )
            caption, age_group = self._caption, self._caption_age
            # after a barge-in the caption keeps only the part spoken dark
            idle_progress = self._interrupted_progress if self._interrupted_id else 1.0
        user_weights = vrm_from_probabilities(probabilities)
        agent_weights = self.agent.step(vrm_for_agent(agent_label), now)
        t = now - self._t0
        blink_user, blink_agent = (
            (blink_at(t, 0.31), blink_at(t, 0.77)) if self.p.idle_animation else (0.0, 0.0)
        )
        scene = Scene(
            t=t,
            user=FacePose(weights=user_weights, blink=blink_user),
            user_face_found=face_found,
            user_probabilities=probabilities,
            user_label=user_label,
            agent=FacePose(
                weights=agent_weights,
                mouth_open=mouth.mouth_open,
                visemes=mouth.visemes,
                blink=blink_agent,
            ),
            agent_speaking=mouth.speaking,
            agent_level=mouth.level,
            age_group=age_group,
            caption=mouth.caption or caption,
            progress=mouth.progress if mouth.speaking else idle_progress,
        )
        frame = self.renderer.render(scene)
        stamp = self.get_clock().now().to_msg()
        self.pub_image.publish(bgr_to_image(frame, stamp, self.p.frame_id))
        self.pub_state.publish(
            avatar_state(
                stamp,
                self.p.frame_id,
                user_label,
                face_found,
                user_weights,
                agent_label,
                agent_weights,
                mouth.speaking,
                mouth.mouth_open,
                mouth.visemes,
                mouth.utterance_id,
                mouth.caption,
                VRM_EXPRESSIONS,
                VISEMES,
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self._render_ms_ema = (
            elapsed_ms if not self._render_ms_ema else 0.9 * self._render_ms_ema + 0.1 * elapsed_ms
        )
        self.health.count('frames')
        self.health.set('frame_ms', f'{self._render_ms_ema:.1f}')


def main(args=None) -> int:
    """Console entry point."""
    return run_node(AvatarNode, args, executor_threads=3)


if __name__ == '__main__':
    raise SystemExit(main())

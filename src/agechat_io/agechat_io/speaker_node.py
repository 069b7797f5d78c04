"""speaker_node: plays the agent's speech (agechat/tts/audio) on a PortAudio output device.

Subscribes ``agechat/tts/audio`` (AudioData, S16LE PCM, AUDIO_STREAM QoS) and
``agechat/tts/audio_info`` (AudioInfo, LATCHED: avatar_node announces 22 050 Hz mono), as
avatar_node publishes them. Chunks are played in arrival order from a buffer that PortAudio's
callback drains (silence when empty); a device that refuses the stream's rate gets it resampled
to its own default rate. When avatar_node cuts a reply because the user talked over it
(``agechat/speech_state`` with interrupted=true), what is buffered is dropped at once. A
lifecycle node (agechat_ros.node): the device is opened while active only. Device problems stop
the start with one line (exit 2).
"""

from __future__ import annotations

import threading

from agechat_msgs.msg import SpeechState
from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from agechat_io.core.sound import (
    PcmResampler,
    PlaybackBuffer,
    choose_device,
    explain,
    load_sounddevice,
)
from agechat_ros import ConversionError, DeviceUnavailable, qos
from agechat_ros.audio import MAX_CHUNK_BYTES, check_audio_info
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param

#: Speech buffered beyond this is dropped (the device is not playing: stalled or gone).
MAX_BUFFERED_S = 30

PARAMS = [
    Param(
        'device',
        'default',
        "output device: 'default' (or '') the system default, an index or a part of the name "
        'as listed by `python -m sounddevice`',
    ),
    Param(
        'rate',
        22050,
        'sample rate assumed until agechat/tts/audio_info says otherwise (avatar_node: 22050)',
        low=8000,
        high=192000,
    ),
    Param('channels', 1, 'channels assumed until audio_info says otherwise', low=1, high=8),
    Param(
        'latency',
        'low',
        "PortAudio output latency: 'low' or 'high' (more buffering, fewer underruns)",
        choices=['low', 'high'],
    ),
    Param(
        'interrupt_guard_ms',
        200,
        'after a reply is cut (SpeechState interrupted), chunks arriving this long are dropped '
        '(they were sent before the cut); 0: none',
        low=0,
        high=2000,
    ),
]


class SpeakerNode(AgechatNode):
    """Play received S16LE chunks through a PortAudio output stream fed by its callback.

    Chunks go into a byte buffer (PlaybackBuffer); PortAudio's callback takes what is due and
    plays silence when the buffer is empty, so the device never underruns between replies. An
    interrupted reply's buffered speech is flushed.
    """

    def __init__(self, **kwargs):
        super().__init__('speaker_node', PARAMS, **kwargs)
        self._format = (self.p.rate, self.p.channels)
        self._lock = threading.Lock()
        self._buffer = PlaybackBuffer(0, self.p.interrupt_guard_ms / 1000.0)
        self._stream = None
        self._resampler = None

    def configure(self) -> None:
        """Find the output device and check it takes the assumed format."""
        self.sd = load_sounddevice()
        self.choice = choose_device(
            self.sd, 'speaker', self.p.device, self.p.rate, self.p.channels
        )
        self.health.set('device', self.choice.name)
        self.get_logger().info(f"speaker '{self.choice.name}' ready")

    def activate(self) -> None:
        """Open the stream, then subscribe."""
        self._open(*self._format)
        group = MutuallyExclusiveCallbackGroup()
        self.subscribe(
            AudioData, 'agechat/tts/audio', self._on_audio, qos.AUDIO_STREAM, callback_group=group
        )
        self.subscribe(
            AudioInfo, 'agechat/tts/audio_info', self._on_info, qos.LATCHED, callback_group=group
        )
        # its own group: a cut reply is silenced even while chunks are being taken
        self.subscribe(
            SpeechState,
            'agechat/speech_state',
            self._on_speech_state,
            qos.LATCHED,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )

    def _open(self, rate: int, channels: int) -> None:
        """Open an output stream for `rate` x `channels` (resampled if the device refuses it)."""
        self._close()
        choice = choose_device(self.sd, 'speaker', self.p.device, rate, channels)
        try:
            stream = self.sd.RawOutputStream(
                device=choice.index,
                samplerate=choice.rate,
                channels=channels,
                dtype='int16',
                latency=self.p.latency,
                callback=self._fill,
            )
            stream.start()
        except self.sd.PortAudioError as error:
            raise DeviceUnavailable(
                explain(error, 'speaker', self.p.device, choice.rate, channels)
            ) from error
        with self._lock:
            self._buffer.clear()
            self._buffer.max_bytes = MAX_BUFFERED_S * choice.rate * 2 * channels
            self._resampler = PcmResampler(rate, choice.rate, channels)
            self._stream = stream
        self.health.set('device_rate', choice.rate)

    def _close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            self._buffer.clear()
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass

    def _fill(self, outdata, frames, time_info, status) -> None:
        """PortAudio callback: copy what is buffered, silence for the rest."""
        wanted = len(outdata)
        data, gap = self._buffer.take(wanted)
        take = len(data)
        outdata[:take] = data
        if take < wanted:
            outdata[take:] = bytes(wanted - take)
        if gap:
            self.health.count('gaps')  # the speech arrived slower than it plays
        if status.output_underflow:
            self.health.count('underflows')

    def _on_info(self, msg: AudioInfo) -> None:
        try:
            check_audio_info(msg)
        except ConversionError as error:
            self.health.drop('bad_audio_info', str(error))
            return
        new = (int(msg.sample_rate), int(msg.channels))
        if new == self._format:
            return
        self._format = new
        self.get_logger().info(f'tts audio: {new[0]} Hz x {new[1]} ch')
        try:
            self._open(*new)
        except DeviceUnavailable as error:
            self.get_logger().error(f'{error} (playback stopped)')
            self.health.set('playback', 'stopped')

    def _on_audio(self, msg: AudioData) -> None:
        data = bytes(msg.data)
        channels = self._format[1]
        if not data or len(data) > MAX_CHUNK_BYTES or len(data) % (2 * channels):
            self.health.drop('malformed_audio', f'{len(data)} bytes is not whole S16LE frames')
            return
        with self._lock:
            if self._stream is None:
                self.health.drop('no_device', 'the speaker stream is closed')
                return
            if not self._stream.active:
                self.health.drop('device_stopped', 'the speaker stream stopped (device gone?)')
                return
            refused = self._buffer.push(self._resampler.process(data))
        if refused == 'backlog':
            self.health.drop('backlog', f'over {MAX_BUFFERED_S} s of speech not played yet')
            return
        if refused == 'interrupted':
            self.health.count('chunks_dropped_interrupted')  # sent before the cut: expected
            return
        self.health.count('chunks_played')

    def _on_speech_state(self, msg: SpeechState) -> None:
        if msg.speaking or not msg.interrupted:
            return
        dropped = self._buffer.flush()
        self.health.count('interruptions')
        if dropped:
            rate, channels = self._resampler_format()
            self.health.count('interrupted_bytes', dropped)
            self.get_logger().info(
                f"reply '{msg.utterance_id}' interrupted: dropped "
                f'{dropped / (2 * channels * rate):.2f} s of buffered speech'
            )

    def _resampler_format(self):
        with self._lock:
            resampler = self._resampler
        if resampler is None:
            return self._format
        return resampler.out_rate, resampler.channels

    def deactivate(self) -> None:
        """Close the device; what was not played yet is dropped."""
        self._close()


def main(args=None) -> int:
    """Console entry point."""
    return run_node(SpeakerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

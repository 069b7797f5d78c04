"""speaker_node: plays the agent's speech (agechat/tts/audio) on a PortAudio output device.

Subscribes ``agechat/tts/audio`` (AudioData, S16LE PCM, AUDIO_STREAM QoS) and
``agechat/tts/audio_info`` (AudioInfo, LATCHED: avatar_node announces 22 050 Hz mono), as
avatar_node publishes them. Chunks are played in arrival order from a buffer that PortAudio's
callback drains (silence when empty); a device that refuses the stream's rate gets it resampled
to its own default rate. A lifecycle node (agechat_ros.node): the device is opened while active
only. Device problems stop the start with one line (exit 2).
"""

from __future__ import annotations

import threading

from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from agechat_io.core.sound import PcmResampler, choose_device, explain, load_sounddevice
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
]


class SpeakerNode(AgechatNode):
    """Play received S16LE chunks through a PortAudio output stream fed by its callback.

    Chunks go into a byte buffer; PortAudio's callback takes what is due and plays silence when
    the buffer is empty, so the device never underruns between replies.
    """

    def __init__(self, **kwargs):
        super().__init__('speaker_node', PARAMS, **kwargs)
        self._format = (self.p.rate, self.p.channels)
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._stream = None
        self._resampler = None
        self._playing = False

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
        with self._lock:
            take = min(wanted, len(self._buffer))
            outdata[:take] = self._buffer[:take]
            del self._buffer[:take]
            gap = self._playing and take < wanted
            self._playing = bool(self._buffer)
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
            if len(self._buffer) > MAX_BUFFERED_S * self._resampler.out_rate * 2 * channels:
                self.health.drop('backlog', f'over {MAX_BUFFERED_S} s of speech not played yet')
                return
            self._buffer += self._resampler.process(data)
            self._playing = True
        self.health.count('chunks_played')

    def deactivate(self) -> None:
        """Close the device; what was not played yet is dropped."""
        self._close()


def main(args=None) -> int:
    """Console entry point."""
    return run_node(SpeakerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

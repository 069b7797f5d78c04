"""speaker_node: plays the agent's speech (agechat/tts/audio) on a PortAudio output device.

Subscribes ``agechat/tts/audio`` (AudioData, S16LE PCM, AUDIO_STREAM QoS) and
``agechat/tts/audio_info`` (AudioInfo, LATCHED: avatar_node announces 22 050 Hz mono), as
avatar_node publishes them. Chunks are written to the device from a worker thread in arrival
order; a device that refuses the stream's rate gets it resampled to its own default rate. A
lifecycle node (agechat_ros.node): the device is opened while active only. Device problems stop the
start with one line (exit 2).
"""

from __future__ import annotations

import queue
import threading

from audio_common_msgs.msg import AudioData, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from agechat_io.core.sound import PcmResampler, choose_device, explain, load_sounddevice
from agechat_ros import ConversionError, DeviceUnavailable, qos
from agechat_ros.audio import MAX_CHUNK_BYTES, check_audio_info
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param

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

_STOP = object()


class SpeakerNode(AgechatNode):
    """Write received S16LE chunks to a PortAudio output stream."""

    def __init__(self, **kwargs):
        super().__init__('speaker_node', PARAMS, **kwargs)
        self._queue: queue.Queue = queue.Queue()
        self._thread = None
        self._format = (self.p.rate, self.p.channels)
        self._lock = threading.Lock()

    def configure(self) -> None:
        """Find the output device and check it takes the assumed format."""
        self.sd = load_sounddevice()
        self.choice = choose_device(
            self.sd, 'speaker', self.p.device, self.p.rate, self.p.channels
        )
        self.health.set('device', self.choice.name)
        self.get_logger().info(f"speaker '{self.choice.name}' ready")

    def activate(self) -> None:
        """Open the stream, start the writer thread and subscribe."""
        self._stream, self._resampler = self._open(*self._format)
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._play, name='speaker', daemon=True)
        self._thread.start()
        group = MutuallyExclusiveCallbackGroup()
        self.subscribe(
            AudioData, 'agechat/tts/audio', self._on_audio, qos.AUDIO_STREAM, callback_group=group
        )
        self.subscribe(
            AudioInfo, 'agechat/tts/audio_info', self._on_info, qos.LATCHED, callback_group=group
        )

    def _open(self, rate: int, channels: int):
        """Open an output stream for `rate` x `channels` (resampling if the device refuses it)."""
        choice = choose_device(self.sd, 'speaker', self.p.device, rate, channels)
        try:
            stream = self.sd.RawOutputStream(
                device=choice.index,
                samplerate=choice.rate,
                channels=channels,
                dtype='int16',
                latency=self.p.latency,
            )
            stream.start()
        except self.sd.PortAudioError as error:
            raise DeviceUnavailable(
                explain(error, 'speaker', self.p.device, choice.rate, channels)
            ) from error
        self.health.set('device_rate', choice.rate)
        return stream, PcmResampler(rate, choice.rate, channels)

    def _on_info(self, msg: AudioInfo) -> None:
        try:
            check_audio_info(msg)
        except ConversionError as error:
            self.health.drop('bad_audio_info', str(error))
            return
        new = (int(msg.sample_rate), int(msg.channels))
        with self._lock:
            changed, self._format = new != self._format, new
        if changed:
            self.get_logger().info(f'tts audio: {new[0]} Hz x {new[1]} ch')
            self._queue.put(new)

    def _on_audio(self, msg: AudioData) -> None:
        data = bytes(msg.data)
        with self._lock:
            channels = self._format[1]
        if not data or len(data) > MAX_CHUNK_BYTES or len(data) % (2 * channels):
            self.health.drop('malformed_audio', f'{len(data)} bytes is not whole S16LE frames')
            return
        self._queue.put(data)

    def _play(self) -> None:
        stream, resampler = self._stream, self._resampler
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                if isinstance(item, tuple):  # a new format: reopen at that rate
                    stream.stop()
                    stream.close()
                    stream, resampler = self._open(*item)
                    continue
                if stream.write(resampler.process(item)):
                    self.health.count('underflows')
                self.health.count('chunks_played')
        except Exception as error:  # noqa: BLE001 - device gone mid-run: say so once, stop
            line = (
                error
                if isinstance(error, DeviceUnavailable)
                else explain(error, 'speaker', self.p.device, self.p.rate, self.p.channels)
            )
            self.get_logger().error(
                f'{line} (playback stopped; deactivate and activate the node to retry)'
            )
            self.health.set('playback', 'stopped')
        finally:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass

    def deactivate(self) -> None:
        """Stop the writer (chunks not yet written are dropped) and close the device."""
        if self._thread is not None:
            while True:  # drop what is queued, then stop
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(_STOP)
            self._thread.join(timeout=5.0)
            self._thread = None


def main(args=None) -> int:
    """Console entry point."""
    return run_node(SpeakerNode, args, executor_threads=2)


if __name__ == '__main__':
    raise SystemExit(main())

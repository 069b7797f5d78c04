"""microphone_node: a PortAudio microphone (sounddevice) -> AudioData + AudioInfo.

Publishes ``audio`` (AudioData, raw interleaved S16LE PCM, ``chunk_ms`` per message, AUDIO_STREAM
QoS) and ``audio_info`` (AudioInfo, LATCHED), the format age_node reads; the launch file remaps
both to ``/audio/audio`` and ``/audio/audio_info``. A lifecycle node (agechat_ros.node): the
device is checked in configure and captured only while active, so ``ros2 lifecycle set
/microphone_node deactivate`` closes it. If the device refuses ``rate``, it is captured at its own
default rate and resampled to ``rate``. Device problems stop the start with one line (exit 2).
"""

from __future__ import annotations

import array
import threading

from audio_common_msgs.msg import AudioData, AudioInfo

from agechat_io.core.sound import PcmResampler, choose_device, explain, load_sounddevice
from agechat_ros import DeviceUnavailable, qos
from agechat_ros.audio import audio_info
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param

PARAMS = [
    Param(
        'device',
        'default',
        "input device: 'default' (or '') the system default, an index or a part of the name "
        'as listed by `python -m sounddevice`',
    ),
    Param('rate', 16000, 'sample rate of the published audio in Hz', low=8000, high=192000),
    Param('channels', 1, 'channels captured and published (interleaved)', low=1, high=8),
    Param('chunk_ms', 20, 'audio per AudioData message in milliseconds', low=5, high=500),
]


class MicrophoneNode(AgechatNode):
    """Capture from a PortAudio input device and publish S16LE chunks."""

    def __init__(self, **kwargs):
        super().__init__('microphone_node', PARAMS, **kwargs)
        self._stop = threading.Event()
        self._thread = None
        self.choice = None

    def check_parameters(self, p):
        """Chunks must hold a whole number of frames at the published rate."""
        if (p.rate * p.chunk_ms) % 1000:
            return f'rate * chunk_ms / 1000 must be a whole number of frames ({p.rate} Hz)'
        return None

    def configure(self) -> None:
        """Find the device and a rate it accepts; create the publishers."""
        self.sd = load_sounddevice()
        self.choice = choose_device(
            self.sd, 'microphone', self.p.device, self.p.rate, self.p.channels
        )
        self.pub_audio = self.publisher(AudioData, 'audio', qos.AUDIO_STREAM)
        self.pub_info = self.publisher(AudioInfo, 'audio_info', qos.LATCHED)
        resampled = (
            f', resampled from {self.choice.rate} Hz' if self.choice.rate != self.p.rate else ''
        )
        self.health.set('device', self.choice.name)
        self.health.set('device_rate', self.choice.rate)
        self.get_logger().info(
            f"microphone '{self.choice.name}': {self.p.rate} Hz x {self.p.channels} ch, "
            f'{self.p.chunk_ms} ms chunks{resampled}'
        )

    def activate(self) -> None:
        """Open the stream (one readable line if that fails) and start the capture thread."""
        frames = self.choice.rate * self.p.chunk_ms // 1000
        try:
            stream = self.sd.RawInputStream(
                device=self.choice.index,
                samplerate=self.choice.rate,
                channels=self.p.channels,
                dtype='int16',
                blocksize=frames,
            )
            stream.start()
        except self.sd.PortAudioError as error:
            raise DeviceUnavailable(
                explain(error, 'microphone', self.p.device, self.choice.rate, self.p.channels)
            ) from error
        self.pub_info.publish(audio_info(self.p.rate, self.p.channels))
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._capture, args=(stream, frames), name='microphone', daemon=True
        )
        self._thread.start()

    def _capture(self, stream, frames: int) -> None:
        resampler = PcmResampler(self.choice.rate, self.p.rate, self.p.channels)
        try:
            while not self._stop.is_set():
                data, overflowed = stream.read(frames)
                if overflowed:
                    self.health.count('overflows')
                pcm = resampler.process(bytes(data))
                if pcm:
                    self.pub_audio.publish(AudioData(data=array.array('B', pcm)))
                    self.health.count('chunks_published')
        except Exception as error:  # noqa: BLE001 - unplugged mid-run: say so once, stop capturing
            if not self._stop.is_set():
                self.get_logger().error(
                    explain(error, 'microphone', self.p.device, self.choice.rate, self.p.channels)
                    + ' (capture stopped; deactivate and activate the node to retry)'
                )
                self.health.set('capture', 'stopped')
        finally:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass

    def deactivate(self) -> None:
        """Stop capturing and close the device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


def main(args=None) -> int:
    """Console entry point."""
    return run_node(MicrophoneNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

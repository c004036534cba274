"""Log-mel front end and Griffin-Lim back end of the speech codec, built from torchaudio's functional API.

Neither module has parameters or buffers: the window and mel filterbank are pure functions of the config, made
on first use per device (so `from_pretrained`, which builds models on the meta device, never has to load them).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GriffinLimVocoder", "LogMelFeatures"]


class _MelBasis(nn.Module):
    """Holds the STFT/mel settings and caches the Hann window and the Slaney mel filterbank per device."""

    def __init__(self, config):
        super().__init__()
        self.sampling_rate = config.sampling_rate
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.f_min = config.f_min
        self.f_max = config.f_max
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def window_and_filterbank(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """`(n_fft,)` Hann window and `(n_fft // 2 + 1, n_mels)` filterbank on `device`."""
        if device not in self._cache:
            import torchaudio.functional as AF

            with torch.device("cpu"):  # not the meta device that from_pretrained may have set
                window = torch.hann_window(self.n_fft)
                filterbank = AF.melscale_fbanks(
                    self.n_fft // 2 + 1, self.f_min, self.f_max, self.n_mels, self.sampling_rate, "slaney", "slaney"
                )
            self._cache[device] = (window.to(device), filterbank.to(device))
        return self._cache[device]


class LogMelFeatures(_MelBasis):
    """Waveform `(B, T)` -> natural-log mel magnitudes `(B, n_mels, T // hop_length + 1)` (centred STFT)."""

    def __init__(self, config):
        super().__init__(config)
        self.log_floor = config.log_mel_floor

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF  # imported here: `import ardm_trl` stays light

        window, filterbank = self.window_and_filterbank(waveforms.device)
        magnitudes = AF.spectrogram(
            waveforms.float(), pad=0, window=window, n_fft=self.n_fft, hop_length=self.hop_length,
            win_length=self.n_fft, power=1.0, normalized=False,
        )  # fmt: skip  # (B, n_fft // 2 + 1, frames)
        mel = torch.matmul(magnitudes.transpose(-1, -2), filterbank).transpose(-1, -2)  # (B, n_mels, frames)
        return torch.log(mel.clamp(min=self.log_floor))


class GriffinLimVocoder(_MelBasis):
    """Log-mel `(B, n_mels, frames)` -> waveform `(B, (frames - 1) * hop_length)`.

    The mel filterbank is inverted by non-negative-clamped least squares (what `torchaudio.transforms.
    InverseMelScale` does) and the phase is recovered by fast Griffin-Lim (`torchaudio.functional.griffinlim`)
    started from zero phase, so decoding is deterministic.
    """

    def __init__(self, config):
        super().__init__(config)
        self.n_iter = config.griffin_lim_iters
        self.momentum = config.griffin_lim_momentum

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF

        window, filterbank = self.window_and_filterbank(log_mel.device)
        mel = torch.exp(log_mel.float())  # (B, n_mels, frames)
        magnitudes = torch.linalg.lstsq(filterbank.T[None], mel, driver="gelsd" if mel.device.type == "cpu" else None)
        magnitudes = magnitudes.solution.clamp(min=0.0)  # (B, n_fft // 2 + 1, frames)
        length = (log_mel.shape[-1] - 1) * self.hop_length
        return AF.griffinlim(
            magnitudes, window, self.n_fft, self.hop_length, self.n_fft, 1.0, self.n_iter, self.momentum, length,
            False,
        )  # fmt: skip

"""Configuration of the continuous-latent speech codec."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

__all__ = ["SpeechCodecConfig"]


class SpeechCodecConfig(PretrainedConfig):
    r"""
    Configuration of [`SpeechCodecModel`]: waveform -> log-mel (torchaudio) -> conv encoder -> `latent_dim`
    channels at `frame_rate` Hz -> conv decoder -> log-mel -> Griffin-Lim (torchaudio) -> waveform.

    Args:
        sampling_rate (`int`, *optional*, defaults to `22050`):
            Sample rate of the waveforms (espeak-ng speaks at 22050 Hz).
        n_fft (`int`, *optional*, defaults to `1024`):
            FFT size (and window length) of the STFT.
        hop_length (`int`, *optional*, defaults to `256`):
            STFT hop: mel frames come at `sampling_rate / hop_length` Hz (86 Hz at 22050 Hz).
        n_mels (`int`, *optional*, defaults to `80`):
            Mel bands.
        f_min (`float`, *optional*, defaults to `0.0`):
            Lowest mel frequency in Hz.
        f_max (`float`, *optional*, defaults to `8000.0`):
            Highest mel frequency in Hz (8 kHz inverted better than 11.025 kHz with Griffin-Lim: spectral convergence
            0.26 vs 0.31 on espeak speech).
        log_mel_floor (`float`, *optional*, defaults to `1e-5`):
            Mel magnitudes are clamped to this value before the natural log.
        latent_dim (`int`, *optional*, defaults to `16`):
            Channels of one latent frame.
        downsample_factor (`int`, *optional*, defaults to `2`):
            Mel frames per latent frame: latents come at `frame_rate = sampling_rate / (hop_length *
            downsample_factor)` Hz (43 Hz by default).
        hidden_size (`int`, *optional*, defaults to `128`):
            Channels of the convolutional encoder and decoder.
        kernel_size (`int`, *optional*, defaults to `5`):
            Kernel of the residual blocks.
        num_blocks (`int`, *optional*, defaults to `3`):
            Residual blocks before and after the resampling layer, in the encoder and in the decoder.
        latent_noise_std (`float`, *optional*, defaults to `0.1`):
            Gaussian noise added to the (unnormalised) latents in training, so that the decoder tolerates the small
            errors of a generative model; with `latent_l2_weight` it acts as a fixed-variance VAE.
        latent_l2_weight (`float`, *optional*, defaults to `0.01`):
            Weight of the mean squared latent in the training loss (keeps the latent scale near 1 so the noise
            keeps its meaning).
        griffin_lim_iters (`int`, *optional*, defaults to `32`):
            Griffin-Lim iterations at decoding.
        griffin_lim_momentum (`float`, *optional*, defaults to `0.99`):
            Momentum of fast Griffin-Lim.
        initializer_range (`float`, *optional*, defaults to `0.02`):
            Unused by the convolutions (they keep PyTorch's default init); kept for transformers utilities.

    Example:

    ```python
    >>> from ardm_trl.audio import SpeechCodecConfig, SpeechCodecModel

    >>> model = SpeechCodecModel(SpeechCodecConfig(hidden_size=32, num_blocks=1))
    >>> model.config.frame_rate
    43.06640625
    ```
    """

    model_type = "ardm_speech_codec"

    def __init__(
        self,
        sampling_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        log_mel_floor: float = 1e-5,
        latent_dim: int = 16,
        downsample_factor: int = 2,
        hidden_size: int = 128,
        kernel_size: int = 5,
        num_blocks: int = 3,
        latent_noise_std: float = 0.1,
        latent_l2_weight: float = 0.01,
        griffin_lim_iters: int = 32,
        griffin_lim_momentum: float = 0.99,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ):
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.log_mel_floor = log_mel_floor
        self.latent_dim = latent_dim
        self.downsample_factor = downsample_factor
        self.hidden_size = hidden_size
        self.kernel_size = kernel_size
        self.num_blocks = num_blocks
        self.latent_noise_std = latent_noise_std
        self.latent_l2_weight = latent_l2_weight
        self.griffin_lim_iters = griffin_lim_iters
        self.griffin_lim_momentum = griffin_lim_momentum
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        self._validate()

    @property
    def frame_rate(self) -> float:
        """Latent frames per second: `sampling_rate / (hop_length * downsample_factor)`."""
        return self.sampling_rate / (self.hop_length * self.downsample_factor)

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per latent frame: `hop_length * downsample_factor`."""
        return self.hop_length * self.downsample_factor

    def _validate(self) -> None:
        positive = ("sampling_rate", "n_fft", "hop_length", "n_mels", "latent_dim", "downsample_factor",
                    "hidden_size", "kernel_size", "griffin_lim_iters")  # fmt: skip
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd so convolutions keep the length, got {self.kernel_size}.")
        if self.hop_length > self.n_fft:
            raise ValueError(f"`hop_length` ({self.hop_length}) must not exceed `n_fft` ({self.n_fft}).")
        if not 0.0 <= self.f_min < self.f_max <= self.sampling_rate / 2:
            raise ValueError(
                f"Need 0 <= f_min < f_max <= sampling_rate / 2, got f_min={self.f_min}, f_max={self.f_max} at "
                f"{self.sampling_rate} Hz; lower `f_max` to at most {self.sampling_rate / 2}."
            )
        if self.num_blocks < 0 or self.latent_noise_std < 0 or self.latent_l2_weight < 0:
            raise ValueError("`num_blocks`, `latent_noise_std` and `latent_l2_weight` must be non-negative.")

"""A compact continuous-latent speech codec: log-mel -> conv encoder -> 16 x 43 Hz latents -> conv decoder -> Griffin-Lim."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.utils import logging

from .configuration_speech_codec import SpeechCodecConfig
from .layers import ConvStack
from .mel import GriffinLimVocoder, LogMelFeatures

__all__ = ["SpeechCodecModel", "SpeechCodecOutput", "SpeechCodecPreTrainedModel", "lengths_to_mask"]

logger = logging.get_logger(__name__)


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """`(B,)` lengths -> `(B, max_length)` bool mask, True on valid positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


@dataclass
class SpeechCodecOutput(ModelOutput):
    """
    Output of [`SpeechCodecModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Masked L1 between reconstructed and target normalised log-mels, plus `latent_l2_weight` times the mean
            squared (unnormalised) latent.
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            The masked L1 part alone.
        latents (`torch.FloatTensor` of shape `(batch_size, num_frames, latent_dim)`):
            Unnormalised latents (before the training noise).
        latents_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`):
            True on valid latent frames.
        log_mel (`torch.FloatTensor` of shape `(batch_size, n_mels, num_frames * downsample_factor)`):
            Target log-mel (natural log, not normalised), padded to whole latent frames.
        reconstructed_log_mel (`torch.FloatTensor` of shape `(batch_size, n_mels, num_frames * downsample_factor)`):
            Decoded log-mel.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    latents: torch.FloatTensor | None = None
    latents_mask: torch.BoolTensor | None = None
    log_mel: torch.FloatTensor | None = None
    reconstructed_log_mel: torch.FloatTensor | None = None


class SpeechCodecPreTrainedModel(PreTrainedModel):
    config_class = SpeechCodecConfig
    config: SpeechCodecConfig
    base_model_prefix = "codec"
    main_input_name = "waveforms"
    supports_gradient_checkpointing = False
    _no_split_modules = ["ConvResBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        # Convolutions keep PyTorch's default (Kaiming-uniform) init, which suits GELU residual stacks; the
        # normalisation statistics start as the identity (mean 0, std 1) until `set_*_statistics` is called.
        if isinstance(module, SpeechCodecModel):
            nn.init.zeros_(module.mel_mean)
            nn.init.ones_(module.mel_std)
            nn.init.zeros_(module.latent_mean)
            nn.init.ones_(module.latent_std)


class SpeechCodecModel(SpeechCodecPreTrainedModel):
    """
    Continuous-latent speech codec (the latent space an ARDM models).

    - [`~SpeechCodecModel.encode`]: waveforms `(B, T)` -> latents `(B, F, latent_dim)` at `config.frame_rate` Hz,
      normalised per channel with the stored corpus statistics (roughly zero mean, unit std), and a mask.
    - [`~SpeechCodecModel.decode`] / [`~SpeechCodecModel.decode_list`]: latents -> waveforms (batched conv decoder,
      batched Griffin-Lim).
    - `forward(waveforms, lengths)` returns the training loss, so a plain `Trainer` or a short loop trains it.
    """

    def __init__(self, config: SpeechCodecConfig):
        super().__init__(config)
        self.features = LogMelFeatures(config)
        self.vocoder = GriffinLimVocoder(config)
        hidden, factor = config.hidden_size, config.downsample_factor
        self.encoder_in = nn.Conv1d(config.n_mels, hidden, config.kernel_size, padding=config.kernel_size // 2)
        self.encoder_blocks = ConvStack(hidden, config.kernel_size, config.num_blocks)
        self.downsample = nn.Conv1d(hidden, hidden, 2 * factor, stride=factor, padding=factor // 2)
        self.encoder_post = ConvStack(hidden, config.kernel_size, config.num_blocks)
        self.encoder_out = nn.Conv1d(hidden, config.latent_dim, 1)
        self.decoder_in = nn.Conv1d(config.latent_dim, hidden, config.kernel_size, padding=config.kernel_size // 2)
        self.decoder_blocks = ConvStack(hidden, config.kernel_size, config.num_blocks)
        self.upsample = nn.ConvTranspose1d(hidden, hidden, 2 * factor, stride=factor, padding=factor // 2)
        self.decoder_post = ConvStack(hidden, config.kernel_size, config.num_blocks)
        self.decoder_out = nn.Conv1d(hidden, config.n_mels, config.kernel_size, padding=config.kernel_size // 2)
        self.act = nn.GELU()
        # Corpus statistics: per-band log-mel normalisation of the encoder input / decoder target, and per-channel
        # latent normalisation of what `encode` returns (set by `set_mel_statistics` / `set_latent_statistics`).
        self.register_buffer("mel_mean", torch.zeros(config.n_mels))
        self.register_buffer("mel_std", torch.ones(config.n_mels))
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.post_init()

    # ------------------------------------------------------------------ properties
    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    # ------------------------------------------------------------------ lengths
    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Latent frames of waveforms with `lengths` samples: `ceil((lengths // hop + 1) / downsample_factor)`."""
        mel_frames = torch.div(lengths, self.config.hop_length, rounding_mode="floor") + 1
        return torch.div(mel_frames + self.config.downsample_factor - 1, self.config.downsample_factor,
                         rounding_mode="floor")  # fmt: skip

    def num_samples(self, num_frames: torch.Tensor) -> torch.Tensor:
        """Waveform samples decoded from `num_frames` latent frames: `(num_frames * downsample_factor - 1) * hop`
        (centred STFT frames), i.e. about `num_frames * samples_per_frame`."""
        return (num_frames * self.config.downsample_factor - 1).clamp(min=0) * self.config.hop_length

    # ------------------------------------------------------------------ building blocks
    def _resample(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None, sampling_rate: int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Waveforms (and lengths) at the codec's rate; `sampling_rate=None` means they already are."""
        target = self.config.sampling_rate
        if sampling_rate is None or int(sampling_rate) == target:
            return waveforms, lengths
        if int(sampling_rate) <= 0:
            raise ValueError(f"`sampling_rate` must be a positive number of Hz, got {sampling_rate}.")
        import torchaudio.functional

        resampled = torchaudio.functional.resample(waveforms.float(), int(sampling_rate), target)
        if lengths is not None:
            lengths = torch.ceil(lengths.float() * target / int(sampling_rate)).long().clamp(max=resampled.shape[-1])
        return resampled, lengths

    def _check_waveforms(self, waveforms: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if waveforms.dim() == 1:
            waveforms = waveforms[None]
        if waveforms.dim() != 2:
            raise ValueError(f"`waveforms` must have shape (batch, samples), got {tuple(waveforms.shape)}.")
        if waveforms.shape[-1] < self.config.n_fft // 2 + 1:
            raise ValueError(
                f"Waveforms need at least {self.config.n_fft // 2 + 1} samples for the STFT, got {waveforms.shape[-1]}."
            )
        if lengths is not None and (lengths.shape != (waveforms.shape[0],) or int(lengths.max()) > waveforms.shape[1]):
            raise ValueError(f"`lengths` must have shape ({waveforms.shape[0]},) with values <= {waveforms.shape[1]}.")
        return waveforms

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Natural-log mel `(B, n_mels, frames)`, right-padded (with the floor) to a multiple of `downsample_factor`."""
        log_mel = self.features(waveforms)
        remainder = (-log_mel.shape[-1]) % self.config.downsample_factor
        if remainder:
            log_mel = F.pad(log_mel, (0, remainder), value=float(np.log(self.config.log_mel_floor)))
        return log_mel

    def _normalize_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def encode_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel `(B, n_mels, 2F)` -> unnormalised latents `(B, F, latent_dim)`."""
        hidden = self.encoder_blocks(self.encoder_in(self._normalize_mel(log_mel)))
        hidden = self.encoder_post(self.downsample(self.act(hidden)))
        return self.encoder_out(self.act(hidden)).transpose(1, 2)  # (B, F, D)

    def decode_log_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Unnormalised latents `(B, F, latent_dim)` -> log-mel `(B, n_mels, F * downsample_factor)`."""
        hidden = self.decoder_blocks(self.decoder_in(latents.transpose(1, 2)))
        hidden = self.decoder_post(self.upsample(self.act(hidden)))
        normalized = self.decoder_out(self.act(hidden))  # (B, n_mels, 2F)
        return normalized * self.mel_std[:, None] + self.mel_mean[:, None]

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean) / self.latent_std

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std + self.latent_mean

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def set_mel_statistics(self, waveforms: list[torch.Tensor | np.ndarray]) -> None:
        """Set the per-band mean/std of the log-mel over `waveforms` (call before training)."""
        frames = torch.cat([self.features(torch.as_tensor(w, dtype=torch.float32)[None])[0] for w in waveforms], -1)
        self.mel_mean.copy_(frames.mean(-1))
        self.mel_std.copy_(frames.std(-1).clamp(min=1e-3))

    @torch.no_grad()
    def set_latent_statistics(self, waveforms: list[torch.Tensor | np.ndarray], batch_size: int = 16) -> None:
        """Set the per-channel latent mean/std over `waveforms`, so that `encode` returns ~N(0, 1) channels."""
        self.latent_mean.zero_()
        self.latent_std.fill_(1.0)
        latents = []
        for start in range(0, len(waveforms), batch_size):
            batch = [torch.as_tensor(w, dtype=torch.float32) for w in waveforms[start : start + batch_size]]
            padded, lengths = _pad(batch)
            encoded, mask = self.encode(padded.to(self.device), lengths.to(self.device))
            latents.append(encoded[mask])
        latents = torch.cat(latents)  # (N, D)
        self.latent_mean.copy_(latents.mean(0))
        self.latent_std.copy_(latents.std(0).clamp(min=1e-4))

    # ------------------------------------------------------------------ public API
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> SpeechCodecOutput:
        """Reconstruct the log-mel of `waveforms (B, T)` through the (noised, in training) latents; return the loss."""
        waveforms = self._check_waveforms(waveforms, lengths)
        log_mel = self.log_mel(waveforms)  # (B, n_mels, 2F)
        latents = self.encode_log_mel(log_mel)  # (B, F, D)
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], device=waveforms.device)
        mask = lengths_to_mask(self.num_frames(lengths), latents.shape[1])  # (B, F)
        noisy = latents
        if self.training and self.config.latent_noise_std > 0:
            noisy = latents + self.config.latent_noise_std * torch.randn_like(latents)
        reconstructed = self.decode_log_mel(noisy)
        mel_mask = mask.repeat_interleave(self.config.downsample_factor, dim=1)[:, None, :]  # (B, 1, 2F)
        error = (self._normalize_mel(reconstructed) - self._normalize_mel(log_mel)).abs() * mel_mask
        reconstruction_loss = error.sum() / (mel_mask.sum() * self.config.n_mels).clamp(min=1)
        latent_l2 = (latents.pow(2).mean(-1) * mask).sum() / mask.sum().clamp(min=1)
        return SpeechCodecOutput(
            loss=reconstruction_loss + self.config.latent_l2_weight * latent_l2,
            reconstruction_loss=reconstruction_loss,
            latents=latents,
            latents_mask=mask,
            log_mel=log_mel,
            reconstructed_log_mel=reconstructed,
        )

    def encode(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, sampling_rate: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms `(B, T)` (padded; `lengths (B,)` in samples) -> normalised latents.

        Args:
            waveforms (`torch.Tensor`): mono audio `(B, T)` or `(T,)`.
            lengths (`torch.Tensor`, *optional*): valid samples per row; all `T` if `None`.
            sampling_rate (`int`, *optional*): the audio's rate in Hz. Audio at another rate than the codec's
                `config.sampling_rate` is resampled first (`torchaudio.functional.resample`); `None` means the audio
                is at the codec's rate.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: latents `(B, F, latent_dim)` (zero on padded frames) and a bool mask
            `(B, F)`, True on valid frames.
        """
        waveforms, lengths = self._resample(waveforms, lengths, sampling_rate)
        waveforms = self._check_waveforms(waveforms, lengths)
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], device=waveforms.device)
        latents = self.normalize_latents(self.encode_log_mel(self.log_mel(waveforms)))
        mask = lengths_to_mask(self.num_frames(lengths.to(latents.device)), latents.shape[1])
        return latents * mask[..., None], mask

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, latents_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents `(B, F, latent_dim)` -> waveforms `(B, num_samples(F))` and lengths `(B,)`.

        Samples after each sequence's last valid frame are zero.
        """
        if latents.dim() != 3 or latents.shape[-1] != self.config.latent_dim:
            raise ValueError(
                f"`latents` must have shape (batch, frames, {self.config.latent_dim}), got {tuple(latents.shape)}."
            )
        if latents_mask is None:
            latents_mask = torch.ones(latents.shape[:2], dtype=torch.bool, device=latents.device)
        log_mel = self.decode_log_mel(self.denormalize_latents(latents.to(self.dtype)))
        waveforms = self.vocoder(log_mel)  # (B, (2F - 1) * hop)
        lengths = self.num_samples(latents_mask.long().sum(-1))
        return waveforms * lengths_to_mask(lengths, waveforms.shape[-1]), lengths

    @torch.no_grad()
    def decode_list(self, latents: list[torch.Tensor]) -> list[np.ndarray]:
        """Decode a list of `(F_i, latent_dim)` latents in one batch; return float32 numpy waveforms, trimmed."""
        if not latents:
            return []
        padded, lengths = _pad([torch.as_tensor(x, dtype=torch.float32) for x in latents])
        waveforms, sample_lengths = self.decode(padded.to(self.device), lengths_to_mask(lengths, padded.shape[1]))
        return [w[:n].float().cpu().numpy() for w, n in zip(waveforms, sample_lengths.tolist())]

    @torch.no_grad()
    def encode_list(
        self, waveforms: list[torch.Tensor | np.ndarray], sampling_rate: int | None = None
    ) -> list[torch.Tensor]:
        """Encode a list of 1-D waveforms (at `sampling_rate`, see [`encode`]) in one batch; return `(F_i,
        latent_dim)` latents, trimmed."""
        padded, lengths = _pad([torch.as_tensor(w, dtype=torch.float32) for w in waveforms])
        latents, mask = self.encode(padded.to(self.device), lengths.to(self.device), sampling_rate=sampling_rate)
        return [x[m] for x, m in zip(latents, mask)]


def _pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D or 2-D tensors along dim 0; return the batch and the lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True), lengths

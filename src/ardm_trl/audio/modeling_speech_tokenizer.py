"""Discrete speech tokenizer: finite scalar quantisation of the codec latents, one token per latent frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from .configuration_speech_tokenizer import SpeechTokenizerConfig
from .fsq import FiniteScalarQuantizer
from .layers import ConvStack
from .modeling_speech_codec import SpeechCodecModel, _pad, lengths_to_mask

__all__ = ["SpeechTokenizerModel", "SpeechTokenizerOutput"]


@dataclass
class SpeechTokenizerOutput(ModelOutput):
    """
    Output of [`SpeechTokenizerModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Latent MSE plus `mel_loss_weight` times the log-mel L1 through the frozen codec decoder.
        latent_loss (`torch.FloatTensor` of shape `()`):
            Masked MSE between the reconstructed and the codec's normalised latents.
        mel_loss (`torch.FloatTensor` of shape `()`):
            Masked L1 between the codec's normalised log-mels decoded from the reconstructed and from the original
            latents.
        ids (`torch.LongTensor` of shape `(batch_size, num_frames)`):
            Token ids (0 on padded frames).
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`):
            True on valid frames.
        reconstructed_latents (`torch.FloatTensor` of shape `(batch_size, num_frames, latent_dim)`):
            Normalised codec latents decoded from the tokens.
    """

    loss: torch.FloatTensor | None = None
    latent_loss: torch.FloatTensor | None = None
    mel_loss: torch.FloatTensor | None = None
    ids: torch.LongTensor | None = None
    mask: torch.BoolTensor | None = None
    reconstructed_latents: torch.FloatTensor | None = None


class SpeechTokenizerPreTrainedModel(PreTrainedModel):
    config_class = SpeechTokenizerConfig
    config: SpeechTokenizerConfig
    base_model_prefix = "tokenizer"
    main_input_name = "waveforms"
    supports_gradient_checkpointing = False
    _no_split_modules = ["ConvResBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default conv init; the codec sub-model initialises its own statistics buffers.
        if isinstance(module, SpeechCodecModel):
            module._init_weights(module)


class SpeechTokenizerModel(SpeechTokenizerPreTrainedModel):
    """
    Speech tokenizer for a codec LM: waveform -> codec latents -> conv encoder -> FSQ ids `(B, F)` in
    `[0, codebook_size)` at the codec frame rate, and back (ids -> codes -> conv decoder -> codec latents -> codec
    decoder -> waveform). It holds its codec (`self.codec`), which stays frozen while the tokenizer trains.
    """

    def __init__(self, config: SpeechTokenizerConfig):
        super().__init__(config)
        self.codec = SpeechCodecModel(config.codec_config)
        self.quantizer = FiniteScalarQuantizer(config.fsq_levels)
        hidden, kernel, latent_dim = config.hidden_size, config.kernel_size, config.codec_config.latent_dim
        self.encoder_in = nn.Conv1d(latent_dim, hidden, kernel, padding=kernel // 2)
        self.encoder_blocks = ConvStack(hidden, kernel, config.num_blocks)
        self.encoder_out = nn.Conv1d(hidden, self.quantizer.dim, 1)
        self.decoder_in = nn.Conv1d(self.quantizer.dim, hidden, kernel, padding=kernel // 2)
        self.decoder_blocks = ConvStack(hidden, kernel, config.num_blocks)
        self.decoder_out = nn.Conv1d(hidden, latent_dim, 1)
        self.act = nn.GELU()
        self.post_init()

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def sampling_rate(self) -> int:
        return self.codec.config.sampling_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.config.frame_rate

    # ------------------------------------------------------------------ latents <-> ids
    def quantize_latents(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised codec latents `(B, F, D)` -> (codes `(B, F, len(fsq_levels))` with straight-through gradient,
        ids `(B, F)`)."""
        hidden = self.encoder_blocks(self.encoder_in(latents.transpose(1, 2)))
        return self.quantizer(self.encoder_out(self.act(hidden)).transpose(1, 2))

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(B, F, len(fsq_levels))` -> normalised codec latents `(B, F, D)`."""
        hidden = self.decoder_blocks(self.decoder_in(codes.transpose(1, 2)))
        return self.decoder_out(self.act(hidden)).transpose(1, 2)

    def encode_latents(
        self, latents: torch.Tensor, latents_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised codec latents `(B, F, D)` -> ids `(B, F)` (0 on padding) and the mask `(B, F)`."""
        if latents_mask is None:
            latents_mask = torch.ones(latents.shape[:2], dtype=torch.bool, device=latents.device)
        _, ids = self.quantize_latents(latents)
        return ids * latents_mask, latents_mask

    def decode_latents(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Ids `(B, F)` -> normalised codec latents `(B, F, D)` (zero on padded frames)."""
        if ids.dim() != 2:
            raise ValueError(f"`ids` must have shape (batch, frames), got {tuple(ids.shape)}.")
        latents = self.codes_to_latents(self.quantizer.ids_to_codes(ids))
        if mask is not None:
            latents = latents * mask[..., None]
        return latents

    # ------------------------------------------------------------------ waveforms <-> ids
    def forward(
        self,
        waveforms: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        latents: torch.Tensor | None = None,
        latents_mask: torch.Tensor | None = None,
    ) -> SpeechTokenizerOutput:
        """Tokenize and reconstruct the codec latents of `waveforms (B, T)` (or of precomputed normalised codec
        `latents (B, F, D)`); return the training loss."""
        with torch.no_grad():  # the codec is frozen
            if latents is None:
                if waveforms is None:
                    raise ValueError("Pass `waveforms` (and optionally `lengths`) or codec `latents`.")
                latents, latents_mask = self.codec.encode(waveforms, lengths)  # (B, F, D)
            elif latents_mask is None:
                latents_mask = torch.ones(latents.shape[:2], dtype=torch.bool, device=latents.device)
            target_mel = self.codec.decode_log_mel(self.codec.denormalize_latents(latents))
        mask = latents_mask
        codes, ids = self.quantize_latents(latents)
        reconstructed = self.codes_to_latents(codes)
        weights = mask[..., None].float()
        latent_loss = ((reconstructed - latents) ** 2 * weights).sum() / (weights.sum() * latents.shape[-1]).clamp(1)
        mel = self.codec.decode_log_mel(self.codec.denormalize_latents(reconstructed))  # gradients flow to us only
        mel_mask = mask.repeat_interleave(self.codec.config.downsample_factor, dim=1)[:, None, :].float()
        scale = self.codec.mel_std[:, None]
        mel_error = F.l1_loss(mel / scale, target_mel / scale, reduction="none") * mel_mask
        mel_loss = mel_error.sum() / (mel_mask.sum() * mel.shape[1]).clamp(1)
        return SpeechTokenizerOutput(
            loss=latent_loss + self.config.mel_loss_weight * mel_loss,
            latent_loss=latent_loss,
            mel_loss=mel_loss,
            ids=ids * mask,
            mask=mask,
            reconstructed_latents=reconstructed,
        )

    @torch.no_grad()
    def encode(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, sampling_rate: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms `(B, T)` (padded; `lengths (B,)` in samples; at `sampling_rate`, resampled to the codec's rate
        when it differs, `None` = the codec's rate) -> ids `(B, F)` long (0 on padding), mask `(B, F)`."""
        latents, mask = self.codec.encode(waveforms, lengths, sampling_rate=sampling_rate)
        return self.encode_latents(latents, mask)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids `(B, F)` -> waveforms `(B, codec.num_samples(F))` and lengths `(B,)` (the codec's decoder)."""
        if mask is None:
            mask = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
        return self.codec.decode(self.decode_latents(ids, mask), mask)

    @torch.no_grad()
    def decode_list(self, ids: list[torch.Tensor]) -> list[np.ndarray]:
        """Decode a list of `(F_i,)` id sequences in one batch; return float32 numpy waveforms, trimmed."""
        if not ids:
            return []
        padded, lengths = _pad([torch.as_tensor(x, dtype=torch.long) for x in ids])
        waveforms, sample_lengths = self.decode(padded.to(self.device), lengths_to_mask(lengths, padded.shape[1]))
        return [w[:n].float().cpu().numpy() for w, n in zip(waveforms, sample_lengths.tolist())]

    @torch.no_grad()
    def encode_list(
        self, waveforms: list[torch.Tensor | np.ndarray], sampling_rate: int | None = None
    ) -> list[torch.Tensor]:
        """Tokenize a list of 1-D waveforms (at `sampling_rate`, see [`encode`]) in one batch; return `(F_i,)` id
        tensors, trimmed."""
        padded, lengths = _pad([torch.as_tensor(w, dtype=torch.float32) for w in waveforms])
        ids, mask = self.encode(padded.to(self.device), lengths.to(self.device), sampling_rate=sampling_rate)
        return [x[m] for x, m in zip(ids, mask)]

"""Configuration of the discrete speech tokenizer (FSQ over the codec latents)."""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig

from .configuration_speech_codec import SpeechCodecConfig

__all__ = ["SpeechTokenizerConfig"]


class SpeechTokenizerConfig(PretrainedConfig):
    r"""
    Configuration of [`SpeechTokenizerModel`]: one token per codec latent frame. A small conv encoder maps the
    codec latents (with temporal context) to `len(fsq_levels)` channels, finite scalar quantisation rounds them to
    a grid of `prod(fsq_levels)` codes, and a conv decoder maps the codes back to codec latents.

    Args:
        codec_config (`dict` or [`SpeechCodecConfig`], *optional*):
            Configuration of the codec the tokenizer holds (its weights are saved with the tokenizer).
        fsq_levels (`list[int]`, *optional*, defaults to `[8, 5, 5, 5]`):
            Levels per FSQ channel; `codebook_size = prod(fsq_levels)` (1000 by default). The FSQ paper recommends
            `[8, 5, 5, 5]` for ~1k codes.
        hidden_size (`int`, *optional*, defaults to `128`):
            Channels of the tokenizer's encoder and decoder.
        kernel_size (`int`, *optional*, defaults to `3`):
            Kernel of their residual blocks.
        num_blocks (`int`, *optional*, defaults to `3`):
            Residual blocks in the encoder and in the decoder.
        mel_loss_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the log-mel L1 loss through the frozen codec decoder (the latent MSE has weight 1).

    Example:

    ```python
    >>> from ardm_trl.audio import SpeechTokenizerConfig

    >>> SpeechTokenizerConfig(fsq_levels=[4, 4]).codebook_size
    16
    ```
    """

    model_type = "ardm_speech_tokenizer"
    sub_configs = {"codec_config": SpeechCodecConfig}

    def __init__(
        self,
        codec_config: dict | SpeechCodecConfig | None = None,
        fsq_levels: list[int] | None = None,
        hidden_size: int = 128,
        kernel_size: int = 3,
        num_blocks: int = 3,
        mel_loss_weight: float = 1.0,
        **kwargs: Any,
    ):
        if codec_config is None:
            codec_config = SpeechCodecConfig()
        elif isinstance(codec_config, dict):
            codec_config = SpeechCodecConfig(**{k: v for k, v in codec_config.items() if k != "model_type"})
        self.codec_config = codec_config
        self.fsq_levels = list(fsq_levels) if fsq_levels is not None else [8, 5, 5, 5]
        self.hidden_size = hidden_size
        self.kernel_size = kernel_size
        self.num_blocks = num_blocks
        self.mel_loss_weight = mel_loss_weight
        super().__init__(**kwargs)
        if not self.fsq_levels or any(int(level) < 2 for level in self.fsq_levels):
            raise ValueError(f"`fsq_levels` must be a non-empty list of integers >= 2, got {self.fsq_levels}.")
        if hidden_size < 1 or num_blocks < 0 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError("Need `hidden_size` >= 1, `num_blocks` >= 0 and an odd `kernel_size` >= 1.")

    @property
    def codebook_size(self) -> int:
        """Number of distinct tokens: `prod(fsq_levels)`."""
        return math.prod(self.fsq_levels)

    @property
    def sampling_rate(self) -> int:
        return self.codec_config.sampling_rate

    @property
    def frame_rate(self) -> float:
        """Tokens per second (the codec's latent frame rate)."""
        return self.codec_config.frame_rate

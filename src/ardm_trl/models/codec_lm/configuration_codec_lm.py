"""Configuration of the codec-token TTS language model (CosyVoice-style: text tokens, then speech tokens)."""

from __future__ import annotations

from transformers import LlamaConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Number of special tokens between the text range and the speech range: pad, bos, speech start (text -> speech
# separator). The speech end-of-sequence token follows the codebook.
_NUM_SPECIAL_BEFORE_SPEECH = 3

_DEFAULT_LM = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


class CodecLMConfig(PreTrainedConfig):
    r"""
    Configuration of [`CodecLMForSpeechSynthesis`], a causal language model over one *unified* vocabulary that holds
    the text units, a few special tokens and the codes of a speech tokenizer:

    ```
    [0, text_vocab_size)                        text units (characters or phonemes)
    pad_token_id          = text_vocab_size     padding
    bos_token_id          = text_vocab_size + 1 start of sequence (before the text)
    speech_start_token_id = text_vocab_size + 2 end of text, start of speech (CosyVoice's "task id")
    [speech_token_offset, speech_token_offset + codebook_size)   speech codes
    eos_token_id          = speech_token_offset + codebook_size  end of speech
    ```

    A sequence reads `<bos> text <speech_start> speech <eos>`. The model only ever predicts speech codes or `<eos>`
    (its output head covers `codebook_size + 1` classes), so sampling cannot leave the speech range.

    The special-token ids are derived from `text_vocab_size` and `codebook_size`; passing them explicitly is allowed
    (they are saved in `config.json`) but they must match the layout above.

    Args:
        text_vocab_size (`int`, *optional*, defaults to 128):
            Number of text units (ids `0 .. text_vocab_size - 1`).
        codebook_size (`int`, *optional*, defaults to 512):
            Number of codes of the speech tokenizer.
        lm_config (`dict` or [`~transformers.LlamaConfig`], *optional*):
            The causal transformer. Its `vocab_size`, `pad_token_id`, `bos_token_id` and `eos_token_id` are overwritten
            with this config's unified values. Defaults to a 6-layer, width-256 Llama.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of the weights.
        guided_attention_weight (`float`, *optional*, defaults to 0.0):
            Weight of the guided-attention loss in pretraining (`ardm_trl.models.guided_attention`; 0 = off): the
            first `guided_attention_heads` heads of every layer are pulled onto a near-diagonal text-speech alignment,
            so a small LM learns to read the text. Training passes with labels then use eager attention; sampling and
            the RL trainers are unchanged.
        guided_attention_sigma (`float`, *optional*, defaults to 0.2):
            Width of the diagonal window, as a fraction of the text length.
        guided_attention_heads (`int`, *optional*):
            Heads per layer that are guided (the first ones); default: half of the heads.
        cfg_dropout_prob (`float`, *optional*, defaults to 0.0):
            Probability that [`CodecLMDataCollator`] drops a training row's text (`<bos> <speech_start> speech`), so
            the model also learns the text-free distribution that classifier-free guidance
            (`sample_speech(..., guidance_scale=w)`) contrasts with; 0 = never (the LM then has no trained text-free
            branch).

    Example:

    ```python
    >>> from ardm_trl.models.codec_lm import CodecLMConfig, CodecLMForSpeechSynthesis

    >>> config = CodecLMConfig(text_vocab_size=64, codebook_size=256, lm_config={"hidden_size": 128})
    >>> model = CodecLMForSpeechSynthesis(config)
    ```
    """

    model_type = "ardm_codec_lm"
    sub_configs_defaults = {"lm_config": SubConfigSpec(config_class=LlamaConfig, init_kwargs=_DEFAULT_LM)}

    text_vocab_size: int = 128
    codebook_size: int = 512
    lm_config: dict | LlamaConfig | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    vocab_size: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    speech_start_token_id: int | None = None
    eos_token_id: int | None = None
    speech_token_offset: int | None = None
    guided_attention_weight: float = 0.0
    guided_attention_sigma: float = 0.2
    guided_attention_heads: int | None = None
    cfg_dropout_prob: float = 0.0

    def __post_init__(self, **kwargs):
        if isinstance(self.lm_config, dict):
            # Fill missing keys from the defaults so that `lm_config={"hidden_size": 128}` stays small.
            self.lm_config = {**_DEFAULT_LM, **self.lm_config}
        super().__post_init__(**kwargs)
        if self.text_vocab_size < 1:
            raise ValueError(f"`text_vocab_size` must be >= 1, got {self.text_vocab_size}.")
        if self.codebook_size < 2:
            raise ValueError(
                f"`codebook_size` must be >= 2 (the speech tokenizer's number of codes), got {self.codebook_size}."
            )
        layout = {
            "pad_token_id": self.text_vocab_size,
            "bos_token_id": self.text_vocab_size + 1,
            "speech_start_token_id": self.text_vocab_size + 2,
            "speech_token_offset": self.text_vocab_size + _NUM_SPECIAL_BEFORE_SPEECH,
            "eos_token_id": self.text_vocab_size + _NUM_SPECIAL_BEFORE_SPEECH + self.codebook_size,
            "vocab_size": self.text_vocab_size + _NUM_SPECIAL_BEFORE_SPEECH + self.codebook_size + 1,
        }
        for name, value in layout.items():
            given = getattr(self, name)
            if given is not None and given != value:
                raise ValueError(
                    f"`{name}={given}` does not match the unified vocabulary layout of `text_vocab_size="
                    f"{self.text_vocab_size}` and `codebook_size={self.codebook_size}` (expected {value}). "
                    f"Leave `{name}` unset: it is derived from the two sizes."
                )
            setattr(self, name, value)
        lm = self.lm_config
        if self.guided_attention_weight < 0 or self.guided_attention_sigma <= 0:
            raise ValueError(
                f"`guided_attention_weight` must be >= 0 (0 = off) and `guided_attention_sigma` > 0, got "
                f"{self.guided_attention_weight} and {self.guided_attention_sigma}."
            )
        if not 0.0 <= self.cfg_dropout_prob < 1.0:
            raise ValueError(f"`cfg_dropout_prob` must be in [0, 1), got {self.cfg_dropout_prob}.")
        heads = self.guided_attention_heads
        if heads is not None and not 1 <= heads <= lm.num_attention_heads:
            raise ValueError(
                f"`guided_attention_heads` must be between 1 and the LM's {lm.num_attention_heads} attention heads "
                f"(or None for half of them), got {heads}."
            )
        lm.vocab_size = self.vocab_size
        lm.pad_token_id = self.pad_token_id
        lm.bos_token_id = self.bos_token_id
        lm.eos_token_id = self.eos_token_id
        if lm.hidden_size % lm.num_attention_heads != 0:
            raise ValueError(
                f"`lm_config.hidden_size` ({lm.hidden_size}) must be a multiple of "
                f"`lm_config.num_attention_heads` ({lm.num_attention_heads})."
            )

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The Llama config: `generate` and the KV cache read the layer layout and special ids from it."""
        return self.lm_config

    @property
    def speech_vocab_size(self) -> int:
        """Number of classes of the output head: the speech codes and the end-of-speech token."""
        return self.codebook_size + 1

    @property
    def hidden_size(self) -> int:
        return self.lm_config.hidden_size


__all__ = ["CodecLMConfig"]

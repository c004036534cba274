"""Codec-token TTS language model: a Llama backbone over `<bos> text <speech_start> speech <eos>` with a speech head."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, GenerationMixin, LlamaModel, PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.utils import logging

from ..guided_attention import eager_attention, guided_attention_loss
from .configuration_codec_lm import CodecLMConfig
from .generation_codec_lm import (
    SpeechSamplingOutput,
    position_ids_from_attention_mask,
    sample_speech,
    teacher_forced_speech_logits,
)
from .layout import SpeechTokenLayout

logger = logging.get_logger(__name__)

# Logit given to the non-speech entries of the unified vocabulary. Finite (not -inf) so that entropies and
# log-softmaxes computed by generic code (TRL, `generate`) stay finite; exp(-1e4) is exactly 0 in fp32 and bf16.
MASKED_LOGIT = -1e4


@dataclass
class CodecLMOutput(ModelOutput):
    """
    Output of [`CodecLMForSpeechSynthesis`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Mean next-token cross-entropy over the labelled (speech and end-of-speech) positions.
        logits (`torch.FloatTensor` of shape `(batch_size, seq_len, vocab_size)`):
            Next-token logits over the unified vocabulary; entries outside the speech range are `MASKED_LOGIT`, so
            `generate` and TRL trainers can use the model like any causal LM.
        speech_logits (`torch.FloatTensor` of shape `(batch_size, seq_len, codebook_size + 1)`):
            The output head itself: logits of the speech codes, the last class being end-of-speech.
        past_key_values (`transformers.Cache`, *optional*):
            The key/value cache when `use_cache=True`.
        hidden_states (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`):
            Last hidden states of the backbone (after its final norm).
        guided_attention_loss (`torch.FloatTensor` of shape `()`, *optional*):
            The guided-attention term of `loss` (training with labels and `config.guided_attention_weight > 0`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    speech_logits: torch.FloatTensor | None = None
    past_key_values: object | None = None
    hidden_states: torch.FloatTensor | None = None
    guided_attention_loss: torch.FloatTensor | None = None


class UnifiedVocabularyHead(nn.Module):
    """A read-only view of the speech head as a linear layer over the *unified* vocabulary.

    `weight` `(vocab_size, D)` is zero and `bias` `MASKED_LOGIT` on the non-speech rows, the speech head's weight (and a
    zero bias) on the speech rows; both are built on access from the speech head, so gradients reach it. Code that
    computes logits from `get_output_embeddings()` itself (TRL's fused log-prob kernels) then sees the same
    distribution as `forward`. It holds no parameters of its own.
    """

    def __init__(self, speech_head: nn.Linear, offset: int):
        super().__init__()
        self._speech_head = [speech_head]  # a list, so the head is not registered twice as a sub-module
        self.offset = offset

    @property
    def weight(self) -> torch.Tensor:
        head = self._speech_head[0].weight  # (K + 1, D)
        return torch.cat([head.new_zeros(self.offset, head.shape[1]), head], dim=0)

    @property
    def bias(self) -> torch.Tensor:
        head = self._speech_head[0].weight
        return torch.cat([head.new_full((self.offset,), MASKED_LOGIT), head.new_zeros(head.shape[0])])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden_states, self.weight, self.bias)


class CodecLMPreTrainedModel(PreTrainedModel):
    config_class = CodecLMConfig
    config: CodecLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        # Normal(0, initializer_range) for linear layers and embeddings, ones for norms (transformers' defaults).
        super()._init_weights(module)


class CodecLMForSpeechSynthesis(CodecLMPreTrainedModel, GenerationMixin):
    """
    CosyVoice-style text-to-speech language model: a causal Llama over the unified vocabulary of
    [`CodecLMConfig`] and a head over the speech codes plus end-of-speech.

    Training: `forward(input_ids, attention_mask, labels)` returns the next-token cross-entropy on the labelled
    positions (build batches with [`CodecLMDataCollator`]), so a plain `transformers.Trainer` pretrains it.
    Inference: [`~CodecLMForSpeechSynthesis.sample_speech`] (KV cache, batches of different text lengths, Gumbel
    noise returned for DiffRO), or `generate` like any causal LM.
    """

    def __init__(self, config: CodecLMConfig):
        super().__init__(config)
        self.model = LlamaModel(config.lm_config)
        self.speech_head = nn.Linear(config.hidden_size, config.speech_vocab_size, bias=False)
        self.post_init()
        self.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
        )

    def get_output_embeddings(self) -> UnifiedVocabularyHead:
        """The speech head seen as a linear layer over the unified vocabulary (see [`UnifiedVocabularyHead`])."""
        return UnifiedVocabularyHead(self.speech_head, self.config.speech_token_offset)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CodecLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): unified token ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, seq_len)`, *optional*): 1 = attend, 0 = padding
                (left or right).
            position_ids (`torch.LongTensor`, *optional*): defaults to positions that skip the padding when there
                is no cache.
            labels (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): the input ids, with `-100` on
                the positions not to predict (text, padding). Labelled ids must be speech codes or `eos_token_id`.
            logits_to_keep (`int`, *optional*, defaults to 0): compute logits for the last `logits_to_keep`
                positions only (0 = all).
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        has_cache = past_key_values is not None and past_key_values.get_seq_length() > 0
        if position_ids is None and attention_mask is not None and not has_cache:
            position_ids = position_ids_from_attention_mask(attention_mask)
        guided = labels is not None and self.training and self.config.guided_attention_weight > 0
        with eager_attention(self.model) if guided else nullcontext():
            outputs = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                inputs_embeds=inputs_embeds,
                use_cache=use_cache,
                **({**kwargs, "output_attentions": True} if guided else kwargs),
            )
        hidden_states = outputs.last_hidden_state  # (B, T, D)
        kept = hidden_states[:, -logits_to_keep:] if logits_to_keep else hidden_states
        speech_logits = self.speech_head(kept)  # (B, T, K + 1)
        offset = self.config.speech_token_offset
        logits = torch.cat(
            [speech_logits.new_full((*speech_logits.shape[:2], offset), MASKED_LOGIT), speech_logits], -1
        )

        loss = guided_loss = None
        if labels is not None:
            loss = self.speech_loss(speech_logits, labels, num_items_in_batch)
            if guided:
                guided_loss = self.guided_attention_loss(outputs.attentions, labels, attention_mask)
                loss = loss + self.config.guided_attention_weight * guided_loss
        return CodecLMOutput(
            loss=loss,
            guided_attention_loss=guided_loss,
            logits=logits,
            speech_logits=speech_logits,
            past_key_values=outputs.past_key_values,
            hidden_states=hidden_states,
        )

    def speech_loss(
        self, speech_logits: torch.Tensor, labels: torch.LongTensor, num_items_in_batch: int | None = None
    ) -> torch.Tensor:
        """Next-token cross-entropy of the speech head; `labels` are unified ids with `-100` where not predicted."""
        targets = labels[:, 1:]  # (B, T - 1): the token each position predicts
        ignored = targets == -100
        head_targets = targets - self.config.speech_token_offset
        invalid = ~ignored & ((head_targets < 0) | (head_targets >= self.config.speech_vocab_size))
        if invalid.any():
            bad = targets[invalid][:5].tolist()
            raise ValueError(
                f"`labels` must be -100 or speech ids in [{self.config.speech_token_offset}, "
                f"{self.config.eos_token_id}] (speech codes and end-of-speech); got e.g. {bad}. Mask the text, "
                "separator and padding positions with -100 (see `CodecLMDataCollator`)."
            )
        head_targets = head_targets.masked_fill(ignored, -100)
        logits = speech_logits[:, :-1].float()  # (B, T - 1, K + 1)
        reduction = "sum" if num_items_in_batch is not None else "mean"
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), head_targets.reshape(-1), ignore_index=-100, reduction=reduction
        )
        if num_items_in_batch is not None:
            loss = loss / num_items_in_batch
        return loss

    def guided_attention_loss(
        self, attentions, labels: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Guided attention (`ardm_trl.models.guided_attention`) between each labelled speech position and the text of
        a `<bos> text <speech_start> speech <eos>` row (either padding side): the text sits between `<bos>` and the
        column that predicts the first labelled token. Rows without text do not count."""
        labelled = labels.ne(-100)  # (B, L)
        first = labelled.long().argmax(-1)  # column of the first speech token
        start = attention_mask.long().argmax(-1) if attention_mask is not None else torch.zeros_like(first)  # <bos>
        text_lengths = (first - 2 - start).clamp(min=0)
        columns = torch.arange(labels.shape[1], device=labels.device)[None]
        key_columns = start[:, None] + 1 + columns
        query_columns = first[:, None] - 1 + columns
        # rows without text (dropped for classifier-free guidance) have no alignment to guide
        query_lengths = labelled.long().sum(-1) * (text_lengths > 0)
        return guided_attention_loss(attentions, query_columns, query_lengths, key_columns, text_lengths,
                                     self.config.guided_attention_sigma, self.config.guided_attention_heads)

    # ------------------------------------------------------------------ prompts, teacher forcing, sampling
    @property
    def speech_token_layout(self) -> SpeechTokenLayout:
        """Where text and speech live in this model's vocabulary (from its config)."""
        return SpeechTokenLayout.from_config(self.config)

    def build_prompts(
        self, text_ids: list[list[int]] | torch.Tensor, device: torch.device | None = None
    ) -> tuple[torch.LongTensor, torch.LongTensor]:
        """Left-padded `<bos> text <speech_start>` prompts and their attention mask, `(B, P)` each."""
        return self.speech_token_layout.build_prompts(text_ids, device=device or self.device)

    def teacher_forced_speech_logits(
        self, sequences: torch.LongTensor, attention_mask: torch.Tensor, prompt_length: int
    ) -> torch.Tensor:
        """Speech-head logits `(B, L, codebook_size + 1)` predicting each of the `L` tokens after the prompt, in one
        teacher-forced pass over `sequences = prompt + speech` (the layout returned by `sample_speech`)."""
        return teacher_forced_speech_logits(self, sequences, attention_mask, prompt_length, self.speech_token_layout)

    def sample_speech(self, text_ids: list[list[int]] | torch.Tensor, **kwargs) -> SpeechSamplingOutput:
        """Sample speech tokens for a batch of texts: [`~models.codec_lm.sample_speech`] with this model's layout
        (same keyword arguments)."""
        return sample_speech(self, text_ids, self.speech_token_layout, **kwargs)


def build_speech_prompts(
    text_ids: list[list[int]] | torch.Tensor, config: CodecLMConfig, device: torch.device | None = None
) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Left-padded `<bos> text <speech_start>` prompts `(B, P)` and their attention mask, for a [`CodecLMConfig`]."""
    return SpeechTokenLayout.from_config(config).build_prompts(text_ids, device=device)


__all__ = [
    "CodecLMForSpeechSynthesis",
    "CodecLMOutput",
    "CodecLMPreTrainedModel",
    "UnifiedVocabularyHead",
    "build_speech_prompts",
]

"""Codec-token TTS language model: a Llama backbone over `<bos> text <speech_start> speech <eos>` with a speech head."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationConfig, GenerationMixin, LlamaModel, PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.utils import logging

from ..guided_attention import eager_attention, guided_attention_loss
from .configuration_codec_lm import CodecLMConfig

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


@dataclass
class SpeechSamplingOutput(ModelOutput):
    """
    Output of [`CodecLMForSpeechSynthesis.sample_speech`].

    Args:
        sequences (`torch.LongTensor` of shape `(batch_size, prompt_length + num_steps)`):
            Left-padded prompts followed by the sampled tokens (unified ids; `pad_token_id` after end-of-speech).
        attention_mask (`torch.LongTensor` of shape `(batch_size, prompt_length + num_steps)`):
            0 on the left padding of the prompts, 1 elsewhere.
        prompt_length (`int`):
            Length of the (padded) prompt part of `sequences`.
        speech_ids (`torch.LongTensor` of shape `(batch_size, num_steps)`):
            Sampled classes of the speech head (`0 .. codebook_size - 1` codes, `codebook_size` = end-of-speech;
            positions after end-of-speech hold `codebook_size`).
        completion_mask (`torch.BoolTensor` of shape `(batch_size, num_steps)`):
            True on the sampled positions up to and including end-of-speech.
        code_mask (`torch.BoolTensor` of shape `(batch_size, num_steps)`):
            True on the sampled speech codes (end-of-speech excluded).
        logits (`torch.FloatTensor` of shape `(batch_size, num_steps, codebook_size + 1)`):
            The processed logits (temperature, top-k) the tokens were sampled from.
        gumbel_noise (`torch.FloatTensor` of shape `(batch_size, num_steps, codebook_size + 1)`):
            The Gumbel noise used: `speech_ids = argmax(logits + gumbel_noise)` at every completed position.
    """

    sequences: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None
    prompt_length: int | None = None
    speech_ids: torch.LongTensor | None = None
    completion_mask: torch.BoolTensor | None = None
    code_mask: torch.BoolTensor | None = None
    logits: torch.FloatTensor | None = None
    gumbel_noise: torch.FloatTensor | None = None

    def codes_list(self) -> list[list[int]]:
        """The sampled speech codes of each row, end-of-speech and padding removed."""
        return [row[mask].tolist() for row, mask in zip(self.speech_ids, self.code_mask)]


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Positions that skip left padding: 0 for the first attended token of each row (pads get 0 as well)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def process_speech_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    forbid_eos: bool | torch.Tensor = False,
    top_p: float | None = None,
) -> torch.Tensor:
    """Temperature, "no end-of-speech yet", top-k and top-p (in this order) applied to speech-head logits
    `(..., K + 1)`.

    The same function is used when sampling and when replaying a sample, so both see the same distribution.
    `forbid_eos` is a bool or a boolean tensor broadcastable to `logits.shape[:-1]` (per position). `top_p` keeps the
    smallest set of most likely tokens whose probability reaches `top_p` (nucleus sampling; the most likely token is
    always kept).
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}; use a small value for near-greedy sampling.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
    logits = logits / temperature
    if isinstance(forbid_eos, torch.Tensor) or forbid_eos:
        forbid = torch.as_tensor(forbid_eos, dtype=torch.bool, device=logits.device)
        eos = logits[..., -1:].masked_fill(forbid[..., None], float("-inf"))
        logits = torch.cat([logits[..., :-1], eos], dim=-1)
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        outside = probs.cumsum(dim=-1) - probs >= top_p  # the mass before this token already reaches top_p
        logits = logits.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside), float("-inf"))
    return logits


def sample_gumbel(shape: torch.Size, generator: torch.Generator | None = None, device=None, dtype=torch.float32):
    """Standard Gumbel noise `-log(-log(U))`; `argmax(logits + noise)` is an exact sample of `softmax(logits)`."""
    uniform = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(uniform.clamp(min=tiny, max=1.0 - torch.finfo(dtype).eps)))


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

    # ------------------------------------------------------------------ prompts and teacher forcing
    def build_prompts(
        self, text_ids: list[list[int]] | torch.Tensor, device: torch.device | None = None
    ) -> tuple[torch.LongTensor, torch.LongTensor]:
        """Left-padded `<bos> text <speech_start>` prompts and their attention mask, `(B, P)` each."""
        return build_speech_prompts(text_ids, self.config, device=device or self.device)

    def teacher_forced_speech_logits(
        self, sequences: torch.LongTensor, attention_mask: torch.Tensor, prompt_length: int
    ) -> torch.Tensor:
        """Speech-head logits `(B, L, codebook_size + 1)` predicting each of the `L` tokens after the prompt, in one
        teacher-forced pass over `sequences = prompt + speech` (the layout returned by `sample_speech`)."""
        out = self(input_ids=sequences, attention_mask=attention_mask, use_cache=False)
        return out.speech_logits[:, prompt_length - 1 : -1]

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_speech(
        self,
        text_ids: list[list[int]] | torch.Tensor,
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        min_new_tokens: int = 0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        top_p: float | None = None,
        guidance_scale: float = 1.0,
    ) -> SpeechSamplingOutput:
        """Sample speech tokens for a batch of texts (different lengths allowed), stopping each row at end-of-speech.

        Tokens are drawn with the Gumbel-max trick, `argmax(process(logits) + g)`, an exact sample of the processed
        distribution; the noise `g` is returned so that a later teacher-forced pass can replay the very same sample
        as a straight-through Gumbel-Softmax (DiffRO).

        Args:
            text_ids (`list[list[int]]` or `torch.LongTensor` of shape `(batch_size, text_len)`): text-unit ids.
            max_new_tokens (`int`, *optional*, defaults to 500): maximum number of sampled tokens (end-of-speech
                included); rows that do not stop are cut there.
            temperature (`float`, *optional*, defaults to 1.0): softmax temperature.
            top_k (`int`, *optional*): keep only the `top_k` most likely classes.
            min_new_tokens (`int`, *optional*, defaults to 0): end-of-speech is forbidden before this many tokens.
            generator (`torch.Generator`, *optional*): source of the Gumbel noise (same seed, same sample).
            use_cache (`bool`, *optional*, defaults to `True`): KV cache (`False` recomputes the full prefix at every
                step; both give the same tokens).
            top_p (`float`, *optional*): nucleus sampling: keep the smallest set of most likely classes whose
                probability reaches `top_p` (after `top_k`).
            guidance_scale (`float`, *optional*, defaults to 1.0): classifier-free guidance on the text: the
                log-probabilities `log p(x | no text) + guidance_scale * (log p(x | text) - log p(x | no text))` are
                sampled (before temperature, top-k and top-p), the text-free rows `<bos> <speech_start> speech` running
                in the same batch. 1.0 is plain sampling. The returned `logits` are the guided ones; a teacher-forced
                pass (DiffRO's replay) sees the plain model, so the trainers sample with 1.0.
        """
        K = self.config.codebook_size
        if guidance_scale <= 0:
            raise ValueError(f"`guidance_scale` must be > 0 (1.0 = no guidance), got {guidance_scale}.")
        guided = guidance_scale != 1.0
        if isinstance(text_ids, torch.Tensor):
            text_ids = [row.tolist() for row in text_ids]
        batch_size = len(text_ids)
        # with guidance, rows B..2B-1 are the text-free copies; they get the same tokens as rows 0..B-1
        prompts, attention_mask = self.build_prompts(list(text_ids) + [[]] * batch_size if guided else text_ids)
        rows, prompt_length = prompts.shape
        sequences, positions = prompts, position_ids_from_attention_mask(attention_mask)
        cache = DynamicCache(config=self.config.lm_config) if use_cache else None
        finished = torch.zeros(batch_size, dtype=torch.bool, device=prompts.device)
        copies = 2 if guided else 1
        step_ids, step_logits, step_noise, step_done = [], [], [], []
        next_input, next_positions = prompts, positions
        for step in range(max_new_tokens):
            # 1. next-token logits of the speech head (only the new token when the cache holds the prefix)
            if use_cache:
                out = self(
                    input_ids=next_input,
                    attention_mask=attention_mask,
                    position_ids=next_positions,
                    past_key_values=cache,
                    use_cache=True,
                )
            else:
                out = self(input_ids=sequences, attention_mask=attention_mask, position_ids=positions, use_cache=False)
            logits = out.speech_logits[:, -1].float()  # (copies * B, K + 1)
            if guided:
                conditional, text_free = logits.log_softmax(-1).chunk(2)
                logits = text_free + guidance_scale * (conditional - text_free)
            logits = process_speech_logits(
                logits, temperature, top_k, forbid_eos=step < min_new_tokens, top_p=top_p
            )  # (B, K + 1)
            # 2. Gumbel-max sample, kept noise
            noise = sample_gumbel(logits.shape, generator=generator, device=logits.device)
            token = (logits + noise).argmax(-1)  # (B,)
            token = torch.where(finished, torch.full_like(token, K), token)
            step_done.append(~finished)
            step_ids.append(token)
            step_logits.append(logits)
            step_noise.append(noise)
            # 3. append to the sequence (pad after end-of-speech)
            unified = torch.where(
                finished, torch.full_like(token, self.config.pad_token_id), token + self.config.speech_token_offset
            )
            finished = finished | (token == K)
            next_input = unified.repeat(copies)[:, None]
            next_positions = positions[:, -1:] + 1
            sequences = torch.cat([sequences, next_input], dim=1)
            positions = torch.cat([positions, next_positions], dim=1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(rows, 1)], dim=1)
            if finished.all():
                break
        sequences, attention_mask = sequences[:batch_size], attention_mask[:batch_size]
        speech_ids = torch.stack(step_ids, 1)
        completion_mask = torch.stack(step_done, 1)
        return SpeechSamplingOutput(
            sequences=sequences,
            attention_mask=attention_mask,
            prompt_length=prompt_length,
            speech_ids=speech_ids,
            completion_mask=completion_mask,
            code_mask=completion_mask & (speech_ids < K),
            logits=torch.stack(step_logits, 1),
            gumbel_noise=torch.stack(step_noise, 1),
        )


def build_speech_prompts(
    text_ids: list[list[int]] | torch.Tensor, config: CodecLMConfig, device: torch.device | None = None
) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Left-padded `<bos> text <speech_start>` prompts `(B, P)` and their attention mask."""
    if isinstance(text_ids, torch.Tensor):
        text_ids = [row.tolist() for row in text_ids]
    rows = []
    for i, ids in enumerate(text_ids):
        ids = [int(t) for t in ids]
        if any(t < 0 or t >= config.text_vocab_size for t in ids):
            raise ValueError(
                f"text_ids[{i}] holds ids outside the text range [0, {config.text_vocab_size}); pass text-unit ids "
                "without special tokens (the prompt's <bos> and <speech_start> are added here)."
            )
        rows.append([config.bos_token_id, *ids, config.speech_start_token_id])
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), config.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, length - len(r) :] = torch.tensor(r)
        attention_mask[i, length - len(r) :] = 1
    return input_ids.to(device), attention_mask.to(device)


__all__ = [
    "CodecLMForSpeechSynthesis",
    "CodecLMOutput",
    "CodecLMPreTrainedModel",
    "SpeechSamplingOutput",
    "UnifiedVocabularyHead",
    "build_speech_prompts",
    "position_ids_from_attention_mask",
    "process_speech_logits",
    "sample_gumbel",
]

"""Gumbel-max sampling of speech tokens from a causal LM, keeping the noise so that DiffRO can replay the very same
sample as a straight-through Gumbel-Softmax. Works on [`CodecLMForSpeechSynthesis`] and on any Hugging Face causal LM
whose vocabulary holds a block of speech tokens ([`SpeechTokenLayout`])."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
from transformers.modeling_outputs import ModelOutput

from .layout import SpeechTokenLayout


@dataclass
class SpeechSamplingOutput(ModelOutput):
    """
    Output of [`sample_speech`] (and [`CodecLMForSpeechSynthesis.sample_speech`]).

    Args:
        sequences (`torch.LongTensor` of shape `(batch_size, prompt_length + num_steps)`):
            Left-padded prompts followed by the sampled tokens (vocabulary ids; `pad_token_id` after end-of-speech).
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
    `forbid_eos` is a bool or a boolean tensor broadcastable to `logits.shape[:-1]` (per position). Temperature,
    top-k and top-p are transformers' `TemperatureLogitsWarper`, `TopKLogitsWarper` and `TopPLogitsWarper` (top-p
    keeps the smallest set of most likely tokens whose probability reaches `top_p`; the most likely token is always
    kept).
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}; use a small value for near-greedy sampling.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
    logits = TemperatureLogitsWarper(temperature)(None, logits) if temperature != 1.0 else logits
    # kept here, not in a transformers processor: the replay forbids end-of-speech per position (B, L), not per step
    if isinstance(forbid_eos, torch.Tensor) or forbid_eos:
        forbid = torch.as_tensor(forbid_eos, dtype=torch.bool, device=logits.device)
        eos = logits[..., -1:].masked_fill(forbid[..., None], float("-inf"))
        logits = torch.cat([logits[..., :-1], eos], dim=-1)
    warpers = LogitsProcessorList()
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    if not warpers:
        return logits
    flat = logits.reshape(-1, logits.shape[-1])  # the warpers read (batch, vocab) scores
    return warpers(None, flat).reshape(logits.shape)


def sample_gumbel(shape: torch.Size, generator: torch.Generator | None = None, device=None, dtype=torch.float32):
    """Standard Gumbel noise `-log(-log(U))`; `argmax(logits + noise)` is an exact sample of `softmax(logits)`."""
    uniform = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(uniform.clamp(min=tiny, max=1.0 - torch.finfo(dtype).eps)))


@torch.no_grad()
def sample_speech(
    model: Any,
    text_ids: list[list[int]] | torch.Tensor,
    layout: SpeechTokenLayout | None = None,
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
    distribution over the `K` speech codes and end-of-speech; the noise `g` is returned so that a later
    teacher-forced pass can replay the very same sample as a straight-through Gumbel-Softmax (DiffRO).

    Args:
        model: a causal LM called as `model(input_ids=, attention_mask=, position_ids=, past_key_values=,
            use_cache=)`: a [`CodecLMForSpeechSynthesis`] or any `AutoModelForCausalLM` (or a PEFT wrapper of one).
        text_ids (`list[list[int]]` or `torch.LongTensor` of shape `(batch_size, text_len)`): text ids, without
            special tokens.
        layout ([`SpeechTokenLayout`], *optional*): where the speech tokens are; by default
            `SpeechTokenLayout.from_model(model)`.
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
            sampled (before temperature, top-k and top-p), the text-free rows `[bos] [speech_start] speech` running in
            the same batch. 1.0 is plain sampling. The returned `logits` are the guided ones; a teacher-forced pass
            (DiffRO's replay) sees the plain model, so the trainers sample with 1.0.
    """
    layout = layout or SpeechTokenLayout.from_model(model)
    K = layout.codebook_size
    if guidance_scale <= 0:
        raise ValueError(f"`guidance_scale` must be > 0 (1.0 = no guidance), got {guidance_scale}.")
    guided = guidance_scale != 1.0
    if isinstance(text_ids, torch.Tensor):
        text_ids = [row.tolist() for row in text_ids]
    batch_size = len(text_ids)
    device = next(model.parameters()).device
    # with guidance, rows B..2B-1 are the text-free copies; they get the same tokens as rows 0..B-1
    prompts, attention_mask = layout.build_prompts(list(text_ids) + [[]] * batch_size if guided else text_ids, device)
    rows, prompt_length = prompts.shape
    sequences, positions = prompts, position_ids_from_attention_mask(attention_mask)
    cache = None
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    copies = 2 if guided else 1
    step_ids, step_logits, step_noise, step_done = [], [], [], []
    next_input, next_positions = prompts, positions
    for step in range(max_new_tokens):
        # 1. next-token logits over the speech codes and end-of-speech (only the new token when the cache holds the
        #    prefix)
        if use_cache:
            out = model(input_ids=next_input, attention_mask=attention_mask, position_ids=next_positions,
                        past_key_values=cache, use_cache=True)  # fmt: skip
            cache = out.past_key_values
        else:
            out = model(input_ids=sequences, attention_mask=attention_mask, position_ids=positions, use_cache=False)
        logits = layout.speech_logits(out)[:, -1].float()  # (copies * B, K + 1)
        if guided:
            conditional, text_free = logits.log_softmax(-1).chunk(2)
            logits = text_free + guidance_scale * (conditional - text_free)
        logits = process_speech_logits(logits, temperature, top_k, forbid_eos=step < min_new_tokens, top_p=top_p)
        # 2. Gumbel-max sample, kept noise
        noise = sample_gumbel(logits.shape, generator=generator, device=logits.device)
        token = (logits + noise).argmax(-1)  # (B,)
        token = torch.where(finished, torch.full_like(token, K), token)
        step_done.append(~finished)
        step_ids.append(token)
        step_logits.append(logits)
        step_noise.append(noise)
        # 3. append to the sequence (pad after end-of-speech)
        unified = layout.to_vocabulary(token, finished)
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


def teacher_forced_speech_logits(
    model: Any,
    sequences: torch.LongTensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    layout: SpeechTokenLayout | None = None,
) -> torch.Tensor:
    """Logits `(B, L, K + 1)` of `model` predicting each of the `L` tokens after the prompt, in one teacher-forced
    pass over `sequences = prompt + speech` (the layout [`sample_speech`] returns; positions skip the left padding,
    as when sampling)."""
    layout = layout or SpeechTokenLayout.from_model(model)
    out = model(input_ids=sequences, attention_mask=attention_mask,
                position_ids=position_ids_from_attention_mask(attention_mask), use_cache=False)  # fmt: skip
    return layout.speech_logits(out)[:, prompt_length - 1 : -1]


__all__ = [
    "SpeechSamplingOutput",
    "position_ids_from_attention_mask",
    "process_speech_logits",
    "sample_gumbel",
    "sample_speech",
    "teacher_forced_speech_logits",
]

"""Seeded, batched sampling of a codec LM over many texts, and its decoding to audio (evaluations and benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_and_decode", "sample_codes"]


@torch.no_grad()
def sample_codes(
    model,
    text_ids: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    top_p: float | None = None,
    guidance_scale: float = 1.0,
) -> list[list[int]]:
    """Speech codes sampled for each text, `batch_size` texts at a time from one seeded generator.

    Args:
        model ([`CodecLMForSpeechSynthesis`]): the codec LM.
        text_ids (`list[list[int]]`): text token ids of each utterance (no special tokens).
        max_new_tokens (`int`): most speech tokens per utterance.
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature.
        top_k (`int`, *optional*): keep only the `top_k` most likely speech tokens at each step.
        seed (`int`, *optional*, defaults to `0`): seed of the generator (same seed, same codes).
        batch_size (`int`, *optional*, defaults to `16`): texts per `sample_speech` call.
        top_p (`float`, *optional*): nucleus sampling threshold (after `top_k`).
        guidance_scale (`float`, *optional*, defaults to `1.0`): classifier-free guidance on the text (see
            [`~CodecLMForSpeechSynthesis.sample_speech`]).

    Returns:
        `list[list[int]]`: per text, its speech codes up to (not including) end-of-speech.
    """
    generator = torch.Generator(device=model.device).manual_seed(seed)
    codes: list[list[int]] = []
    for i in range(0, len(text_ids), batch_size):
        out = model.sample_speech(text_ids[i : i + batch_size], max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                                  guidance_scale=guidance_scale)  # fmt: skip
        codes.extend(out.codes_list())
    return codes


def sample_and_decode(
    model,
    text_ids: list[list[int]],
    speech_tokenizer,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    batch_size: int = 16,
    top_p: float | None = None,
    guidance_scale: float = 1.0,
) -> list[np.ndarray]:
    """[`sample_codes`], then each batch decoded to waveforms by `speech_tokenizer`
    ([`~ardm_trl.audio.decode_codes`])."""
    from ...audio.speech_tokens import decode_codes

    codes = sample_codes(model, text_ids, max_new_tokens, temperature, top_k, seed, batch_size, top_p=top_p,
                         guidance_scale=guidance_scale)  # fmt: skip
    chunks = (codes[i : i + batch_size] for i in range(0, len(codes), batch_size))
    return [waveform for chunk in chunks for waveform in decode_codes(speech_tokenizer, chunk)]

"""Speech tokens <-> waveforms with a speech tokenizer: what the codec LM's scripts, benchmarks and rewards share to
turn sampled codes into audio and to measure the tokenizer's own round trip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .modeling_speech_tokenizer import SpeechTokenizerModel
from .pretrained import load_pretrained_tokenizer

__all__ = ["decode_codes", "load_speech_tokenizer", "resynthesize"]


def load_speech_tokenizer(path: str | None = None) -> SpeechTokenizerModel:
    """The speech tokenizer saved in `path` (a local folder or a Hub id), or the bundled one when `path` is `None`,
    in eval mode."""
    tokenizer = SpeechTokenizerModel.from_pretrained(path) if path else load_pretrained_tokenizer()
    return tokenizer.eval()


@torch.no_grad()
def decode_codes(speech_tokenizer: SpeechTokenizerModel, codes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Waveforms (at `speech_tokenizer.sampling_rate`) of lists of speech codes; an empty list decodes as the single
    code 0, so every input gets a waveform."""
    return speech_tokenizer.decode_list([torch.tensor(list(c) if len(c) else [0]) for c in codes])


@torch.no_grad()
def resynthesize(
    speech_tokenizer: SpeechTokenizerModel, audio: Sequence[np.ndarray], batch_size: int = 16
) -> list[np.ndarray]:
    """The speech tokenizer's round trip (encode to codes, then decode) of waveforms at its sampling rate,
    `batch_size` at a time: the best any generator of these tokens can sound."""
    out: list[np.ndarray] = []
    for i in range(0, len(audio), batch_size):
        codes = [c.tolist() for c in speech_tokenizer.encode_list(list(audio[i : i + batch_size]))]
        out.extend(decode_codes(speech_tokenizer, codes))
    return out

"""Where text and speech tokens live in a causal LM's vocabulary: the one description the samplers and DiffRO need to
use any Hugging Face causal LM as a codec-token TTS model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SpeechTokenLayout:
    r"""
    The speech-token layout of a causal LM's vocabulary.

    A prompt is `[bos] text [speech_start]` (left-padded with `pad`), followed by the speech codes, each code `c`
    written as the token `speech_token_offset + c`, and the end-of-speech token. This covers the library's own
    [`CodecLMForSpeechSynthesis`] (text, specials, speech, end of speech) and CosyVoice2's order (text, speech, end of
    speech, then start / task / pad ids): only the ids differ.

    Parameters:
        codebook_size (`int`):
            Number of speech codes `K`; they occupy `[speech_token_offset, speech_token_offset + K)`.
        speech_token_offset (`int`):
            Vocabulary id of speech code 0.
        eos_token_id (`int`):
            End of speech (outside the speech range).
        speech_start_token_id (`int`):
            Ends the text and starts the speech (CosyVoice's "task id").
        pad_token_id (`int`):
            Left padding of prompts, and the filler after a row's end of speech.
        bos_token_id (`int`, *optional*):
            Start of sequence before the text; `None` for none.
        text_token_offset (`int`, *optional*, defaults to `0`):
            Added to every text id of a prompt (0 when the tokenizer already gives vocabulary ids).
        text_vocab_size (`int`, *optional*):
            Text ids must lie in `[0, text_vocab_size)` (checked); `None` checks only that the ids are in the
            vocabulary.
    """

    codebook_size: int
    speech_token_offset: int
    eos_token_id: int
    speech_start_token_id: int
    pad_token_id: int
    bos_token_id: int | None = None
    text_token_offset: int = 0
    text_vocab_size: int | None = None

    def __post_init__(self):
        if self.codebook_size < 1:
            raise ValueError(f"`codebook_size` must be >= 1, got {self.codebook_size}.")
        speech = range(self.speech_token_offset, self.speech_token_offset + self.codebook_size)
        specials = {"eos_token_id": self.eos_token_id, "speech_start_token_id": self.speech_start_token_id,
                    "pad_token_id": self.pad_token_id, "bos_token_id": self.bos_token_id}  # fmt: skip
        inside = [name for name, value in specials.items() if value is not None and value in speech]
        if inside or self.speech_token_offset < 0:
            raise ValueError(
                f"The speech range [{speech.start}, {speech.stop}) must not hold special tokens ({inside}) and must "
                "start at an id >= 0."
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SpeechTokenLayout:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown speech-token layout fields {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_model(cls, model: Any, layout: SpeechTokenLayout | dict[str, Any] | None = None) -> SpeechTokenLayout:
        """The layout of `model`: `layout` if given, else the `speech_token_layout` its config saved, else the fields
        of a [`CodecLMConfig`]. Raises `ValueError` (naming what to pass) when none applies, or when an id lies
        outside the model's vocabulary."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        layout = cls.from_config(base.config, layout)
        if layout is None:
            raise ValueError(
                f"{type(base).__name__} does not say where its speech tokens are: pass `speech_token_layout="
                "SpeechTokenLayout(codebook_size=..., speech_token_offset=..., eos_token_id=..., "
                "speech_start_token_id=..., pad_token_id=..., bos_token_id=...)` (saved with the model afterwards)."
            )
        layout.check_vocabulary(_vocab_size(base))
        return layout

    @classmethod
    def from_config(
        cls, config: Any, layout: SpeechTokenLayout | dict[str, Any] | None = None
    ) -> SpeechTokenLayout | None:
        """`layout`, else the config's saved `speech_token_layout`, else a [`CodecLMConfig`]'s fields, else `None`."""
        if layout is None:
            layout = getattr(config, "speech_token_layout", None)
        if layout is None and all(getattr(config, key, None) is not None for key in _CODEC_LM_FIELDS):
            layout = {key: getattr(config, key) for key in _CODEC_LM_FIELDS}
            layout["text_vocab_size"] = getattr(config, "text_vocab_size", None)
        if layout is None or isinstance(layout, cls):
            return layout
        return cls.from_dict(dict(layout))

    def check_vocabulary(self, vocab_size: int | None) -> None:
        """Raise `ValueError` when an id of the layout does not fit a vocabulary of `vocab_size` entries."""
        if vocab_size is None:
            return
        ids = {"speech range end": self.speech_token_offset + self.codebook_size - 1, "eos_token_id": self.eos_token_id,
               "speech_start_token_id": self.speech_start_token_id, "pad_token_id": self.pad_token_id,
               "bos_token_id": self.bos_token_id}  # fmt: skip
        outside = {name: value for name, value in ids.items() if value is not None and not 0 <= value < vocab_size}
        if self.text_vocab_size is not None and self.text_token_offset + self.text_vocab_size > vocab_size:
            outside["text range end"] = self.text_token_offset + self.text_vocab_size - 1
        if outside:
            raise ValueError(f"Speech-token layout ids {outside} lie outside the model's vocabulary of {vocab_size}.")

    # ------------------------------------------------------------------ use
    def build_prompts(
        self, text_ids: list[list[int]] | torch.Tensor, device: torch.device | None = None
    ) -> tuple[torch.LongTensor, torch.LongTensor]:
        """Left-padded `[bos] text [speech_start]` prompts `(B, P)` and their attention mask."""
        if isinstance(text_ids, torch.Tensor):
            text_ids = [row.tolist() for row in text_ids]
        rows = []
        for i, ids in enumerate(text_ids):
            ids = [int(t) for t in ids]
            if self.text_vocab_size is not None and any(t < 0 or t >= self.text_vocab_size for t in ids):
                raise ValueError(
                    f"text_ids[{i}] holds ids outside the text range [0, {self.text_vocab_size}); pass text ids "
                    "without special tokens (the prompt's start and speech-start tokens are added here)."
                )
            head = [] if self.bos_token_id is None else [self.bos_token_id]
            rows.append([*head, *(t + self.text_token_offset for t in ids), self.speech_start_token_id])
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, length - len(r) :] = torch.tensor(r)
            attention_mask[i, length - len(r) :] = 1
        return input_ids.to(device), attention_mask.to(device)

    def speech_logits(self, outputs: Any) -> torch.Tensor:
        """Logits `(..., K + 1)` over the speech codes and end of speech (last), from a model's output: its
        `speech_logits` where it has them, else the matching columns of its `logits`."""
        speech = getattr(outputs, "speech_logits", None)
        if speech is not None:
            return speech
        logits = outputs.logits
        codes = logits[..., self.speech_token_offset : self.speech_token_offset + self.codebook_size]
        return torch.cat([codes, logits[..., self.eos_token_id : self.eos_token_id + 1]], dim=-1)

    def to_vocabulary(self, tokens: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids of sampled speech-head classes `(B,)` (code `c` or `K` = end of speech); `pad` where
        `finished`."""
        ids = torch.where(tokens == self.codebook_size, torch.full_like(tokens, self.eos_token_id),
                          tokens + self.speech_token_offset)  # fmt: skip
        return torch.where(finished, torch.full_like(tokens, self.pad_token_id), ids)


_CODEC_LM_FIELDS = ("codebook_size", "speech_token_offset", "eos_token_id", "speech_start_token_id", "pad_token_id",
                    "bos_token_id")  # fmt: skip


def _vocab_size(model: Any) -> int | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None) if head is not None else None
    if weight is not None:
        return int(weight.shape[0])
    return getattr(model.config, "vocab_size", None)


__all__ = ["SpeechTokenLayout"]

"""Batching of (text, speech) pairs for codec-LM pretraining."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .configuration_codec_lm import CodecLMConfig


@dataclass
class CodecLMDataCollator:
    """Builds right-padded `<bos> text <speech_start> speech <eos>` batches with labels on the speech part.

    Each feature holds `text_ids` (text-unit ids) and `speech_ids` (codes of the speech tokenizer, `0 ..
    codebook_size - 1`). Labels are the input ids with `-100` on `<bos>`, the text, `<speech_start>` and padding, so
    the loss of [`CodecLMForSpeechSynthesis`] covers the speech codes and end-of-speech.

    Args:
        config ([`CodecLMConfig`]): gives the vocabulary layout.
        max_speech_tokens (`int`, *optional*): truncate longer speech (end-of-speech is then not appended).
        text_dropout_prob (`float`, *optional*, defaults to `0.0`): probability of dropping a row's text
            (`<bos> <speech_start> speech <eos>`), drawn from torch's global generator (seeded by the `Trainer`);
            `examples/pretrain_codec_lm.py` passes `config.cfg_dropout_prob`. A `Trainer` uses one collator for the
            training and the evaluation set, so its evaluation loss then also covers text-free rows.
    """

    config: CodecLMConfig
    max_speech_tokens: int | None = None
    text_dropout_prob: float = 0.0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        cfg = self.config
        rows, label_rows = [], []
        for i, feature in enumerate(features):
            text = [int(t) for t in feature["text_ids"]]
            speech = [int(t) for t in feature["speech_ids"]]
            if any(t < 0 or t >= cfg.text_vocab_size for t in text):
                raise ValueError(f"features[{i}]['text_ids'] holds ids outside [0, {cfg.text_vocab_size}).")
            if any(t < 0 or t >= cfg.codebook_size for t in speech):
                raise ValueError(f"features[{i}]['speech_ids'] holds codes outside [0, {cfg.codebook_size}).")
            if self.text_dropout_prob > 0 and torch.rand(()).item() < self.text_dropout_prob:
                text = []
            truncated = self.max_speech_tokens is not None and len(speech) > self.max_speech_tokens
            speech = speech[: self.max_speech_tokens] if truncated else speech
            speech_part = [t + cfg.speech_token_offset for t in speech] + ([] if truncated else [cfg.eos_token_id])
            prefix = [cfg.bos_token_id, *text, cfg.speech_start_token_id]
            rows.append(prefix + speech_part)
            label_rows.append([-100] * len(prefix) + speech_part)
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), cfg.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (r, lab) in enumerate(zip(rows, label_rows)):
            input_ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(lab)] = torch.tensor(lab)
            attention_mask[i, : len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


__all__ = ["CodecLMDataCollator"]

"""Collators that batch variable-length text ids and latent sequences for the ARDM and its trainers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def pad_sequences(
    sequences: list[torch.Tensor], multiple_of: int = 1, padding_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad tensors of shape `(L_i, ...)` to `(B, L, ...)` with `L` a multiple of `multiple_of`; returns the batch
    and a `(B, L)` bool mask of real positions."""
    longest = max((s.shape[0] for s in sequences), default=0)
    longest = -(-longest // multiple_of) * multiple_of
    tail = sequences[0].shape[1:] if sequences else ()
    dtype = sequences[0].dtype if sequences else torch.float32
    batch = torch.full((len(sequences), longest, *tail), padding_value, dtype=dtype)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for i, seq in enumerate(sequences):
        batch[i, : seq.shape[0]] = seq
        mask[i, : seq.shape[0]] = True
    return batch, mask


@dataclass
class ARDMDataCollator:
    """Batch rows with `text_input_ids` (list of ints) and `latents` (`(F, D)` nested lists or tensors), and optional
    `prompt_latents`. Latents are padded to a multiple of `patch_size` frames; `labels` repeats `latents` so a plain
    `transformers.Trainer` computes the pretraining loss.

    Args:
        patch_size (`int`): frames per patch of the model.
        text_pad_token_id (`int`, *optional*, defaults to `0`): padding id of the text.
        keep_columns (`tuple[str, ...]`, *optional*): other columns passed through as lists (e.g. `text` for rewards).
    """

    patch_size: int
    text_pad_token_id: int = 0
    keep_columns: tuple[str, ...] = ()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        text = [torch.as_tensor(f["text_input_ids"], dtype=torch.long) for f in features]
        text_ids, text_mask = pad_sequences(text, padding_value=self.text_pad_token_id)
        batch: dict[str, Any] = {"text_input_ids": text_ids, "text_attention_mask": text_mask.long()}
        if "latents" in features[0]:
            latents = [torch.as_tensor(f["latents"], dtype=torch.float32) for f in features]
            batch["latents"], batch["latents_mask"] = pad_sequences(latents, self.patch_size)
            batch["labels"] = batch["latents"]
        if features[0].get("prompt_latents") is not None:
            prompts = [torch.as_tensor(f["prompt_latents"], dtype=torch.float32) for f in features]
            batch["prompt_latents"], batch["prompt_latents_mask"] = pad_sequences(prompts, self.patch_size)
        for column in self.keep_columns:
            batch[column] = [f.get(column) for f in features]
        return batch


__all__ = ["ARDMDataCollator", "pad_sequences"]

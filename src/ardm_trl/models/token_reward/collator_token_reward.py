"""Batching of labelled speech-token sequences for training the token reward model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .configuration_token_reward import TokenRewardConfig


def pad_text_ids(text_ids: list[list[int]], device: torch.device | None = None) -> torch.LongTensor:
    """Right-pad text-unit id lists with `-100` (the CTC padding convention of [`TokenRewardModel`])."""
    length = max([len(t) for t in text_ids] + [1])
    out = torch.full((len(text_ids), length), -100, dtype=torch.long)
    for i, ids in enumerate(text_ids):
        out[i, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
    return out.to(device)


@dataclass
class TokenRewardDataCollator:
    """Pads `speech_ids` (codes) and `text_ids`, and maps attribute columns to class indices.

    Each feature holds `speech_ids` and optionally `text_ids` (`None` = no text: no CTC loss), one column per attribute task of the config (a class
    name such as `"fast"` or an index; missing / `None` -> not trained on) and `quality_column` (a float).

    Args:
        config ([`TokenRewardConfig`]): gives the attribute tasks and their class names.
        quality_column (`str`, *optional*, defaults to `"quality"`): the column with the quality target.
        max_length (`int`, *optional*): truncate longer token sequences.
    """

    config: TokenRewardConfig
    quality_column: str = "quality"
    max_length: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        speech = [list(f["speech_ids"])[: self.max_length] for f in features]
        length = max(max(len(s) for s in speech), 1)
        input_ids = torch.zeros((len(features), length), dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for i, s in enumerate(speech):
            input_ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            attention_mask[i, : len(s)] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if any(f.get("text_ids") is not None for f in features):
            batch["text_ids"] = pad_text_ids([f.get("text_ids") or [] for f in features])
        labels = {}
        for task in self.config.attribute_labels:
            if any(f.get(task) is not None for f in features):
                labels[task] = torch.tensor(
                    [-100 if f.get(task) is None else self.config.label_to_id(task, f[task]) for f in features]
                )
        if labels:
            batch["attribute_labels"] = labels
        if self.config.use_quality_head and any(f.get(self.quality_column) is not None for f in features):
            batch["quality_labels"] = torch.tensor(
                [
                    float("nan") if f.get(self.quality_column) is None else float(f[self.quality_column])
                    for f in features
                ]
            )
        return batch


__all__ = ["TokenRewardDataCollator", "pad_text_ids"]

"""Training configuration of the multi-task token reward model (DiffRO's MTR)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class TokenRewardTrainingConfig(TrainingArguments):
    r"""
    Configuration class for the [`TokenRewardTrainer`].

    Only the parameters specific to the token reward model are listed here; see [`~transformers.TrainingArguments`]
    for the others. Defaults may differ from those of [`~transformers.TrainingArguments`].

    Parameters:
        task_weights (`dict[str, float]` or `str`, *optional*):
            Weight of each task loss in the total loss, by task name: `"ctc"`, each attribute task of the model
            (e.g. `"rate_level"`) and `"quality"`. A JSON string is accepted (command line). Tasks not listed weigh
            `1.0`; a weight of `0.0` turns a task off.
        quality_column (`str`, *optional*, defaults to `"quality"`):
            Dataset column holding the quality target (e.g. the DNSMOS of the decoded audio).
        max_length (`int`, *optional*):
            Truncate longer token sequences.
        learning_rate (`float`, *optional*, defaults to `3e-4`):
            Initial learning rate of AdamW (higher than `TrainingArguments`' default: the model is small and trained
            from scratch).
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            Keep every dataset column: the collator reads the attribute columns by task name.
    """

    task_weights: dict | str | None = field(
        default=None,
        metadata={"help": "Weight of each task loss by name ('ctc', attribute task names, 'quality'); default 1.0."},
    )
    quality_column: str = field(default="quality", metadata={"help": "Dataset column with the quality target."})
    max_length: int | None = field(default=None, metadata={"help": "Truncate longer token sequences."})
    learning_rate: float = field(default=3e-4, metadata={"help": "Initial learning rate of AdamW."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep every dataset column (the collator reads the attribute columns)."}
    )

    def __post_init__(self):
        if isinstance(self.task_weights, str):
            self.task_weights = json.loads(self.task_weights)
        for task, weight in (self.task_weights or {}).items():
            if float(weight) < 0:
                raise ValueError(f"`task_weights['{task}']` must be >= 0, got {weight}.")
        super().__post_init__()


__all__ = ["TokenRewardTrainingConfig"]

"""Differentiable reward callables over soft speech tokens, read from a [`TokenRewardModel`] (for DiffRO).

Every callable follows the DiffRO reward signature:

```python
reward(soft_tokens: Tensor, token_mask: Tensor, **columns) -> Tensor
```

`soft_tokens` `(B, T, codebook_size)` are (straight-through) one-hots, `token_mask` `(B, T)` marks the speech codes,
`columns` holds `speech_ids`, `prompts` and every dataset column as a list of length `B`. The result is `(B,)`,
differentiable w.r.t. `soft_tokens`. The reward model itself is frozen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .collator_token_reward import pad_text_ids
from .modeling_token_reward import TokenRewardModel


class _TokenRewardFunction(nn.Module):
    """Holds a frozen [`TokenRewardModel`] in eval mode (a module, so trainers can move it to their device)."""

    def __init__(self, model: TokenRewardModel, name: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = self.__name__ = name

    def train(self, mode: bool = True) -> _TokenRewardFunction:
        # The reward model stays in eval mode (no dropout) whatever the trainer does.
        return super().train(False)


class CTCReward(_TokenRewardFunction):
    """Pronunciation reward: the CTC log-likelihood `log P(text | tokens)` of the row's text.

    Args:
        model ([`TokenRewardModel`]): the MTR.
        text_column (`str`, *optional*, defaults to `"text_ids"`): the dataset column with the text units (the CTC
            vocabulary of the MTR).
        reduction (`str`, *optional*, defaults to `"sum"`): `"sum"` (per sentence, the paper's `log P(text | tokens)`)
            or `"mean"` (divided by the text length). The sum is on the scale of DiffRO's summed KL; with `"mean"` the
            reward is ~len(text) times weaker against `beta` and did not improve pronunciation in the measured runs
            (see the DiffRO trainer docs).
    """

    def __init__(self, model: TokenRewardModel, text_column: str = "text_ids", reduction: str = "sum"):
        if reduction not in ("sum", "mean"):
            raise ValueError(f"`reduction` must be 'sum' or 'mean', got {reduction!r}.")
        super().__init__(model, name="ctc")
        self.text_column, self.reduction = text_column, reduction

    def forward(self, soft_tokens: torch.Tensor, token_mask: torch.Tensor, **columns: Any) -> torch.Tensor:
        if self.text_column not in columns:
            raise ValueError(f"CTCReward needs the dataset column '{self.text_column}' (the text units to score).")
        text_ids = pad_text_ids(columns[self.text_column], device=soft_tokens.device)
        return self.model.ctc_log_likelihood(
            text_ids, soft_tokens=soft_tokens, attention_mask=token_mask, reduction=self.reduction
        )


class AttributeReward(_TokenRewardFunction):
    """Zero-shot control reward: log-probability of the row's target class for one attribute task.

    The target is read per row from `target_column` (a class name such as `"fast"` or an index); rows whose target
    is `None` get reward 0 (no gradient), so one dataset can mix controlled and uncontrolled prompts.

    Args:
        model ([`TokenRewardModel`]): the MTR.
        task (`str`): the attribute task, e.g. `"rate_level"`.
        target_column (`str`, *optional*): defaults to `"target_<task>"`.
    """

    def __init__(self, model: TokenRewardModel, task: str, target_column: str | None = None):
        if task not in model.config.attribute_labels:
            raise ValueError(
                f"Unknown attribute task '{task}'; the model has {sorted(model.config.attribute_labels)}."
            )
        super().__init__(model, name=f"attribute_{task}")
        self.task = task
        self.target_column = target_column or f"target_{task}"

    def forward(self, soft_tokens: torch.Tensor, token_mask: torch.Tensor, **columns: Any) -> torch.Tensor:
        if self.target_column not in columns:
            raise ValueError(f"AttributeReward('{self.task}') needs the dataset column '{self.target_column}'.")
        targets = columns[self.target_column]
        has_target = torch.tensor([t is not None for t in targets], device=soft_tokens.device)
        index = torch.tensor(
            [0 if t is None else self.model.config.label_to_id(self.task, t) for t in targets],
            device=soft_tokens.device,
        )
        log_probs = self.model.attribute_log_probs(self.task, soft_tokens=soft_tokens, attention_mask=token_mask)
        chosen = log_probs.gather(-1, index[:, None]).squeeze(-1)  # (B,)
        return torch.where(has_target, chosen, torch.zeros_like(chosen))


class QualityReward(_TokenRewardFunction):
    """Quality reward: the MTR's predicted quality score (e.g. DNSMOS) of the tokens."""

    def __init__(self, model: TokenRewardModel):
        super().__init__(model, name="quality")

    def forward(self, soft_tokens: torch.Tensor, token_mask: torch.Tensor, **columns: Any) -> torch.Tensor:
        return self.model.predict_quality(soft_tokens=soft_tokens, attention_mask=token_mask)


__all__ = ["AttributeReward", "CTCReward", "QualityReward"]

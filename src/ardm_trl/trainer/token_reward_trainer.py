"""Trainer of the multi-task token reward model: weighted per-task losses, per-task metrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer

from ..models.token_reward import TokenRewardDataCollator, TokenRewardModel
from .base import MetricsMixin, ModelCardMixin, check_finite
from .checkpointing import AtomicCheckpointMixin
from .papers import DIFFRO
from .token_reward_config import TokenRewardTrainingConfig


class TokenRewardTrainer(AtomicCheckpointMixin, MetricsMixin, ModelCardMixin, Trainer):
    """
    Trains a [`TokenRewardModel`] on speech-token sequences labelled with their text, attributes and quality.

    Args:
        model ([`TokenRewardModel`]): the model to train.
        args ([`TokenRewardTrainingConfig`], *optional*): training configuration.
        data_collator (*optional*): defaults to [`TokenRewardDataCollator`].
        train_dataset / eval_dataset ([`~datasets.Dataset`], *optional*): rows with `speech_ids`, `text_ids`, one
            column per attribute task (class name or index, `None` = unknown) and the quality column.
        processing_class, callbacks, optimizers: as in [`~transformers.Trainer`].

    Logged metrics (train and `eval_` prefixed): `loss/<task>` (each task loss), `accuracy/<task>` (attribute
    accuracy on labelled rows), `quality_mae` (mean absolute error of the quality head) and `ctc_nll` (per-unit CTC
    negative log-likelihood).
    """

    _trainer_name = "TokenRewardTrainer"
    _paper = DIFFRO
    _tag_names = ["ardm_trl", "diffro", "token-reward-model"]

    def __init__(
        self,
        model: TokenRewardModel,
        args: TokenRewardTrainingConfig | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks=None,
        optimizers=(None, None),
    ):
        args = args or TokenRewardTrainingConfig(output_dir="token_reward_model")
        if data_collator is None:
            data_collator = TokenRewardDataCollator(
                model.config, quality_column=args.quality_column, max_length=args.max_length
            )
        unknown = set(args.task_weights or {}) - {"ctc", "quality", *model.config.attribute_labels}
        if unknown:
            raise ValueError(
                f"`task_weights` names unknown tasks {sorted(unknown)}; the tasks are 'ctc', 'quality' and "
                f"{sorted(model.config.attribute_labels)}."
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self._init_metrics()

    def task_weight(self, task: str) -> float:
        return float((self.args.task_weights or {}).get(task, 1.0))

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None
    ):
        outputs = model(**inputs)
        if not outputs.task_losses:
            raise ValueError("The batch has no targets: give `text_ids`, attribute columns or a quality column.")
        loss = sum(self.task_weight(task) * value for task, value in outputs.task_losses.items())
        for task, value in outputs.task_losses.items():
            check_finite(value, self.state.global_step, f"{task} loss", "non-finite weights (too large a learning "
                         "rate) or non-finite labels in that task's column.")  # fmt: skip
        self._record_task_metrics(outputs, inputs)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _record_task_metrics(self, outputs, inputs: dict[str, Any]) -> None:
        for task, value in outputs.task_losses.items():
            self._record_metric(f"loss/{task}", value)
        if "ctc" in outputs.task_losses:
            self._record_metric("ctc_nll", outputs.task_losses["ctc"])
        for task, labels in (inputs.get("attribute_labels") or {}).items():
            known = labels != -100
            if known.any():
                predicted = outputs.attribute_logits[task].argmax(-1)
                self._record_metric(f"accuracy/{task}", (predicted[known] == labels[known]).float().mean())
        quality_labels = inputs.get("quality_labels")
        if quality_labels is not None and outputs.quality is not None:
            known = torch.isfinite(quality_labels)
            if known.any():
                self._record_metric("quality_mae", (outputs.quality[known] - quality_labels[known]).abs().mean())

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _model_card_fields(self) -> dict[str, Any]:
        return {"reward_funcs": "multi-task token reward model (training)"}


__all__ = ["TokenRewardTrainer"]

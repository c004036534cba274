"""Trainers of ardm_trl (TRL-style config/trainer pairs) and the pieces they share."""

from .base import (
    MetricsMixin,
    ModelCardMixin,
    is_peft_model,
    prepare_peft_model,
    reference_model_context,
    render_model_card,
    unwrap_peft,
)

__all__ = [
    "MetricsMixin",
    "ModelCardMixin",
    "is_peft_model",
    "prepare_peft_model",
    "reference_model_context",
    "render_model_card",
    "unwrap_peft",
]

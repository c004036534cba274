"""Trainers of ardm_trl (TRL-style config/trainer pairs) and the pieces they share."""

from .ardm_utils import ardm_kl, call_reward_funcs, draw_noisy_tokens, group_normalize, value_loss
from .base import (
    MetricsMixin,
    ModelCardMixin,
    is_peft_model,
    prepare_peft_model,
    reference_model_context,
    render_model_card,
    unwrap_peft,
)
from .rollout import PromptBatch, Rollouts, generate_rollouts, prepare_prompt_batch, score_rollouts
from .value_config import ValueConfig
from .value_trainer import ValueTrainer, build_value_dataset
from .vgpo_config import VGPOConfig
from .vgpo_trainer import VGPOTrainer

__all__ = [
    "MetricsMixin",
    "ModelCardMixin",
    "PromptBatch",
    "Rollouts",
    "VGPOConfig",
    "VGPOTrainer",
    "ValueConfig",
    "ValueTrainer",
    "ardm_kl",
    "build_value_dataset",
    "call_reward_funcs",
    "draw_noisy_tokens",
    "generate_rollouts",
    "group_normalize",
    "is_peft_model",
    "prepare_peft_model",
    "prepare_prompt_batch",
    "reference_model_context",
    "render_model_card",
    "score_rollouts",
    "unwrap_peft",
    "value_loss",
]

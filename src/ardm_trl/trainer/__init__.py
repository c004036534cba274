"""Trainers of ardm_trl (TRL-style config/trainer pairs) and the pieces they share."""

from .ardm_dpo_config import ARDMDPOConfig
from .ardm_dpo_trainer import ARDMDPOTrainer, dpo_loss
from .ardm_utils import ardm_kl, call_reward_funcs, draw_noisy_tokens, estimate_kl, group_normalize, value_loss
from .base import (
    MetricsMixin,
    ModelCardMixin,
    is_peft_model,
    prepare_peft_model,
    reference_model_context,
    render_model_card,
    unwrap_peft,
)
from .best_of_k import BestOfKOutput, best_of_k
from .callbacks import TimeLimitCallback
from .diffro_config import DiffROConfig
from .diffro_trainer import DiffROTrainer
from .preference_data import PreferenceBatch, build_preference_dataset, collate_preference_pairs, select_pairs
from .rollout import (
    PromptBatch,
    Rollouts,
    generate_rollouts,
    prepare_prompt_batch,
    score_rollout_tokens,
    score_rollouts,
)
from .speech_rl_config import ARDMRLConfig, SpeechRLConfig
from .speech_rl_trainer import SpeechRLTrainer
from .token_reward_config import TokenRewardTrainingConfig
from .token_reward_trainer import TokenRewardTrainer
from .value_config import ValueConfig
from .value_evaluation import GuidanceEvaluation, measure_guidance_gain, value_reward_correlation
from .value_trainer import (
    ValueTrainer,
    build_corpus_value_dataset,
    build_value_dataset,
    prepare_value_rewards,
    rewards_to_go,
    train_value_model,
)
from .vgpo_config import VGPOConfig
from .vgpo_trainer import VGPOTrainer

__all__ = [
    "ARDMRLConfig",
    "SpeechRLConfig",
    "SpeechRLTrainer",
    "ARDMDPOConfig",
    "ARDMDPOTrainer",
    "BestOfKOutput",
    "DiffROConfig",
    "DiffROTrainer",
    "GuidanceEvaluation",
    "MetricsMixin",
    "ModelCardMixin",
    "PreferenceBatch",
    "PromptBatch",
    "Rollouts",
    "TimeLimitCallback",
    "TokenRewardTrainer",
    "TokenRewardTrainingConfig",
    "VGPOConfig",
    "VGPOTrainer",
    "ValueConfig",
    "ValueTrainer",
    "ardm_kl",
    "best_of_k",
    "build_preference_dataset",
    "build_corpus_value_dataset",
    "build_value_dataset",
    "call_reward_funcs",
    "collate_preference_pairs",
    "dpo_loss",
    "draw_noisy_tokens",
    "estimate_kl",
    "generate_rollouts",
    "group_normalize",
    "is_peft_model",
    "measure_guidance_gain",
    "prepare_peft_model",
    "prepare_prompt_batch",
    "prepare_value_rewards",
    "reference_model_context",
    "rewards_to_go",
    "render_model_card",
    "score_rollout_tokens",
    "score_rollouts",
    "select_pairs",
    "train_value_model",
    "unwrap_peft",
    "value_loss",
    "value_reward_correlation",
]

"""Multi-task token reward model (DiffRO's MTR). Importing registers it with the transformers Auto classes."""

from transformers import AutoConfig, AutoModel

from .collator_token_reward import TokenRewardDataCollator, pad_text_ids
from .configuration_token_reward import DEFAULT_ATTRIBUTE_LABELS, TokenRewardConfig
from .modeling_token_reward import TokenRewardModel, TokenRewardOutput, TokenRewardPreTrainedModel, ctc_log_likelihood
from .reward_functions import AttributeReward, CTCReward, QualityReward

AutoConfig.register(TokenRewardConfig.model_type, TokenRewardConfig, exist_ok=True)
AutoModel.register(TokenRewardConfig, TokenRewardModel, exist_ok=True)

__all__ = [
    "DEFAULT_ATTRIBUTE_LABELS",
    "AttributeReward",
    "CTCReward",
    "QualityReward",
    "TokenRewardConfig",
    "TokenRewardDataCollator",
    "TokenRewardModel",
    "TokenRewardOutput",
    "TokenRewardPreTrainedModel",
    "ctc_log_likelihood",
    "pad_text_ids",
]

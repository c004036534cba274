"""ardm_trl: reward fine-tuning of speech generators (VGPO, ARDM-DPO, DiffRO) for the Hugging Face ecosystem.

Importing the package registers every model (ARDM policy / value model / discriminator, codec LM, token reward model,
speech codec and tokenizer) with the transformers Auto classes, so `AutoModel.from_pretrained(path)` works on a saved
ardm_trl model without `trust_remote_code`.
"""

__version__ = "0.1.0.dev0"

from .audio import SpeechCodecConfig, SpeechCodecModel, SpeechTokenizerConfig, SpeechTokenizerModel
from .models import *  # noqa: F401,F403  (registers the Auto classes)
from .models import __all__ as _models_all
from .trainer import (
    ARDMDPOConfig,
    ARDMDPOTrainer,
    DiffROConfig,
    DiffROTrainer,
    TokenRewardTrainer,
    TokenRewardTrainingConfig,
    ValueConfig,
    ValueTrainer,
    VGPOConfig,
    VGPOTrainer,
)

__all__ = [
    *_models_all,
    "ARDMDPOConfig",
    "ARDMDPOTrainer",
    "DiffROConfig",
    "DiffROTrainer",
    "TokenRewardTrainer",
    "TokenRewardTrainingConfig",
    "SpeechCodecConfig",
    "SpeechCodecModel",
    "SpeechTokenizerConfig",
    "SpeechTokenizerModel",
    "VGPOConfig",
    "VGPOTrainer",
    "ValueConfig",
    "ValueTrainer",
]

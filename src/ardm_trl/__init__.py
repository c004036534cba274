"""ardm_trl: reward fine-tuning of speech generators (VGPO, ARDM-DPO, DiffRO) for the Hugging Face ecosystem.

Importing the package registers every model (ARDM policy / value model / discriminator, codec LM, token reward model,
speech codec and tokenizer) with the transformers Auto classes, so `AutoModel.from_pretrained(path)` works on a saved
ardm_trl model without `trust_remote_code`.
"""

__version__ = "0.1.0.dev0"

import importlib
from typing import TYPE_CHECKING

from .audio import SpeechCodecConfig, SpeechCodecModel, SpeechTokenizerConfig, SpeechTokenizerModel
from .models import *  # noqa: F401,F403  (registers the Auto classes)
from .models import __all__ as _models_all

# The trainers pull in trl, datasets and peft: they load on first use, so `import ardm_trl` (which only has to
# register the models) stays fast, as transformers' own lazy module does.
_LAZY_TRAINERS = (
    "ARDMDPOConfig", "ARDMDPOTrainer", "DiffROConfig", "DiffROTrainer", "SpeechRLConfig", "SpeechRLTrainer",
    "TokenRewardTrainer", "TokenRewardTrainingConfig", "ValueConfig", "ValueTrainer", "VGPOConfig", "VGPOTrainer",
)  # fmt: skip

if TYPE_CHECKING:
    from .trainer import (  # noqa: F401
        ARDMDPOConfig,
        ARDMDPOTrainer,
        DiffROConfig,
        DiffROTrainer,
        SpeechRLConfig,
        SpeechRLTrainer,
        TokenRewardTrainer,
        TokenRewardTrainingConfig,
        ValueConfig,
        ValueTrainer,
        VGPOConfig,
        VGPOTrainer,
    )


def __getattr__(name: str):
    if name in _LAZY_TRAINERS:
        return getattr(importlib.import_module(".trainer", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_models_all,
    *_LAZY_TRAINERS,
    "SpeechCodecConfig",
    "SpeechCodecModel",
    "SpeechTokenizerConfig",
    "SpeechTokenizerModel",
]

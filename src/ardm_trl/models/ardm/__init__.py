"""DiTAR-style autoregressive diffusion model (ARDM): policy, value model and discriminator."""

from transformers import AutoConfig, AutoModel, AutoTokenizer

from ...data.text_tokenizer import ARDMTextTokenizer
from .configuration_ardm import ARDMConfig, ARDMDiscriminatorConfig, ARDMValueConfig
from .diffusion import NoiseDraws, NoiseSchedule, build_scheduler, draw_noisy_tokens
from .generation_ardm import SAMPLING_DEFAULTS, ARDMGenerationOutput, sampling_settings, set_sampling_settings
from .interface import ARDMProtocol, check_ardm
from .modeling_ardm import (
    ARDMDiscriminator,
    ARDMForSpeechSynthesis,
    ARDMOutput,
    ARDMPreTrainedModel,
    ARDMStates,
    ARDMValueModel,
    ARDMValueOutput,
    pad_to_patch_multiple,
    patchify,
    unpatchify,
)

AutoConfig.register("ardm", ARDMConfig, exist_ok=True)
AutoConfig.register("ardm_value", ARDMValueConfig, exist_ok=True)
AutoConfig.register("ardm_discriminator", ARDMDiscriminatorConfig, exist_ok=True)
AutoModel.register(ARDMConfig, ARDMForSpeechSynthesis, exist_ok=True)
AutoModel.register(ARDMValueConfig, ARDMValueModel, exist_ok=True)
AutoModel.register(ARDMDiscriminatorConfig, ARDMDiscriminator, exist_ok=True)
# `AutoTokenizer.from_pretrained(<ARDM folder>)` gives its text tokenizer
AutoTokenizer.register(ARDMConfig, slow_tokenizer_class=ARDMTextTokenizer, exist_ok=True)

__all__ = [
    "SAMPLING_DEFAULTS",
    "ARDMConfig",
    "ARDMDiscriminator",
    "ARDMDiscriminatorConfig",
    "ARDMForSpeechSynthesis",
    "ARDMGenerationOutput",
    "ARDMOutput",
    "ARDMPreTrainedModel",
    "ARDMProtocol",
    "ARDMStates",
    "ARDMValueConfig",
    "ARDMValueModel",
    "ARDMValueOutput",
    "NoiseDraws",
    "NoiseSchedule",
    "build_scheduler",
    "check_ardm",
    "draw_noisy_tokens",
    "pad_to_patch_multiple",
    "patchify",
    "sampling_settings",
    "set_sampling_settings",
    "unpatchify",
]

"""Codec-token TTS language model (CosyVoice-style). Importing registers it with the transformers Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from .collator_codec_lm import CodecLMDataCollator
from .configuration_codec_lm import CodecLMConfig
from .generation_codec_lm import (
    SpeechSamplingOutput,
    position_ids_from_attention_mask,
    process_speech_logits,
    sample_gumbel,
    sample_speech,
    teacher_forced_speech_logits,
)
from .layout import SpeechTokenLayout
from .modeling_codec_lm import CodecLMForSpeechSynthesis, CodecLMOutput, CodecLMPreTrainedModel, build_speech_prompts
from .sampling_codec_lm import sample_and_decode, sample_codes
from .tokenization_codec_lm import CodecLMTokenizer

AutoConfig.register(CodecLMConfig.model_type, CodecLMConfig, exist_ok=True)
AutoModel.register(CodecLMConfig, CodecLMForSpeechSynthesis, exist_ok=True)
AutoModelForCausalLM.register(CodecLMConfig, CodecLMForSpeechSynthesis, exist_ok=True)
AutoTokenizer.register(CodecLMConfig, slow_tokenizer_class=CodecLMTokenizer, exist_ok=True)

__all__ = [
    "CodecLMConfig",
    "CodecLMDataCollator",
    "CodecLMForSpeechSynthesis",
    "CodecLMOutput",
    "CodecLMPreTrainedModel",
    "CodecLMTokenizer",
    "SpeechSamplingOutput",
    "SpeechTokenLayout",
    "build_speech_prompts",
    "position_ids_from_attention_mask",
    "process_speech_logits",
    "sample_and_decode",
    "sample_codes",
    "sample_gumbel",
    "sample_speech",
    "teacher_forced_speech_logits",
]

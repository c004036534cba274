"""Audio models of ardm_trl: the continuous-latent speech codec and the FSQ speech tokenizer.

Importing this module registers both with the transformers Auto classes, so `AutoModel.from_pretrained(path)`
works on a saved codec or tokenizer without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModel

from .configuration_speech_codec import SpeechCodecConfig
from .configuration_speech_tokenizer import SpeechTokenizerConfig
from .fsq import FiniteScalarQuantizer
from .modeling_speech_codec import SpeechCodecModel, SpeechCodecOutput, lengths_to_mask
from .modeling_speech_tokenizer import SpeechTokenizerModel, SpeechTokenizerOutput
from .pretrained import (
    PRETRAINED_CODEC_DIR,
    PRETRAINED_TOKENIZER_DIR,
    bundled_model_dir,
    load_pretrained_codec,
    load_pretrained_tokenizer,
)
from .speech_tokens import decode_codes, load_speech_tokenizer, resynthesize

AutoConfig.register(SpeechCodecConfig.model_type, SpeechCodecConfig, exist_ok=True)
AutoModel.register(SpeechCodecConfig, SpeechCodecModel, exist_ok=True)
AutoConfig.register(SpeechTokenizerConfig.model_type, SpeechTokenizerConfig, exist_ok=True)
AutoModel.register(SpeechTokenizerConfig, SpeechTokenizerModel, exist_ok=True)

__all__ = [
    "PRETRAINED_CODEC_DIR",
    "PRETRAINED_TOKENIZER_DIR",
    "bundled_model_dir",
    "FiniteScalarQuantizer",
    "SpeechCodecConfig",
    "SpeechCodecModel",
    "SpeechCodecOutput",
    "SpeechTokenizerConfig",
    "SpeechTokenizerModel",
    "SpeechTokenizerOutput",
    "decode_codes",
    "lengths_to_mask",
    "load_pretrained_codec",
    "load_pretrained_tokenizer",
    "load_speech_tokenizer",
    "resynthesize",
]

"""Data for ardm_trl: an espeak-ng binding, shipped English sentences, a multi-speaker TTS corpus builder, the ARDM's
text tokenizer, collators and prompt rows for the trainers."""

from .collators import ARDMDataCollator, pad_sequences
from .corpus import DEFAULT_PITCH_LEVELS, DEFAULT_RATE_LEVELS, DEFAULT_VOICES, build_tts_corpus, default_voices
from .espeak import ESPEAK_SAMPLE_RATE, EspeakError, phonemize, synthesize, voice_gender
from .prompts import encode_latents, prompt_rows_from_text, voice_prompt_rows
from .sentences import generate_sentences, load_sentences, make_hard_sentence
from .text_tokenizer import ARDMTextTokenizer

__all__ = [
    "ARDMDataCollator",
    "ARDMTextTokenizer",
    "DEFAULT_PITCH_LEVELS",
    "DEFAULT_RATE_LEVELS",
    "DEFAULT_VOICES",
    "ESPEAK_SAMPLE_RATE",
    "EspeakError",
    "build_tts_corpus",
    "default_voices",
    "encode_latents",
    "generate_sentences",
    "load_sentences",
    "make_hard_sentence",
    "pad_sequences",
    "phonemize",
    "synthesize",
    "voice_gender",
    "prompt_rows_from_text",
    "voice_prompt_rows",
]

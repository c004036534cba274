"""Data for ardm_trl: an espeak-ng binding, shipped English sentences and a multi-speaker TTS corpus builder."""

from .corpus import DEFAULT_PITCH_LEVELS, DEFAULT_RATE_LEVELS, DEFAULT_VOICES, build_tts_corpus, default_voices
from .espeak import ESPEAK_SAMPLE_RATE, EspeakError, phonemize, synthesize, voice_gender
from .sentences import generate_sentences, load_sentences, make_hard_sentence

__all__ = [
    "DEFAULT_PITCH_LEVELS",
    "DEFAULT_RATE_LEVELS",
    "DEFAULT_VOICES",
    "ESPEAK_SAMPLE_RATE",
    "EspeakError",
    "build_tts_corpus",
    "default_voices",
    "generate_sentences",
    "load_sentences",
    "make_hard_sentence",
    "phonemize",
    "synthesize",
    "voice_gender",
]

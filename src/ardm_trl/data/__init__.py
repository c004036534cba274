"""Data for ardm_trl: an espeak-ng binding and a multi-speaker English TTS corpus builder."""

from .espeak import ESPEAK_SAMPLE_RATE, EspeakError, phonemize, synthesize, voice_gender

__all__ = ["ESPEAK_SAMPLE_RATE", "EspeakError", "phonemize", "synthesize", "voice_gender"]

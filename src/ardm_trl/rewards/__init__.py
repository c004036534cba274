"""Reward functions for speech generators, callable the way TRL calls `reward_funcs`.

    reward(prompts=texts, completions=samples, audio=waveforms, sampling_rate=sr, **dataset_columns)
        -> list[float | None]

Heavy models (hama, whisper, Resemblyzer, DNSMOS) are imported and loaded lazily, once, on the CPU. See
`docs/rewards.md` for the exact definitions and costs.
"""

from .asr import ErrorRateReward, character_error_rate, normalize_text, transcribe, word_error_rate
from .base import SpeechCodec, SpeechReward
from .ctc import CTCLogLikelihoodReward, ctc_log_likelihood, text_to_phonemes
from .evaluation import DEFAULT_METRICS, evaluate_speech, score_speech
from .f0 import F0VarianceReward, bandpass_f0, f0_track, f0_variance
from .normalization import group_normalize
from .pitch import PitchLevelReward, pitch_semitones
from .quality import DNSMOSReward, dnsmos
from .speaker import SpeakerSimilarityReward, speaker_embedding, speaker_similarity
from .voice_pitch import VoicePitchReference, median_f0, resynthesis_pitch_reference

__all__ = [
    "CTCLogLikelihoodReward",
    "DEFAULT_METRICS",
    "DNSMOSReward",
    "ErrorRateReward",
    "F0VarianceReward",
    "PitchLevelReward",
    "SpeakerSimilarityReward",
    "SpeechCodec",
    "SpeechReward",
    "VoicePitchReference",
    "bandpass_f0",
    "character_error_rate",
    "ctc_log_likelihood",
    "dnsmos",
    "evaluate_speech",
    "score_speech",
    "f0_track",
    "f0_variance",
    "group_normalize",
    "median_f0",
    "pitch_semitones",
    "resynthesis_pitch_reference",
    "normalize_text",
    "speaker_embedding",
    "speaker_similarity",
    "text_to_phonemes",
    "transcribe",
    "word_error_rate",
]

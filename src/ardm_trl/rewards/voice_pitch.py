"""Pitch relative to the speaker's own register: the measure for "higher / lower pitch" when the voice is not fixed.

A generator without a voice prompt (the codec LM) chooses a voice per sample, so the absolute F0 of its speech mixes
two things: *which* voice it speaks in and *how high* that voice speaks. A "high pitch" control can raise the
absolute F0 by switching to a higher voice, or lower it while every voice speaks higher than its norm. This module
separates the two:

1. [`VoicePitchReference`] is built from labelled corpus audio: per voice, the centroid of its speaker embeddings
   (Resemblyzer, over all its utterances, every pitch level) and its reference F0, the median over its utterances at
   the reference pitch level (`"mid"` in the corpus) of each utterance's median F0 ([`median_f0`]).
2. [`VoicePitchReference.relative_f0`] identifies the voice of each sample as the nearest centroid (cosine) and
   returns `12 log2(median_f0(sample) / reference_f0[voice])`, semitones above (positive) or below the voice's norm.

The identification is itself measured: the corpus test in `tests/test_rewards.py` checks it on held-out sentences
spoken at other pitch levels, and [`VoicePitchReference.identify`] returns the cosine so a caller can drop samples
that match no voice well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .f0 import f0_track
from .speaker import speaker_embedding

__all__ = ["VoicePitchReference", "median_f0", "resynthesis_pitch_reference"]


def median_f0(
    waveform: np.ndarray, sampling_rate: int, min_voiced_frames: int = 10, method: Literal["ac", "shs"] = "ac"
) -> float | None:
    """Median F0 in Hz over the voiced frames of [`f0_track`] (tracker `method`: `"ac"` or `"shs"`, see there);
    `None` with fewer than `min_voiced_frames` voiced frames (0.1 s by default)."""
    track = f0_track(waveform, sampling_rate, method=method)
    voiced = track[track > 0]
    return float(np.median(voiced)) if voiced.size >= min_voiced_frames else None


@dataclass
class VoicePitchReference:
    """Per-voice speaker-embedding centroids and reference F0, to measure pitch relative to each voice's norm.

    Args:
        voices (`list[str]`): voice names, one per row of `centroids`.
        centroids (`np.ndarray`): `(num_voices, 256)` unit-norm Resemblyzer centroids.
        reference_f0 (`np.ndarray`): `(num_voices,)` reference median F0 in Hz.
        f0_method (`str`, *optional*, defaults to `"ac"`): the F0 tracker of [`median_f0`] for the reference and the
            samples, `"ac"` (autocorrelation) or `"shs"` (spectral; for the bundled codec's output, see [`f0_track`]).
    """

    voices: list[str]
    centroids: np.ndarray
    reference_f0: np.ndarray
    f0_method: Literal["ac", "shs"] = "ac"

    def __post_init__(self) -> None:
        self.centroids = np.asarray(self.centroids, dtype=np.float64)
        self.reference_f0 = np.asarray(self.reference_f0, dtype=np.float64)
        n = len(self.voices)
        if n == 0 or self.centroids.shape[0] != n or self.reference_f0.shape != (n,):
            raise ValueError(
                f"`centroids` ({self.centroids.shape}) and `reference_f0` ({self.reference_f0.shape}) need one row "
                f"per voice ({n} voices, at least one)."
            )
        if self.f0_method not in ("ac", "shs"):
            raise ValueError(f"`f0_method` must be 'ac' or 'shs', got {self.f0_method!r}.")
        if not np.all(self.reference_f0 > 0):
            raise ValueError(f"`reference_f0` must be positive Hz, got {self.reference_f0}.")

    @classmethod
    def from_audio(
        cls,
        audio: Sequence[np.ndarray],
        sampling_rate: int,
        voices: Sequence[str],
        pitch_levels: Sequence[str],
        reference_level: str = "mid",
        f0_method: Literal["ac", "shs"] = "ac",
    ) -> VoicePitchReference:
        """Build the reference from labelled utterances.

        Build it from audio of the same kind as the samples it will measure: for a generator that speaks through a
        codec, the corpus utterances passed through that codec (its resynthesis), so that the centroids and the
        reference F0 carry the codec's own colouring.

        Args:
            audio (`Sequence[np.ndarray]`): mono waveforms.
            sampling_rate (`int`): their sampling rate.
            voices (`Sequence[str]`): the voice of each waveform.
            pitch_levels (`Sequence[str]`): the pitch level of each waveform (e.g. the corpus's `pitch_level`).
            reference_level (`str`, *optional*, defaults to `"mid"`): the level whose F0 is each voice's norm.
            f0_method (`str`, *optional*, defaults to `"ac"`): the F0 tracker, `"ac"` or `"shs"` ([`f0_track`]).

        Raises:
            `ValueError`: lengths differ, or a voice has no embeddable utterance or no voiced utterance at
            `reference_level`.
        """
        if not len(audio) == len(voices) == len(pitch_levels):
            raise ValueError(
                f"`audio`, `voices` and `pitch_levels` must have one entry per utterance, got {len(audio)}, "
                f"{len(voices)} and {len(pitch_levels)}."
            )
        names = sorted(set(voices))
        embeddings: dict[str, list[np.ndarray]] = {v: [] for v in names}
        f0s: dict[str, list[float]] = {v: [] for v in names}
        for waveform, voice, level in zip(audio, voices, pitch_levels, strict=True):
            embedding = speaker_embedding(waveform, sampling_rate)
            if embedding is not None:
                embeddings[voice].append(embedding / np.linalg.norm(embedding))
            if level == reference_level and (f0 := median_f0(waveform, sampling_rate, method=f0_method)) is not None:
                f0s[voice].append(f0)
        missing = [v for v in names if not embeddings[v] or not f0s[v]]
        if missing:
            raise ValueError(
                f"Voices {missing} have no speech to embed or no voiced utterance at pitch level "
                f"{reference_level!r}; every voice needs both."
            )
        centroids = np.stack([np.mean(embeddings[v], axis=0) for v in names])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        return cls(names, centroids, np.array([np.median(f0s[v]) for v in names]), f0_method)

    @classmethod
    def from_dataset(
        cls, dataset: Any, reference_level: str = "mid", f0_method: Literal["ac", "shs"] = "ac"
    ) -> VoicePitchReference:
        """[`from_audio`] over a corpus split (`audio`, `sampling_rate`, `voice`, `pitch_level` columns, as made by
        `ardm_trl.data.build_tts_corpus`)."""
        rates = set(dataset["sampling_rate"])
        if len(rates) != 1:
            raise ValueError(f"The utterances must share one sampling rate, got {sorted(rates)}.")
        audio = [np.asarray(a, dtype=np.float32) for a in dataset["audio"]]
        return cls.from_audio(audio, rates.pop(), dataset["voice"], dataset["pitch_level"], reference_level, f0_method)

    def identify(self, waveform: np.ndarray, sampling_rate: int) -> tuple[str, float] | None:
        """The nearest voice (cosine of the speaker embedding to the centroids) and that cosine; `None` when the
        sample holds no speech to embed."""
        embedding = speaker_embedding(waveform, sampling_rate)
        if embedding is None:
            return None
        cosine = self.centroids @ (embedding / np.linalg.norm(embedding))
        best = int(np.argmax(cosine))
        return self.voices[best], float(cosine[best])

    def relative_f0(
        self, audio: Sequence[np.ndarray], sampling_rate: int, min_similarity: float = 0.0
    ) -> list[dict[str, Any] | None]:
        """Per sample: `{"voice", "similarity", "median_f0", "semitones"}`, the identified voice and the sample's
        median F0 in semitones relative to that voice's reference F0; `None` for a sample with no speech, too few
        voiced frames, or a best cosine below `min_similarity`."""
        out: list[dict[str, Any] | None] = []
        for waveform in audio:
            match = self.identify(waveform, sampling_rate)
            f0 = median_f0(waveform, sampling_rate, method=self.f0_method) if match is not None else None
            if match is None or f0 is None or match[1] < min_similarity:
                out.append(None)
                continue
            voice, similarity = match
            reference = self.reference_f0[self.voices.index(voice)]
            out.append(
                {"voice": voice, "similarity": similarity, "median_f0": f0, "semitones": 12 * np.log2(f0 / reference)}
            )
        return out


def resynthesis_pitch_reference(
    speech_tokenizer, num_utterances: int, seed: int, f0_method: Literal["ac", "shs"] = "shs"
) -> VoicePitchReference:
    """A [`VoicePitchReference`] built from `num_utterances` fresh corpus utterances (`build_tts_corpus(num_utterances,
    seed, test_fraction=0)`) as `speech_tokenizer` resynthesises them: the same decoder as a codec LM's samples, so
    the voice centroids and reference F0 carry the codec's colouring (the codec does not reproduce male voices'
    lowest pitches; docs/rewards.md)."""
    from ..audio.speech_tokens import resynthesize
    from ..data import build_tts_corpus

    corpus = build_tts_corpus(num_utterances, seed, test_fraction=0.0, sampling_rate=speech_tokenizer.sampling_rate)
    rows = corpus["train"]
    audio = resynthesize(speech_tokenizer, [np.asarray(a, dtype=np.float32) for a in rows["audio"]])
    return VoicePitchReference.from_audio(
        audio, speech_tokenizer.sampling_rate, rows["voice"], rows["pitch_level"], f0_method=f0_method
    )

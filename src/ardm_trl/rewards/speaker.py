"""Speaker similarity (SIM): cosine between speaker embeddings of the generated audio and a reference.

Embeddings come from Resemblyzer's GE2E speaker encoder (256-d, L2-normalised; weights ship in its wheel). Audio is
resampled to 16 kHz with torchaudio, then Resemblyzer's own preprocessing applies (volume normalisation to
-30 dBFS, webrtcvad trimming of long silences) before `embed_utterance`. The papers report SIM with a WavLM-based
verifier (Seed-TTS-eval), so absolute values are not comparable with theirs; differences between systems are.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np

from .base import SpeechCodec, SpeechReward, as_waveform, per_sample_column, resample

__all__ = [
    "SpeakerSimilarityReward", "reference_embeddings", "speaker_embedding", "speaker_similarities",
    "speaker_similarity",
]  # fmt: skip

SPEAKER_SAMPLING_RATE = 16000


@functools.cache
def _load_voice_encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Speaker similarity needs `resemblyzer` (pip install resemblyzer --no-deps, plus webrtcvad-wheels)."
        ) from error
    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(waveform: np.ndarray, sampling_rate: int) -> np.ndarray | None:
    """256-d unit-norm speaker embedding of one waveform, or `None` if no speech is left after VAD trimming."""
    from resemblyzer import preprocess_wav

    wav = np.clip(resample(as_waveform(waveform), sampling_rate, SPEAKER_SAMPLING_RATE), -1, 1)
    if np.sqrt(np.mean(np.square(wav, dtype=np.float64))) < 1e-4:  # silence (below -80 dBFS): no speaker
        return None
    wav = preprocess_wav(wav)
    if wav.size < SPEAKER_SAMPLING_RATE // 10:  # < 0.1 s of speech: nothing to embed
        return None
    return _load_voice_encoder().embed_utterance(wav.astype(np.float32))


def reference_embeddings(references: list[tuple[np.ndarray, int]]) -> list[np.ndarray | None]:
    """[`speaker_embedding`] of each `(waveform, sampling_rate)`, computed once per distinct reference (the samples
    of one prompt, or of one prompt across seeds and models, share it)."""
    cache: dict[tuple[str, int], np.ndarray | None] = {}
    embeddings = []
    for wav, rate in references:
        key = (hashlib.sha1(np.ascontiguousarray(wav).tobytes()).hexdigest(), int(rate))
        if key not in cache:
            cache[key] = speaker_embedding(wav, rate)
        embeddings.append(cache[key])
    return embeddings


def speaker_similarities(
    audio: list[np.ndarray], references: list[np.ndarray], sampling_rate: int, reference_sampling_rate: int | None = None
) -> list[float | None]:
    """[`speaker_similarity`] of each pair, each distinct reference embedded once."""
    rate = reference_sampling_rate or sampling_rate
    refs = reference_embeddings([(as_waveform(r), rate) for r in references])
    return [_cosine(speaker_embedding(wav, sampling_rate), ref) for wav, ref in zip(audio, refs)]


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def speaker_similarity(
    audio: np.ndarray, reference: np.ndarray, sampling_rate: int, reference_sampling_rate: int | None = None
) -> float | None:
    """Cosine similarity of the speaker embeddings of `audio` and `reference` (in [-1, 1]; `None` if either
    holds no speech)."""
    return _cosine(speaker_embedding(audio, sampling_rate),
                   speaker_embedding(reference, reference_sampling_rate or sampling_rate))  # fmt: skip


def _as_reference(item: Any, default_sampling_rate: int) -> tuple[np.ndarray, int]:
    """A reference from a dataset column: a `datasets.Audio` dict (`{"array", "sampling_rate"}`), an
    `(array, sampling_rate)` pair, or a bare array at `default_sampling_rate`."""
    if isinstance(item, dict):
        if "array" not in item or "sampling_rate" not in item:
            raise ValueError("A reference audio dict needs the keys 'array' and 'sampling_rate' (datasets.Audio).")
        return as_waveform(item["array"], "prompt_audio"), int(item["sampling_rate"])
    if isinstance(item, tuple) and len(item) == 2 and np.isscalar(item[1]):
        return as_waveform(item[0], "prompt_audio"), int(item[1])
    return as_waveform(item, "prompt_audio"), int(default_sampling_rate)


class SpeakerSimilarityReward(SpeechReward):
    """Speaker similarity reward: cosine between each sample's speaker embedding and its reference speaker.

    The reference of each sample is read from the keyword argument `reference_column` (default `prompt_audio`, the
    dataset column of prompt audio), whose entries are `datasets.Audio` dicts, `(array, sampling_rate)` pairs, or
    bare arrays at `reference_sampling_rate` (defaults to the generated audio's rate). Alternatively a fixed
    `reference_audio` given at construction is used for every sample (e.g. a target speaker).

    Args:
        codec ([`SpeechCodec`], *optional*): decodes `completions` when the caller passes no `audio`.
        reference_column (`str`, *optional*, defaults to `"prompt_audio"`): keyword argument holding the references.
        reference_audio (`np.ndarray`, *optional*): a fixed reference for all samples (needs `reference_sampling_rate`).
        reference_sampling_rate (`int`, *optional*): sampling rate of bare-array references.
        name (`str`, *optional*, defaults to `"speaker_similarity"`): the `__name__` trainers log under.
    """

    default_name = "speaker_similarity"

    def __init__(
        self,
        codec: SpeechCodec | None = None,
        reference_column: str = "prompt_audio",
        reference_audio: np.ndarray | None = None,
        reference_sampling_rate: int | None = None,
        name: str | None = None,
    ):
        super().__init__(codec=codec, name=name)
        if reference_audio is not None and reference_sampling_rate is None:
            raise ValueError("`reference_audio` needs `reference_sampling_rate`.")
        self.reference_column = reference_column
        self.reference_sampling_rate = reference_sampling_rate
        self._fixed_reference = (
            None if reference_audio is None else speaker_embedding(reference_audio, reference_sampling_rate)
        )
        if reference_audio is not None and self._fixed_reference is None:
            raise ValueError("`reference_audio` holds no speech (nothing left after voice-activity trimming).")

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        if self._fixed_reference is not None:
            references = [self._fixed_reference] * len(waveforms)
        else:
            column = per_sample_column(kwargs.get(self.reference_column), len(waveforms), self.reference_column)
            references = reference_embeddings([_as_reference(item, self.reference_sampling_rate or sampling_rate)
                                               for item in column])  # G samples of a prompt share one reference
        scores: list[float | None] = []
        for wav, ref in zip(waveforms, references):
            emb = speaker_embedding(wav, sampling_rate)
            scores.append(None if emb is None or ref is None else float(np.dot(emb, ref)))
        return scores

"""Pitch level: how high a sample speaks, in semitones, the reward of a pitch-control task.

Definition: F0 every 10 ms by [`f0_track`] (Praat's spectral subharmonic-summation tracker by default, `"shs"`, which
follows the bundled codec's output where the autocorrelation tracker jumps octaves; see `docs/rewards.md`), converted
to semitones `12 log2(f0 / 100 Hz)`; the reward is the mean over the voiced frames after clipping each frame to within
`clip_semitones` of the sample's median (a tracker's octave jumps then move it by at most that much), minus the same
measure of the voice prompt's audio when a reference column is given (so 0 = the prompt's own level). A sample with
fewer than `min_voiced_frames` voiced frames gets `None` (or `unvoiced_value`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .base import SpeechCodec, SpeechReward, per_sample_column
from .f0 import F0_FRAME_RATE, f0_track

__all__ = ["PitchLevelReward", "clipped_frames", "pitch_semitones"]


def pitch_semitones(
    waveform: np.ndarray, sampling_rate: int, method: Literal["ac", "shs"] = "shs"
) -> tuple[np.ndarray, np.ndarray]:
    """Pitch in semitones above 100 Hz every 10 ms, and the mask of voiced frames."""
    track = f0_track(waveform, sampling_rate, method=method)
    voiced = track > 0
    return np.where(voiced, 12.0 * np.log2(np.where(voiced, track, 100.0) / 100.0), 0.0), voiced


def clipped_frames(semitones: np.ndarray, voiced: np.ndarray, clip_semitones: float | None) -> np.ndarray:
    """The voiced frames' pitch clipped to `median ± clip_semitones` (unchanged when `clip_semitones` is `None`);
    unvoiced frames stay 0."""
    if clip_semitones is None or not voiced.any():
        return semitones
    median = float(np.median(semitones[voiced]))
    return np.where(voiced, np.clip(semitones, median - clip_semitones, median + clip_semitones), 0.0)


class PitchLevelReward(SpeechReward):
    """Pitch level of each sample in semitones (above 100 Hz, or above its voice prompt with `reference_column`): the
    mean of its voiced frames, each clipped to within `clip_semitones` of their median.

    Args:
        codec ([`SpeechCodec`], *optional*): decodes `completions` when the caller passes no `audio`.
        reference_column (`str`, *optional*): a per-sample column of reference audio (`{"array", "sampling_rate"}`,
            e.g. the voice prompt's `prompt_audio`); the reward is then the pitch above the reference's.
        method (`str`, *optional*, defaults to `"shs"`): the F0 tracker of [`f0_track`].
        clip_semitones (`float`, *optional*, defaults to `2.0`): frames further than this from the sample's median
            pitch count as this far (the tracker's octave errors on decoded speech; `docs/rewards.md` measures how
            much steadier this makes the reward); `None` is the plain mean of the voiced frames.
        min_voiced_frames (`int`, *optional*, defaults to `10`): fewer voiced 10 ms frames give `None`.
        unvoiced_value (`float`, *optional*): returned instead of `None` for samples with too few voiced frames.
        sign (`float`, *optional*, defaults to `1.0`): `-1` rewards speaking lower.
        name (`str`, *optional*, defaults to `"pitch_level"`): the `__name__` trainers log under.
    """

    default_name = "pitch_level"

    def __init__(
        self,
        codec: SpeechCodec | None = None,
        reference_column: str | None = None,
        method: Literal["ac", "shs"] = "shs",
        clip_semitones: float | None = 2.0,
        min_voiced_frames: int = 10,
        unvoiced_value: float | None = None,
        sign: float = 1.0,
        name: str | None = None,
    ):
        super().__init__(codec=codec, name=name)
        if method not in ("ac", "shs"):
            raise ValueError(f"`method` must be 'ac' or 'shs', got {method!r}.")
        if sign not in (1.0, -1.0):
            raise ValueError(f"`sign` must be 1 or -1, got {sign}.")
        if clip_semitones is not None and not clip_semitones > 0:
            raise ValueError(f"`clip_semitones` must be positive or None, got {clip_semitones}.")
        self.reference_column, self.method, self.sign = reference_column, method, sign
        self.clip_semitones = clip_semitones
        self.min_voiced_frames, self.unvoiced_value = min_voiced_frames, unvoiced_value

    def _frames(self, waveform: np.ndarray, sampling_rate: int) -> tuple[np.ndarray, np.ndarray]:
        semitones, voiced = pitch_semitones(waveform, sampling_rate, self.method)
        return clipped_frames(semitones, voiced, self.clip_semitones), voiced

    def _references(self, count: int, kwargs: dict[str, Any]) -> list[float]:
        if self.reference_column is None:
            return [0.0] * count
        out = []
        for ref in per_sample_column(kwargs.get(self.reference_column), count, self.reference_column):
            semitones, voiced = self._frames(np.asarray(ref["array"], dtype=np.float32), int(ref["sampling_rate"]))
            out.append(float(semitones[voiced].mean()) if voiced.sum() >= self.min_voiced_frames else float("nan"))
        return out

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        references = self._references(len(waveforms), kwargs)
        out: list[float | None] = []
        for wav, reference in zip(waveforms, references):
            semitones, voiced = self._frames(wav, sampling_rate)
            if voiced.sum() < self.min_voiced_frames or not np.isfinite(reference):
                out.append(self.unvoiced_value)
                continue
            out.append(self.sign * (float(semitones[voiced].mean()) - reference))
        return out

    def score_tokens(
        self,
        waveforms: list[np.ndarray],
        sampling_rate: int,
        texts: list[str] | None,
        token_seconds: float,
        num_tokens: list[int],
        **kwargs: Any,
    ) -> list[np.ndarray | None]:
        """Each voiced frame's clipped pitch (minus the reference) over the number of voiced frames, summed per token (frames
        past the last token go to it): the tokens sum to the reward."""
        references = self._references(len(waveforms), kwargs)
        out: list[np.ndarray | None] = []
        for wav, reference, count in zip(waveforms, references, num_tokens):
            semitones, voiced = self._frames(wav, sampling_rate)
            if count == 0 or voiced.sum() < self.min_voiced_frames or not np.isfinite(reference):
                fill = self.unvoiced_value
                out.append(None if fill is None or count == 0 else np.full(count, fill / count))
                continue
            shares = np.where(voiced, self.sign * (semitones - reference), 0.0) / voiced.sum()
            centres = (np.arange(semitones.size) + 0.5) / F0_FRAME_RATE
            index = np.minimum((centres / token_seconds).astype(np.int64), count - 1)
            out.append(np.bincount(index, weights=shares, minlength=count))
        return out

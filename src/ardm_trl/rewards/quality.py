"""DNSMOS (P.835 speech quality MOS predicted by Microsoft's DNS-challenge models), via the `speechmos` package.

The ONNX models ship inside `speechmos`. Audio is resampled to 16 kHz with torchaudio and clipped to [-1, 1]; as in
the reference implementation a clip shorter than 9.01 s is tiled to that length, and a longer one is scored on
9.01 s windows every second and averaged (all of them: the reference code silently drops the windows from the
8th on, through float rounding of their end index, so its scores of clips over 16 s differ slightly). Four scores per clip, each roughly on a 1-5 scale: `ovrl_mos` (overall
quality, the default reward), `sig_mos` (speech signal), `bak_mos` (background noise) and `p808_mos`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .base import SpeechCodec, SpeechReward, as_waveform, resample

__all__ = ["DNSMOSReward", "dnsmos"]

DNSMOS_SAMPLING_RATE = 16000
DNSMOS_KEYS = ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")
_WINDOW_SECONDS = 9.01


@functools.cache
def _load_dnsmos(personalized: bool, num_threads: int):
    try:
        import onnxruntime as ort
        import speechmos
        from speechmos.dnsmos import DNSMOS
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("DNSMOS needs `speechmos` and `onnxruntime`: pip install 'ardm_trl[speech]'.") from error
    root = Path(speechmos.__file__).parent
    primary = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    model = DNSMOS.__new__(DNSMOS)  # reuse speechmos' feature and polynomial code, with our session options
    model.primary_model_path = str(primary)
    model.onnx_sess = ort.InferenceSession(str(primary), options, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = ort.InferenceSession(
        str(root / "dnsmos_models" / "model_v8.onnx"), options, providers=["CPUExecutionProvider"]
    )
    return model


def _windows(audio: np.ndarray) -> list[np.ndarray]:
    """speechmos' segmentation: tile to >= 9.01 s, then 9.01 s windows every second."""
    length = int(_WINDOW_SECONDS * DNSMOS_SAMPLING_RATE)
    if audio.size == 0:
        return []
    while audio.size < length:
        audio = np.concatenate([audio, audio])
    num_hops = int(np.floor(audio.size / DNSMOS_SAMPLING_RATE) - _WINDOW_SECONDS) + 1
    starts = (i * DNSMOS_SAMPLING_RATE for i in range(num_hops))
    return [audio[s : s + length] for s in starts if audio[s : s + length].size == length]


def dnsmos(
    audio: np.ndarray | list[np.ndarray],
    sampling_rate: int,
    personalized: bool = False,
    max_windows: int | None = None,
    num_threads: int = 1,
) -> dict[str, float] | list[dict[str, float] | None]:
    """DNSMOS scores of one waveform (a dict with `ovrl_mos`, `sig_mos`, `bak_mos`, `p808_mos`) or of a list of
    waveforms (a list of such dicts; `None` for an empty or silent clip).

    The cost is per 9.01 s window, and a short clip tiled to 9.01 s or more is scored on several windows (a 3 s
    clip tiled to 12 s: 3 windows, as the reference does). `max_windows=1` scores only the first window of each clip
    (the windows of a tiled clip hold the same audio at shifted offsets; `docs/rewards.md` has the cost and the
    difference measured). `num_threads` sets ONNX Runtime's intra-op threads.
    """
    import torch

    single = isinstance(audio, np.ndarray) and audio.ndim == 1
    clips = [
        np.clip(resample(as_waveform(wav), sampling_rate, DNSMOS_SAMPLING_RATE), -1.0, 1.0)
        for wav in ([audio] if single else audio)
    ]
    model = _load_dnsmos(bool(personalized), int(num_threads or torch.get_num_threads()))
    windows, owner = [], []
    for i, clip in enumerate(clips):
        if np.abs(clip).max(initial=0.0) < 1e-4:  # silence: the mel features are undefined (log of 0)
            continue
        for window in _windows(clip)[:max_windows]:
            windows.append(window)
            owner.append(i)
    results: list[dict[str, float] | None] = [None] * len(clips)
    if windows:
        # One window per ONNX call: on the CPU batching was slower (docs/rewards.md, "Cost").
        sig_bak_ovr = np.concatenate(
            [model.onnx_sess.run(None, {"input_1": w[None].astype(np.float32)})[0] for w in windows]
        )
        p808 = np.array(
            [
                model.p808_onnx_sess.run(
                    None, {"input_1": model.audio_melspec(audio=w[:-160])[None].astype(np.float32)}
                )[0][0, 0]
                for w in windows
            ]
        )  # (W,)
        sig, bak, ovr = model.get_polyfit_val(sig_bak_ovr[:, 0], sig_bak_ovr[:, 1], sig_bak_ovr[:, 2], personalized)
        owner = np.asarray(owner)
        for i in np.unique(owner):
            rows = owner == i
            results[i] = {
                "ovrl_mos": float(ovr[rows].mean()),
                "sig_mos": float(sig[rows].mean()),
                "bak_mos": float(bak[rows].mean()),
                "p808_mos": float(p808[rows].mean()),
            }
    return results[0] if single else results


class DNSMOSReward(SpeechReward):
    """DNSMOS quality reward: one of the four DNSMOS scores of each sample (default: overall MOS, `ovrl_mos`).

    Args:
        codec ([`SpeechCodec`], *optional*): decodes `completions` when the caller passes no `audio`.
        key (`str`, *optional*, defaults to `"ovrl_mos"`): `"ovrl_mos"`, `"sig_mos"`, `"bak_mos"` or `"p808_mos"`.
        personalized (`bool`, *optional*, defaults to `False`): use the personalised DNSMOS model (penalises
            interfering talkers).
        max_windows (`int`, *optional*): score at most this many 9.01 s windows per clip (see [`dnsmos`]).
        name (`str`, *optional*, defaults to `"dnsmos"`): the `__name__` trainers log under.
    """

    default_name = "dnsmos"

    def __init__(
        self,
        codec: SpeechCodec | None = None,
        key: Literal["ovrl_mos", "sig_mos", "bak_mos", "p808_mos"] = "ovrl_mos",
        personalized: bool = False,
        max_windows: int | None = None,
        name: str | None = None,
    ):
        super().__init__(codec=codec, name=name)
        if key not in DNSMOS_KEYS:
            raise ValueError(f"`key` must be one of {DNSMOS_KEYS}, got {key!r}.")
        self.key = key
        self.personalized = personalized
        self.max_windows = max_windows

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        results = dnsmos(waveforms, sampling_rate, personalized=self.personalized, max_windows=self.max_windows)
        return [None if result is None else result[self.key] for result in results]

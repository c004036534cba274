"""The speech metrics as `evaluate` modules shipped in the package (loadable offline by path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SPEECH_METRICS", "load_speech_metric", "speech_metric_path"]

SPEECH_METRICS = ("f0v", "pitch", "wer", "cer", "ctc_nll", "sim", "dnsmos")


def speech_metric_path() -> str:
    """Folder of the `speech_metric` evaluate module: `evaluate.load(speech_metric_path(), "<metric>")`."""
    return str(Path(__file__).resolve().parent / "speech_metric")


def load_speech_metric(name: str, **kwargs: Any):
    """`evaluate.load` of one of [`SPEECH_METRICS`] from the module shipped here (no Hub access)."""
    import evaluate

    if name not in SPEECH_METRICS:
        raise ValueError(f"Unknown speech metric {name!r}; choose one of {list(SPEECH_METRICS)}.")
    return evaluate.load(speech_metric_path(), name, **kwargs)

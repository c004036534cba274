"""The papers' speech metrics as a Hugging Face `evaluate` module, loadable offline by path.

    import evaluate
    from ardm_trl.metrics import speech_metric_path

    f0v = evaluate.load(speech_metric_path(), "f0v")  # or ardm_trl.metrics.load_speech_metric("f0v")
    f0v.compute(predictions=[wav, ...], sampling_rate=22050)
    # {"f0v": mean over the utterances where it is defined, "per_sample": [... or None]}

Configurations: `f0v` (F0 variance, Hz), `pitch` (pitch level, semitones above 100 Hz), `wer` / `cer` (whisper
transcripts against `references` texts, percent), `ctc_nll` (phoneme-CTC negative log-likelihood of the `references`
texts), `sim` (speaker similarity to `references` waveforms at `reference_sampling_rate`), `dnsmos` (overall MOS).
Each computes exactly `ardm_trl.rewards.score_speech` for its metric.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from ardm_trl.metrics import SPEECH_METRICS as _CONFIGS
from ardm_trl.rewards.evaluation import score_speech

_AUDIO = datasets.Sequence(datasets.Value("float32"))
_REFERENCES = {"wer": datasets.Value("string"), "cer": datasets.Value("string"),
               "ctc_nll": datasets.Value("string"), "sim": _AUDIO}  # fmt: skip

_DESCRIPTION = "Objective speech metrics of the VGPO / ARDM-DPO / DiffRO papers' tables (ardm_trl)."
_INPUTS = """
Args:
    predictions (`list` of 1-D float arrays): the generated waveforms.
    references (`list`): the texts (`wer`, `cer`, `ctc_nll`) or reference waveforms (`sim`); none otherwise.
    sampling_rate (`int`): rate of `predictions`.
    reference_sampling_rate (`int`, *optional*): rate of `sim` references (defaults to `sampling_rate`).
Returns:
    `{<config>: mean over the defined samples (nan if none), "per_sample": list (None where undefined)}`.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class SpeechMetric(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in _CONFIGS:
            raise ValueError(f"Unknown speech metric {self.config_name!r}; choose one of {list(_CONFIGS)}.")
        features = {"predictions": _AUDIO}
        if self.config_name in _REFERENCES:
            features["references"] = _REFERENCES[self.config_name]
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_INPUTS,
                                   features=datasets.Features(features))  # fmt: skip

    def _compute(self, predictions, references=None, sampling_rate: int | None = None,
                 reference_sampling_rate: int | None = None) -> dict:  # fmt: skip
        if sampling_rate is None:
            raise ValueError("Pass `sampling_rate=` (the rate of the predictions).")
        name = self.config_name
        audio = [np.asarray(p, dtype=np.float32) for p in predictions]
        texts = list(references) if name in ("wer", "cer", "ctc_nll") else [""] * len(audio)
        reference_audio = [np.asarray(r, dtype=np.float32) for r in references] if name == "sim" else None
        scores = score_speech(audio, sampling_rate, texts, reference_audio=reference_audio, metrics=[name],
                              reference_sampling_rate=reference_sampling_rate)[name]  # fmt: skip
        defined = [s for s in scores if s is not None and np.isfinite(s)]
        return {name: float(np.mean(defined)) if defined else float("nan"), "per_sample": scores}

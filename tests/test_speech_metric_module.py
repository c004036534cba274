"""The speech metrics as an `evaluate` module: loaded offline by path, each configuration gives exactly
`score_speech`'s numbers (per sample and their mean) on real audio, and bad use raises a clear error."""

import evaluate
import numpy as np
import pytest

from ardm_trl.data import build_tts_corpus
from ardm_trl.metrics import load_speech_metric, speech_metric_path
from ardm_trl.rewards import score_speech


@pytest.fixture(scope="module")
def speech():
    corpus = build_tts_corpus(8, seed=0, num_test_voices=0, test_fraction=0.25)["train"]
    audio = [np.asarray(a, dtype=np.float32) for a in corpus["audio"][:3]]
    return audio, corpus["sampling_rate"][0], list(corpus["text"][:3])


@pytest.mark.parametrize("name", ["f0v", "pitch", "ctc_nll", "sim"])
def test_each_configuration_matches_score_speech(speech, name):
    audio, rate, texts = speech
    references = {"ctc_nll": texts, "sim": audio[::-1]}.get(name)
    result = load_speech_metric(name).compute(predictions=audio, references=references, sampling_rate=rate)
    expected = score_speech(audio, rate, texts, reference_audio=audio[::-1] if name == "sim" else None,
                            metrics=[name])[name]  # fmt: skip
    assert result["per_sample"] == pytest.approx(expected, rel=1e-6)
    assert result[name] == pytest.approx(np.mean([e for e in expected if e is not None]), rel=1e-6)


def test_evaluate_load_by_path_and_clear_errors(speech):
    audio, rate, _ = speech
    module = evaluate.load(speech_metric_path(), "f0v")
    assert module.compute(predictions=audio[:1], sampling_rate=rate)["f0v"] > 0
    with pytest.raises(ValueError, match="sampling_rate"):
        module.compute(predictions=audio[:1])
    with pytest.raises(ValueError, match="Unknown speech metric"):
        load_speech_metric("mos")


def test_similarities_embed_each_reference_once_and_equal_the_pairwise_function(speech, monkeypatch):
    from ardm_trl.rewards import speaker

    audio, rate, _ = speech
    references = [audio[0], audio[1], audio[0], audio[1]]  # two prompts, two samples each
    expected = [speaker.speaker_similarity(a, r, rate) for a, r in zip(audio[:2] * 2, references)]
    calls = []
    original = speaker.speaker_embedding
    monkeypatch.setattr(speaker, "speaker_embedding", lambda wav, sr: calls.append(1) or original(wav, sr))
    assert speaker.speaker_similarities(audio[:2] * 2, references, rate) == pytest.approx(expected, rel=1e-6)
    assert len(calls) == 4 + 2  # four samples, two distinct references

"""Tests of the shipped sentences and of the espeak-ng TTS corpus builder."""

import random

import numpy as np
import pytest

from ardm_trl.data import (
    DEFAULT_PITCH_LEVELS,
    DEFAULT_RATE_LEVELS,
    build_tts_corpus,
    default_voices,
    load_sentences,
    make_hard_sentence,
    phonemize,
)


def _has_repetition(sentence: str) -> bool:
    words = [w.strip(',.?!"').lower() for w in sentence.split()]
    for n in range(1, len(words) // 2 + 1):  # a word, phrase or clause said twice in a row
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if any(grams[i] == grams[i + n] for i in range(len(grams) - n)):
            return True
    return False


@pytest.fixture(scope="module")
def corpus():
    return build_tts_corpus(num_utterances=60, seed=0, test_fraction=0.25, num_test_voices=2)


def test_sentences_ship_with_the_package():
    normal, hard = load_sentences("normal"), load_sentences("hard")
    assert len(normal) >= 2000 and len(hard) >= 500
    assert load_sentences() == normal + hard
    assert len(set(normal)) == len(normal) and not set(normal) & set(hard)
    assert all(4 <= len(s.split()) <= 16 and s[0].isupper() and s[-1] in '.?!"' for s in normal)
    assert np.mean([_has_repetition(s) for s in hard]) > 0.95
    assert np.mean([_has_repetition(s) for s in normal]) < 0.05
    with pytest.raises(ValueError, match="kind"):
        load_sentences("easy")


def test_make_hard_sentence_repeats_words_or_phrases():
    rng = random.Random(0)
    base = "The old man walked home slowly."
    hard = [make_hard_sentence(base, rng) for _ in range(20)]
    assert all(len(h.split()) > len(base.split()) and _has_repetition(h) for h in hard)
    assert all(h.endswith(".") for h in hard)


def test_corpus_columns_and_types(corpus):
    assert set(corpus) == {"train", "test"}
    assert len(corpus["train"]) == 45 and len(corpus["test"]) == 15
    row = corpus["train"][0]
    expected = {"audio", "sampling_rate", "text", "phonemes", "voice", "gender", "pitch", "rate", "pitch_level",
                "rate_level", "sentence_id", "is_hard", "unseen_voice", "duration"}  # fmt: skip
    assert set(row) == expected
    audio = np.asarray(row["audio"], dtype=np.float32)
    assert row["sampling_rate"] == 22050 and 0.02 < np.abs(audio).max() <= 1.0
    assert row["duration"] == pytest.approx(len(audio) / 22050, rel=1e-5)
    assert row["gender"] in ("female", "male") and isinstance(row["is_hard"], bool)
    assert row["text"] == load_sentences()[row["sentence_id"]]
    assert row["phonemes"] == phonemize(row["text"], row["voice"].split("+")[0])


def test_split_holds_out_sentences_and_voices(corpus):
    train, test = corpus["train"], corpus["test"]
    assert not set(train["sentence_id"]) & set(test["sentence_id"])
    assert not set(train["text"]) & set(test["text"])
    unseen = {v for v, u in zip(test["voice"], test["unseen_voice"]) if u}
    assert len(unseen) >= 1 and not unseen & set(train["voice"])
    assert set(test.filter(lambda r: not r["unseen_voice"])["voice"]) <= set(train["voice"])
    assert not any(train["unseen_voice"])
    assert set(train["voice"]) <= set(default_voices())


def test_prosody_labels_match_settings_and_audio(corpus):
    train = corpus["train"]
    for row in train:
        low, high = DEFAULT_PITCH_LEVELS[row["pitch_level"]]
        assert low <= row["pitch"] <= high
        low, high = DEFAULT_RATE_LEVELS[row["rate_level"]]
        assert low <= row["rate"] <= high
    seconds_per_word = {level: [] for level in DEFAULT_RATE_LEVELS}
    for row in train:
        seconds_per_word[row["rate_level"]].append(row["duration"] / len(row["text"].split()))
    assert np.mean(seconds_per_word["slow"]) > np.mean(seconds_per_word["normal"]) > np.mean(seconds_per_word["fast"])


def test_corpus_is_deterministic_given_seed(corpus):
    again = build_tts_corpus(num_utterances=60, seed=0, test_fraction=0.25, num_test_voices=2)["test"]
    test = corpus["test"]
    assert again["text"] == test["text"] and again["voice"] == test["voice"] and again["pitch"] == test["pitch"]
    for a, b in zip(again["audio"], test["audio"]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = build_tts_corpus(num_utterances=15, seed=1, test_fraction=0.0)["train"]
    assert other["text"] != corpus["train"]["text"][:15]


def test_corpus_built_in_chunks_or_on_disk_equals_one_piece(corpus, monkeypatch, tmp_path):
    from ardm_trl.data import corpus as corpus_module

    monkeypatch.setattr(corpus_module, "_CHUNK_ROWS", 7)  # 45 train rows -> 7 Arrow chunks, 15 test rows -> 3
    chunked = build_tts_corpus(num_utterances=60, seed=0, test_fraction=0.25, num_test_voices=2)
    on_disk = build_tts_corpus(num_utterances=60, seed=0, test_fraction=0.25, num_test_voices=2, arrow_dir=tmp_path)
    for split in ("train", "test"):
        assert chunked[split].to_dict() == corpus[split].to_dict() == on_disk[split].to_dict()
        # memory-mapped from the split's Arrow file, not held in memory
        assert [f["filename"] for f in on_disk[split].cache_files] == [str(tmp_path / f"{split}.arrow")]
        assert not chunked[split].cache_files


def test_resampling_and_voice_subset():
    data = build_tts_corpus(
        num_utterances=4, seed=3, voices=["en-us+f1", "en+m3"], test_fraction=0.0, sampling_rate=16000,
        trim_silence=False,
    )  # fmt: skip
    assert len(data["train"]) == 4 and len(data["test"]) == 0
    native = build_tts_corpus(num_utterances=4, seed=3, voices=["en-us+f1", "en+m3"], test_fraction=0.0,
                              trim_silence=False)  # fmt: skip
    for row, reference in zip(data["train"], native["train"]):
        assert row["sampling_rate"] == 16000 and row["voice"] in ("en-us+f1", "en+m3")
        assert len(row["audio"]) == pytest.approx(len(reference["audio"]) * 16000 / 22050, abs=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_utterances": 0}, "num_utterances"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"voices": ["en-us", "en-us"]}, "distinct"),
        ({"voices": ["en-us", "en+m1"], "num_test_voices": 2}, "num_test_voices"),
        ({"pitch_levels": {"low": (120, 130)}}, "pitch_levels"),
        ({"rate_levels": {"slow": (200, 100)}}, "rate_levels"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_tts_corpus(**kwargs)

"""Tests of `ardm_trl.rewards`: each reward on audio with a known property, the calling convention, the errors."""

import math

import numpy as np
import pytest
import torch

from ardm_trl.rewards import (
    CTCLogLikelihoodReward,
    DNSMOSReward,
    ErrorRateReward,
    F0VarianceReward,
    SpeakerSimilarityReward,
    VoicePitchReference,
    character_error_rate,
    ctc_log_likelihood,
    dnsmos,
    evaluate_speech,
    f0_track,
    f0_variance,
    group_normalize,
    median_f0,
    normalize_text,
    score_speech,
    speaker_similarity,
    text_to_phonemes,
    transcribe,
    word_error_rate,
)

SR = 16000
SENTENCES = [
    "She opened the door and walked into the kitchen.",
    "My brother bought a new car last week.",
    "Please visit a famous cup at the airport.",
    "Three sheep left boldly across the green field.",
]


def harmonic_tone(f0_hz: np.ndarray, sr: int = SR) -> np.ndarray:
    """A voiced-like tone (7 harmonics, 1/k amplitudes) following the F0 contour `f0_hz` (one value per sample)."""
    phase = 2 * np.pi * np.cumsum(f0_hz) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def modulated_tone(center: float, depth: float, rate: float = 1.0, seconds: float = 3.0) -> np.ndarray:
    """F0(t) = center + depth * sin(2 pi rate t), in Hz."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return harmonic_tone((center + depth * torch.sin(2 * math.pi * rate * t)).numpy())


@pytest.fixture(scope="module")
def speech():
    """Espeak renderings of the test sentences in a male (en-us) and a female (en-us+f3) voice."""
    espeak = pytest.importorskip("ardm_trl.data.espeak")
    out = {}
    for voice in ("en-us", "en-us+f3"):
        for i, text in enumerate(SENTENCES):
            wav, sr = espeak.synthesize(text, voice=voice)
            out[voice, i] = wav
    return out, sr


class ToneCodec:
    """A stand-in codec: a latent `(F, D)` decodes to a 2 s 150 Hz tone whose F0 swings by `latent.mean()` Hz."""

    sampling_rate = SR

    def __init__(self):
        self.calls = 0

    def decode_list(self, latents):
        self.calls += 1
        return [modulated_tone(150.0, float(z.mean()), seconds=2.0) for z in latents]


# --- F0 variance ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ac", "shs"])
@pytest.mark.parametrize("f0", [100.0, 150.0, 250.0, 320.0])
def test_f0_tracker_reads_the_pitch_of_a_tone(f0, method):
    track = f0_track(harmonic_tone(np.full(SR * 2, f0)), SR, method=method)
    voiced = track[track > 0]
    assert len(voiced) > 0.9 * len(track)
    assert np.median(voiced) == pytest.approx(f0, rel=0.01)


def test_f0_tracker_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="'ac' or 'shs'"):
        f0_track(harmonic_tone(np.full(SR, 150.0)), SR, method="yin")
    with pytest.raises(ValueError, match="'ac' or 'shs'"):
        VoicePitchReference(["a"], np.ones((1, 256)), np.ones(1), f0_method="yin")


def test_f0_variance_is_zero_when_flat_and_grows_with_modulation_depth():
    flat = f0_variance(modulated_tone(150.0, 0.0), SR)
    depths = [5.0, 10.0, 20.0]
    values = [f0_variance(modulated_tone(150.0, d), SR) for d in depths]
    assert flat < 0.05
    assert values[0] < values[1] < values[2]
    # A 1 Hz swing sits in the pass band: F0V is the sine's std, depth / sqrt(2), within the filter's ~5% loss.
    for depth, value in zip(depths, values):
        assert value == pytest.approx(depth / math.sqrt(2), rel=0.08)
    # Female range too (the reason we do not use torchaudio's detect_pitch_frequency).
    assert f0_variance(modulated_tone(250.0, 0.0), SR) < 0.05
    assert f0_variance(modulated_tone(250.0, 30.0), SR) == pytest.approx(30 / math.sqrt(2), rel=0.08)


def test_f0_variance_band_keeps_phrase_level_and_drops_fast_and_slow_motion():
    phrase = f0_variance(modulated_tone(150.0, 20.0, rate=1.0), SR)
    syllable_rate = f0_variance(modulated_tone(150.0, 20.0, rate=8.0), SR)
    drift = f0_variance(modulated_tone(150.0, 20.0, rate=0.05), SR)
    assert syllable_rate < 0.1 * phrase
    assert drift < 0.1 * phrase


def test_f0_variance_in_semitones_does_not_depend_on_the_register():
    t = np.arange(3 * SR) / SR
    swing = 2.0 ** (2.0 * np.sin(2 * np.pi * t) / 12)  # +-2 semitones at 1 Hz
    low, high = harmonic_tone(120.0 * swing), harmonic_tone(240.0 * swing)
    st_low, st_high = f0_variance(low, SR, unit="semitones"), f0_variance(high, SR, unit="semitones")
    assert st_low == pytest.approx(st_high, rel=0.03)
    assert st_low == pytest.approx(2.0 / math.sqrt(2), rel=0.08)
    assert f0_variance(high, SR) == pytest.approx(2 * f0_variance(low, SR), rel=0.05)  # Hz scales with register


@pytest.mark.speech
def test_f0_variance_of_espeak_speech_grows_with_pitch_excursion(speech):
    """Resynthesise espeak speech (PSOLA) with its pitch excursions around the median scaled by k: F0V ~ k.

    (k <= 1: widening the excursions pushes the lowest F0 of espeak's male voice below the tracker's 60 Hz floor.)"""
    parselmouth = pytest.importorskip("parselmouth")
    from parselmouth.praat import call

    waves, sr = speech
    for voice, low, high in (("en-us", 70, 160), ("en-us+f3", 170, 330)):
        wav = waves[voice, 1]
        track = f0_track(wav, sr)
        median = float(np.median(track[track > 0]))
        assert low < median < high  # the tracker finds male and female registers
        values = []
        for k in (0.0, 0.5, 1.0):
            manipulation = call(parselmouth.Sound(wav.astype(np.float64), sr), "To Manipulation", 0.01, 60, 600)
            tier = call(manipulation, "Extract pitch tier")
            call(tier, "Formula", f"{median} + {k} * (self - {median})")
            call([tier, manipulation], "Replace pitch tier")
            resynthesised = call(manipulation, "Get resynthesis (overlap-add)").values[0].astype(np.float32)
            values.append(f0_variance(resynthesised, sr, adaptive_range=False))
            # the default two-pass tracker agrees with one pass on clean speech (it only removes octave jumps)
            assert f0_variance(resynthesised, sr) == pytest.approx(values[-1], rel=0.1, abs=0.5)
        assert values[0] < 0.1 * values[2]  # monotone speech
        assert values[1] == pytest.approx(0.5 * values[2], rel=0.15)


def test_f0_variance_drops_frames_far_from_the_median():
    """With `outlier_semitones`, a stretch 7.4 semitones above a steady tone (as a tracker's jump on decoded speech)
    no longer counts: F0V falls to near the steady tone's; a modulation within the threshold is untouched."""
    steady = np.full(int(SR * 1.6), 150.0)
    jump = np.concatenate([steady[: int(SR * 0.8)], np.full(int(SR * 0.15), 230.0), steady[int(SR * 0.95):]])
    wav = harmonic_tone(jump)
    kept = f0_variance(wav, SR, adaptive_range=False)
    dropped = f0_variance(wav, SR, adaptive_range=False, outlier_semitones=6.0)
    assert kept > 10.0 and dropped < 0.2 * kept
    modulated = modulated_tone(150.0, 20.0)
    assert f0_variance(modulated, SR, outlier_semitones=6.0) == pytest.approx(f0_variance(modulated, SR), rel=1e-6)
    with pytest.raises(ValueError, match="outlier_semitones"):
        f0_variance(modulated, SR, outlier_semitones=0.0)


def test_f0_variance_is_none_without_voicing():
    rng = np.random.default_rng(0)
    assert f0_variance(np.zeros(SR, dtype=np.float32), SR) is None
    assert f0_variance(np.zeros(100, dtype=np.float32), SR) is None  # shorter than the tracker's window
    reward = F0VarianceReward()
    noise = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    out = reward(prompts=["a", "b"], audio=[np.zeros(SR, dtype=np.float32), noise], sampling_rate=SR)
    assert out[0] is None and (out[1] is None or math.isfinite(out[1]))


# --- calling convention ---------------------------------------------------------------------------------------


def test_reward_decodes_completions_through_the_codec_and_prefers_given_audio():
    codec = ToneCodec()
    reward = F0VarianceReward(codec=codec)
    assert reward.__name__ == "f0_variance"
    completions = [torch.full((12, 4), depth) for depth in (0.0, 10.0, 20.0)]
    scores = reward(prompts=["x"] * 3, completions=completions, voice=["a"] * 3, phonemes=["p"] * 3)
    assert codec.calls == 1
    assert scores[0] < 0.05 < scores[1] < scores[2]
    assert scores[2] == pytest.approx(f0_variance(modulated_tone(150.0, 20.0, seconds=2.0), SR))
    audio = [modulated_tone(150.0, 5.0, seconds=2.0)] * 3
    given = reward(prompts=["x"] * 3, completions=completions, audio=audio, sampling_rate=SR)
    assert codec.calls == 1  # the decoded audio was used, the codec was not called again
    assert given == pytest.approx([f0_variance(audio[0], SR)] * 3)
    assert F0VarianceReward(name="f0v_custom").__name__ == "f0v_custom"


def test_bad_inputs_raise_clear_value_errors():
    reward = F0VarianceReward()
    tone = modulated_tone(150.0, 0.0, seconds=0.5)
    with pytest.raises(ValueError, match="codec"):
        reward(prompts=["a"], completions=[torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="audio="):
        reward(prompts=["a"])
    with pytest.raises(ValueError, match="sampling_rate"):
        reward(prompts=["a"], audio=[tone])
    with pytest.raises(ValueError, match="2 samples to score but 3 `prompts`"):
        reward(prompts=["a", "b", "c"], audio=[tone, tone], sampling_rate=SR)
    with pytest.raises(ValueError, match="completions"):
        reward(prompts=["a"], completions=[torch.zeros(3, 2)] * 2, audio=[tone], sampling_rate=SR)
    with pytest.raises(ValueError, match="mono"):
        reward(prompts=["a"], audio=[np.stack([tone, tone])], sampling_rate=SR)
    with pytest.raises(ValueError, match="codec"):
        F0VarianceReward(codec=object())
    with pytest.raises(ValueError, match="unit"):
        F0VarianceReward(unit="cents")
    with pytest.raises(ValueError, match="prompts"):
        CTCLogLikelihoodReward()(audio=[tone], sampling_rate=SR)
    with pytest.raises(ValueError, match="prompt_audio"):
        SpeakerSimilarityReward()(prompts=["a"], audio=[tone], sampling_rate=SR)
    with pytest.raises(ValueError, match="one entry per sample|entries"):
        SpeakerSimilarityReward()(prompts=["a"], audio=[tone], sampling_rate=SR, prompt_audio=[tone, tone])


# --- group normalisation --------------------------------------------------------------------------------------


def test_group_normalize_zero_mean_unit_std_per_group():
    rewards = torch.tensor([1.0, 2.0, 6.0, 10.0, 10.0, 3.0, 4.0, float("nan"), 9.0, -1.0])
    groups = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3]
    out = group_normalize(rewards, groups)
    for g in (0, 3):
        idx = [i for i, gid in enumerate(groups) if gid == g and not math.isnan(rewards[i])]
        assert out[idx].mean().item() == pytest.approx(0.0, abs=1e-6)
        assert out[idx].std(correction=0).item() == pytest.approx(1.0, abs=1e-5)
    assert out[3].item() == 0.0 and out[4].item() == 0.0  # constant group
    assert out[5].item() == 0.0  # group of one
    assert math.isnan(out[7].item())  # undefined reward stays undefined, left out of its group's statistics
    assert torch.equal(out.isnan(), rewards.isnan())
    as_tensor_ids = group_normalize(rewards, torch.tensor(groups))
    as_text_ids = group_normalize(rewards, [f"prompt {g}" for g in groups])
    torch.testing.assert_close(as_tensor_ids, out, equal_nan=True)
    torch.testing.assert_close(as_text_ids, out, equal_nan=True)
    # invariant to a per-group affine change of the rewards (what makes it a per-prompt baseline)
    shifted = rewards * 3.0 + torch.tensor([g * 100.0 for g in groups])
    torch.testing.assert_close(group_normalize(shifted, groups), out, equal_nan=True, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="group_ids"):
        group_normalize(rewards, groups[:-1])


# --- CTC log-likelihood ---------------------------------------------------------------------------------------


@pytest.mark.speech
def test_ctc_log_likelihood_prefers_the_right_transcript(speech):
    waves, sr = speech
    for (voice, i), wav in waves.items():
        scores = [ctc_log_likelihood(wav, sr, text) for text in SENTENCES]
        assert int(np.argmax(scores)) == i, (voice, i, scores)
        wrong = max(s for j, s in enumerate(scores) if j != i)
        assert scores[i] > -1.5 and scores[i] - wrong > 2.0  # nats per phoneme token
    reward = CTCLogLikelihoodReward()
    assert reward.__name__ == "ctc_log_likelihood"
    out = reward(prompts=[SENTENCES[0], SENTENCES[1]], audio=[waves["en-us", 0]] * 2, sampling_rate=sr)
    assert out[0] > out[1]
    total = CTCLogLikelihoodReward(normalize="none")(
        prompts=[SENTENCES[0]], audio=[waves["en-us", 0]], sampling_rate=sr
    )
    assert total[0] == pytest.approx(out[0] * len(text_to_phonemes(SENTENCES[0])), rel=1e-5)


@pytest.mark.speech
def test_ctc_target_ignores_punctuation_and_undefined_cases_give_none(speech):
    waves, sr = speech
    assert text_to_phonemes("Hello, world!") == text_to_phonemes("hello world")
    assert text_to_phonemes("hello world").count("<wb>") == 1
    assert ctc_log_likelihood(waves["en-us", 0], sr, "?!") is None  # no phonemes
    assert ctc_log_likelihood(waves["en-us", 0][:400], sr, SENTENCES[0]) is None  # too short to align
    reward = CTCLogLikelihoodReward(text_column="transcript")
    out = reward(prompts=["ignored"], audio=[waves["en-us", 0]], sampling_rate=sr, transcript=[SENTENCES[0]])
    assert out[0] == pytest.approx(ctc_log_likelihood(waves["en-us", 0], sr, SENTENCES[0]))


@pytest.mark.speech
def test_ctc_token_rewards_sum_to_the_reward_and_find_the_damaged_part(speech):
    waves, sr = speech
    wav = waves["en-us", 0]
    reward = CTCLogLikelihoodReward()
    token_seconds = 0.1
    count = int(np.ceil(len(wav) / sr / token_seconds))
    (tokens,) = reward.token_rewards(prompts=[SENTENCES[0]], audio=[wav], sampling_rate=sr,
                                     token_seconds=token_seconds, num_tokens=[count])
    assert tokens.shape == (count,)
    assert tokens.sum() == pytest.approx(reward(prompts=[SENTENCES[0]], audio=[wav], sampling_rate=sr)[0], rel=1e-4)
    # silence over the middle third: the tokens there lose most, the first tokens are untouched
    damaged = wav.copy()
    third = len(wav) // 3
    damaged[third : 2 * third] = 0.0
    (worse,) = reward.token_rewards(prompts=[SENTENCES[0]], audio=[damaged], sampling_rate=sr,
                                    token_seconds=token_seconds, num_tokens=[count])
    change = worse - tokens
    middle = slice(count // 3, 2 * count // 3)
    assert change.sum() < -1.0
    assert change[middle].sum() < 0.5 * change.sum()  # most of the loss lies in the damaged span
    with pytest.raises(ValueError, match="token_seconds"):
        reward.token_rewards(prompts=[SENTENCES[0]], audio=[wav], sampling_rate=sr, token_seconds=0, num_tokens=[1])
    with pytest.raises(NotImplementedError, match="per-token"):
        SpeakerSimilarityReward().token_rewards(audio=[wav], sampling_rate=sr, token_seconds=0.1, num_tokens=[count])


# --- WER / CER ------------------------------------------------------------------------------------------------


def test_normalize_text_and_error_rates():
    assert normalize_text("  Don't STOP -- it's 9 o'clock!  ") == "dont stop its 9 oclock"
    assert word_error_rate("the cat sat", "The cat, sat.") == 0.0
    assert word_error_rate("the dog sat", "the cat sat") == pytest.approx(1 / 3)
    assert word_error_rate("", "the cat sat") == 1.0
    assert character_error_rate("the cat", "the cap") == pytest.approx(1 / 7)
    assert word_error_rate("anything", "!!") is None


@pytest.mark.speech
def test_whisper_transcribes_clear_speech_and_not_noise(speech):
    waves, sr = speech
    clear = waves["en-us", 0]
    noise = (0.1 * np.random.default_rng(0).standard_normal(3 * sr)).astype(np.float32)
    reversed_speech = clear[::-1].copy()
    hypotheses = transcribe([clear, noise, reversed_speech], sr)
    assert word_error_rate(hypotheses[0], SENTENCES[0]) <= 0.2
    assert word_error_rate(hypotheses[1], SENTENCES[0]) >= 0.9
    assert word_error_rate(hypotheses[2], SENTENCES[0]) >= 0.7
    reward = ErrorRateReward()
    assert reward.__name__ == "neg_wer" and ErrorRateReward(metric="cer").__name__ == "neg_cer"
    out = reward(prompts=[SENTENCES[0]] * 2, audio=[clear, noise], sampling_rate=sr)
    assert out[0] == pytest.approx(-word_error_rate(hypotheses[0], SENTENCES[0]))
    assert out[0] > out[1] == -1.0


# --- speaker similarity ---------------------------------------------------------------------------------------


@pytest.mark.speech
def test_speaker_similarity_same_voice_beats_different_voice(speech):
    waves, sr = speech
    same = speaker_similarity(waves["en-us", 0], waves["en-us", 1], sr)
    different = speaker_similarity(waves["en-us", 0], waves["en-us+f3", 1], sr)
    assert same > different + 0.1
    reward = SpeakerSimilarityReward()
    reference = {"array": waves["en-us", 0], "sampling_rate": sr}  # a datasets.Audio entry
    out = reward(
        prompts=["a", "b", "c"],
        audio=[waves["en-us", 1], waves["en-us+f3", 1], np.zeros(sr, dtype=np.float32)],
        sampling_rate=sr,
        prompt_audio=[reference] * 3,
    )
    assert out[0] == pytest.approx(same, abs=1e-5) and out[1] == pytest.approx(different, abs=1e-5)
    assert out[2] is None  # silence has no speaker


# --- pitch relative to the voice ------------------------------------------------------------------------------


@pytest.mark.speech
def test_voice_pitch_reference_identifies_voices_and_measures_pitch_against_their_norm():
    """Held-out sentences by four corpus voices at espeak pitch levels low / mid / high: each is matched to its own
    voice, and its F0 relative to that voice's `mid` norm is below zero, near zero and above zero respectively,
    although the female voices' low pitch lies far above the male voices' high pitch in absolute Hz."""
    from ardm_trl.data import build_tts_corpus

    corpus = build_tts_corpus(96, seed=0, voices=["en-us+f3", "en-us+m3", "en+f1", "en+m7"], num_test_voices=0,
                              test_fraction=0.25, hard_fraction=0.0)  # fmt: skip
    reference = VoicePitchReference.from_dataset(corpus["train"])
    assert reference.voices == ["en+f1", "en+m7", "en-us+f3", "en-us+m3"]
    assert reference.reference_f0[0] > 1.5 * reference.reference_f0[1]  # female norm far above male norm
    test = corpus["test"]
    audio = [np.asarray(a, dtype=np.float32) for a in test["audio"]]
    scores = reference.relative_f0(audio, test["sampling_rate"][0])
    assert all(s is not None for s in scores)
    assert [s["voice"] for s in scores] == test["voice"]
    by_level = {level: [s["semitones"] for s, lv in zip(scores, test["pitch_level"]) if lv == level]
                for level in ("low", "mid", "high")}  # fmt: skip
    assert all(len(v) >= 3 for v in by_level.values())
    assert np.mean(by_level["low"]) < -2 and abs(np.mean(by_level["mid"])) < 1 and np.mean(by_level["high"]) > 2
    assert scores[0]["median_f0"] == pytest.approx(median_f0(audio[0], test["sampling_rate"][0]))
    # the spectral tracker on the same clean speech: the same verdicts, F0 within a few percent of autocorrelation
    spectral = VoicePitchReference(reference.voices, reference.centroids, reference.reference_f0, f0_method="shs")
    shs_scores = spectral.relative_f0(audio, test["sampling_rate"][0])
    assert [s["voice"] for s in shs_scores] == test["voice"]
    assert shs_scores[0]["median_f0"] == pytest.approx(median_f0(audio[0], test["sampling_rate"][0], method="shs"))
    ratios = [s["median_f0"] / a["median_f0"] for s, a in zip(shs_scores, scores)]
    assert np.median(np.abs(np.log(ratios))) < 0.05
    shs_levels = {level: np.mean([s["semitones"] for s, lv in zip(shs_scores, test["pitch_level"]) if lv == level])
                  for level in ("low", "mid", "high")}  # fmt: skip
    assert shs_levels["low"] < -2 and abs(shs_levels["mid"]) < 1 and shs_levels["high"] > 2
    silence = np.zeros(16000, dtype=np.float32)
    assert reference.relative_f0([silence], 16000) == [None]
    assert reference.relative_f0(audio[:1], test["sampling_rate"][0], min_similarity=1.01) == [None]
    with pytest.raises(ValueError, match="pitch level 'mid'"):  # a voice never heard at the reference level
        VoicePitchReference.from_audio(audio[:1], test["sampling_rate"][0], ["v"], ["high"])
    with pytest.raises(ValueError, match="one entry per utterance"):
        VoicePitchReference.from_audio(audio[:2], test["sampling_rate"][0], ["v"], ["mid"])
    with pytest.raises(ValueError, match="one row per voice"):
        VoicePitchReference(["a", "b"], np.ones((1, 256)), np.ones(2))


# --- DNSMOS ---------------------------------------------------------------------------------------------------


@pytest.mark.speech
def test_dnsmos_clean_speech_beats_noisy_speech(speech):
    waves, sr = speech
    clean = waves["en-us", 0]
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noise *= clean.std() / noise.std()
    noisy, very_noisy = np.clip(clean + 0.3 * noise, -1, 1), np.clip(clean + noise, -1, 1)  # 10 dB and 0 dB SNR
    scores = dnsmos([clean, noisy, very_noisy, np.zeros(sr, dtype=np.float32)], sr)
    background = [score["bak_mos"] for score in scores[:3]]
    assert background[0] > background[1] + 1.0 and background[1] > background[2] + 0.3  # falls with the SNR
    assert scores[0]["ovrl_mos"] > scores[2]["ovrl_mos"] + 0.3  # overall quality: clean > 0 dB SNR
    assert scores[3] is None  # silence
    out = DNSMOSReward()(audio=[clean, very_noisy], sampling_rate=sr)
    assert out == pytest.approx([scores[0]["ovrl_mos"], scores[2]["ovrl_mos"]])
    assert DNSMOSReward(key="bak_mos")(audio=[noisy], sampling_rate=sr) == pytest.approx([background[1]])
    with pytest.raises(ValueError, match="key"):
        DNSMOSReward(key="mos")


# --- evaluation helper ----------------------------------------------------------------------------------------


@pytest.mark.speech
def test_evaluate_speech_reports_every_metric(speech):
    waves, sr = speech
    audio = [waves["en-us", 0], waves["en-us", 1]]
    result = evaluate_speech(audio, sr, SENTENCES[:2], reference_audio=[waves["en-us", 2]] * 2)
    assert list(result) == ["f0v", "wer", "cer", "ctc_nll", "sim", "dnsmos"]
    assert 0 <= result["wer"] <= 30 and 0 <= result["cer"] <= result["wer"] + 1e-9  # percent
    assert 0 < result["ctc_nll"] < 1.5 and 0 < result["f0v"] < 50 and 0.6 < result["sim"] <= 1
    assert 1 < result["dnsmos"] < 5
    assert list(evaluate_speech(audio, sr, SENTENCES[:2], metrics=("f0v",))) == ["f0v"]
    robust = score_speech(audio, sr, SENTENCES[:2], metrics=("f0v_robust",))["f0v_robust"]
    assert robust == pytest.approx(F0VarianceReward(outlier_semitones=6.0)(audio=audio, sampling_rate=sr))
    with pytest.raises(ValueError, match="reference_audio"):
        evaluate_speech(audio, sr, SENTENCES[:2], metrics=("sim",))
    with pytest.raises(ValueError, match="Unknown metrics"):
        evaluate_speech(audio, sr, SENTENCES[:2], metrics=("mos",))
    with pytest.raises(ValueError, match="texts"):
        evaluate_speech(audio, sr, SENTENCES[:1], metrics=("f0v",))


def test_empty_waveforms_do_not_crash_the_evaluators():
    """A model that stops at once yields a zero-length sample: resampling and scoring must not crash on it."""
    from ardm_trl.rewards.base import resample

    assert resample(np.zeros(0, dtype=np.float32), 22050, 16000).shape == (0,)
    assert F0VarianceReward()(prompts=["a"], completions=None, audio=[np.zeros(0, dtype=np.float32)],
                              sampling_rate=22050) == [None]


def test_f0_reward_can_score_unvoiced_samples_with_a_fill_value():
    silence = np.zeros(22050, dtype=np.float32)
    assert F0VarianceReward()(prompts=["a"], completions=None, audio=[silence], sampling_rate=22050) == [None]
    assert F0VarianceReward(unvoiced_value=0.0)(prompts=["a"], completions=None, audio=[silence],
                                                sampling_rate=22050) == [0.0]


def _tone(freq, seconds=1.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr


@pytest.mark.speech
def test_pitch_level_reads_semitones_and_spreads_over_tokens():
    from ardm_trl.rewards import PitchLevelReward

    low, sr = _tone(200.0)
    high, _ = _tone(400.0)
    reward = PitchLevelReward(method="ac")
    values = reward(audio=[low, high], sampling_rate=sr)
    assert values[0] == pytest.approx(12.0, abs=0.3) and values[1] == pytest.approx(24.0, abs=0.3)
    relative = PitchLevelReward(method="ac", reference_column="prompt_audio")(
        audio=[high], sampling_rate=sr, prompt_audio=[{"array": low, "sampling_rate": sr}])
    assert relative[0] == pytest.approx(12.0, abs=0.3)  # an octave above the prompt
    (tokens,) = reward.token_rewards(audio=[high], sampling_rate=sr, token_seconds=0.1, num_tokens=[10])
    assert tokens.shape == (10,) and tokens.sum() == pytest.approx(values[1], rel=1e-6)
    assert PitchLevelReward(unvoiced_value=0.0)(audio=[np.zeros(16000, np.float32)], sampling_rate=16000) == [0.0]
    with pytest.raises(ValueError, match="method"):
        PitchLevelReward(method="yin")


@pytest.mark.speech
def test_pitch_level_clips_frames_far_from_the_median():
    """A stretch 7 semitones up (as a tracker jump on decoded speech) moves the plain mean by its share of frames x 7
    semitones and the default clipped mean by at most its share x `clip_semitones`; token rewards sum to the reward."""
    from ardm_trl.rewards import PitchLevelReward

    base, sr = _tone(200.0, seconds=0.8)
    jump, _ = _tone(300.0, seconds=0.2)
    audio = np.concatenate([base, jump])
    plain = PitchLevelReward(method="ac", clip_semitones=None)(audio=[audio], sampling_rate=sr)[0]
    clipped_reward = PitchLevelReward(method="ac")
    clipped = clipped_reward(audio=[audio], sampling_rate=sr)[0]
    assert plain > 13.1  # 12 st for 200 Hz, pulled up by the 19 st stretch
    assert 12.0 - 0.2 < clipped < 12.0 + 0.2 * 2.0 + 0.2
    (tokens,) = clipped_reward.token_rewards(audio=[audio], sampling_rate=sr, token_seconds=0.1, num_tokens=[10])
    assert tokens.sum() == pytest.approx(clipped, rel=1e-6)
    with pytest.raises(ValueError, match="clip_semitones"):
        PitchLevelReward(clip_semitones=0.0)

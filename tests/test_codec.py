"""Tests of the continuous-latent speech codec: shapes, masks, normalisation, training, reload, bundled checkpoint."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

from ardm_trl.audio import PRETRAINED_CODEC_DIR, SpeechCodecConfig, SpeechCodecModel, load_pretrained_codec
from ardm_trl.data import synthesize

torch.set_num_threads(1)
TINY = {"hidden_size": 16, "num_blocks": 1, "latent_dim": 4, "griffin_lim_iters": 4}


@pytest.fixture(scope="module")
def speech():
    texts = ["The quick brown fox jumps over the lazy dog.", "Hello there.", "Why did the old man walk home?"]
    return [synthesize(text, voice)[0] for text, voice in zip(texts, ["en-us+f2", "en+m3", "en-us+m1"])]


def _log_mel_l1(codec: SpeechCodecModel, a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    fa = codec.features(torch.from_numpy(a[:n])[None])
    fb = codec.features(torch.from_numpy(np.ascontiguousarray(b[:n]))[None])
    return (fa - fb).abs().mean().item()


def test_config_frame_rate_and_validation():
    config = SpeechCodecConfig()
    assert config.frame_rate == pytest.approx(22050 / 512) and config.samples_per_frame == 512
    with pytest.raises(ValueError, match="f_max"):
        SpeechCodecConfig(f_max=12000.0)
    with pytest.raises(ValueError, match="odd"):
        SpeechCodecConfig(kernel_size=4)
    with pytest.raises(ValueError, match="latent_dim"):
        SpeechCodecConfig(latent_dim=0)
    assert isinstance(AutoConfig.for_model("ardm_speech_codec"), SpeechCodecConfig)


def test_encode_shapes_and_masks():
    model = SpeechCodecModel(SpeechCodecConfig(**TINY)).eval()
    waveforms = torch.randn(2, 22050) * 0.1
    lengths = torch.tensor([22050, 5000])
    latents, mask = model.encode(waveforms, lengths)
    expected_frames = -(-(22050 // 256 + 1) // 2)
    assert latents.shape == (2, expected_frames, 4) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [expected_frames, -(-(5000 // 256 + 1) // 2)]
    assert torch.all(latents[1, ~mask[1]] == 0)
    audio, audio_lengths = model.decode(latents, mask)
    assert audio.shape == (2, (expected_frames * 2 - 1) * 256)
    assert audio_lengths.tolist() == model.num_samples(mask.sum(1)).tolist()
    assert torch.all(audio[1, audio_lengths[1] :] == 0)


def test_decode_is_deterministic_and_batched_like_single(speech):
    model = SpeechCodecModel(SpeechCodecConfig(**TINY)).eval()
    latents = model.encode_list(speech[:2])
    batched = model.decode_list(latents)
    assert [len(x) for x in batched] == [int(model.num_samples(torch.tensor(len(x)))) for x in latents]
    np.testing.assert_array_equal(batched[0], model.decode_list(latents)[0])
    for latent, together in zip(latents, batched):
        alone = model.decode_list([latent])[0]
        assert len(alone) == len(together)
        assert _log_mel_l1(model, alone, together) < 0.05


def test_latent_statistics_normalise_the_latents(speech):
    model = SpeechCodecModel(SpeechCodecConfig(**TINY)).eval()
    model.set_mel_statistics(speech)
    raw = torch.cat(model.encode_list(speech))
    assert raw.std(0).min() < 0.5 or raw.mean(0).abs().max() > 0.1  # an untrained encoder is not normalised
    model.set_latent_statistics(speech)
    latents = torch.cat(model.encode_list(speech))
    torch.testing.assert_close(latents.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(latents.std(0), torch.ones(4), atol=1e-3, rtol=0)


def test_training_reduces_reconstruction_loss(speech):
    torch.manual_seed(0)
    model = SpeechCodecModel(SpeechCodecConfig(**{**TINY, "hidden_size": 32}))
    model.set_mel_statistics(speech)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    waveforms = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in speech], batch_first=True)
    lengths = torch.tensor([len(w) for w in speech])
    losses = []
    for _ in range(40):
        loss = model(waveforms, lengths).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_save_and_reload_give_identical_outputs(tmp_path, speech):
    model = SpeechCodecModel(SpeechCodecConfig(**TINY)).eval()
    model.set_mel_statistics(speech)
    model.set_latent_statistics(speech)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, SpeechCodecModel)
    torch.testing.assert_close(reloaded.latent_std, model.latent_std, rtol=0, atol=0)
    a, b = model.encode_list(speech[:1]), reloaded.encode_list(speech[:1])
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    np.testing.assert_array_equal(model.decode_list(a)[0], reloaded.decode_list(a)[0])


def test_bad_inputs_raise():
    model = SpeechCodecModel(SpeechCodecConfig(**TINY))
    with pytest.raises(ValueError, match="batch, samples"):
        model.encode(torch.zeros(1, 1, 4000))
    with pytest.raises(ValueError, match="at least"):
        model.encode(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="lengths"):
        model.encode(torch.zeros(2, 4000), torch.tensor([4000, 5000]))
    with pytest.raises(ValueError, match="latents"):
        model.decode(torch.zeros(1, 10, 5))


def test_audio_at_another_sampling_rate_is_resampled_before_encoding(speech):
    """44.1 kHz audio told as such encodes like the same audio at the codec's 22.05 kHz (and unlike the 44.1 kHz
    samples read as 22.05 kHz, which is what a missing `sampling_rate` would do)."""
    import torchaudio.functional

    model = SpeechCodecModel(SpeechCodecConfig(**TINY)).eval()
    audio = torch.from_numpy(speech[1])
    high = torchaudio.functional.resample(audio, 22050, 44100)
    reference = model.encode_list([audio])[0]
    resampled = model.encode_list([high], sampling_rate=44100)[0]
    misread = model.encode_list([high])[0]
    assert abs(resampled.shape[0] - reference.shape[0]) <= 1 and misread.shape[0] > 1.8 * reference.shape[0]
    n = min(len(resampled), len(reference))
    assert (resampled[:n] - reference[:n]).abs().mean() < 0.1 * (misread[:n] - reference[:n]).abs().mean() + 1e-3
    with pytest.raises(ValueError, match="sampling_rate"):
        model.encode(high[None], sampling_rate=0)


@pytest.mark.skipif(not (PRETRAINED_CODEC_DIR / "config.json").is_file(), reason="no bundled checkpoint")
def test_bundled_codec_round_trip(speech):
    codec = load_pretrained_codec()
    assert codec.sampling_rate == 22050 and codec.latent_dim == 16 and codec.frame_rate == pytest.approx(43.07, 0.01)
    latents = codec.encode_list(speech)
    stacked = torch.cat(latents)
    assert stacked.mean(0).abs().max() < 0.6 and 0.4 < stacked.std(0).mean() < 1.6  # roughly normalised
    decoded = codec.decode_list(latents)
    untrained = SpeechCodecModel(codec.config).eval()
    untrained.load_state_dict({k: v for k, v in codec.state_dict().items() if "_mean" in k or "_std" in k},
                              strict=False)  # fmt: skip
    for original, output in zip(speech, decoded):
        assert _log_mel_l1(codec, original, output) < 0.6
    baseline = untrained.decode_list(untrained.encode_list(speech[:1]))[0]
    assert _log_mel_l1(codec, speech[0], decoded[0]) < 0.5 * _log_mel_l1(codec, speech[0], baseline)

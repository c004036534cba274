"""Tests of the FSQ speech tokenizer: quantiser algebra, shapes, training, reload, bundled checkpoint."""

import numpy as np
import pytest
import torch
from transformers import AutoModel

from ardm_trl.audio import (
    PRETRAINED_TOKENIZER_DIR,
    FiniteScalarQuantizer,
    SpeechCodecConfig,
    SpeechTokenizerConfig,
    SpeechTokenizerModel,
    load_pretrained_codec,
    load_pretrained_tokenizer,
)
from ardm_trl.data import synthesize

torch.set_num_threads(1)
TINY_CODEC = {"hidden_size": 16, "num_blocks": 1, "latent_dim": 4, "griffin_lim_iters": 4}


def _tiny_tokenizer(**kwargs) -> SpeechTokenizerModel:
    config = SpeechTokenizerConfig(codec_config=SpeechCodecConfig(**TINY_CODEC), hidden_size=16, num_blocks=1,
                                   **{"fsq_levels": [4, 3, 3], **kwargs})  # fmt: skip
    return SpeechTokenizerModel(config).eval()


@pytest.fixture(scope="module")
def speech():
    texts = ["The quick brown fox jumps over the lazy dog.", "Hello there.", "Why did the old man walk home?"]
    return [synthesize(text, voice)[0] for text, voice in zip(texts, ["en-us+f2", "en+m3", "en-us+m1"])]


def test_fsq_grid_is_a_bijection_with_straight_through_gradient():
    quantizer = FiniteScalarQuantizer([8, 5, 5, 5])
    assert quantizer.codebook_size == 1000 and quantizer.dim == 4
    ids = torch.arange(1000)
    codes = quantizer.ids_to_codes(ids)  # (1000, 4) in [-1, 1]
    assert codes.min() >= -1 and codes.max() <= 1 and len(torch.unique(codes, dim=0)) == 1000
    # invert the tanh bound: inputs that land exactly on each grid point must give back the same id and code
    levels = torch.tensor([8.0, 5.0, 5.0, 5.0])
    half_l, offset = (levels - 1) * (1 + 1e-3) / 2, torch.tensor([0.5, 0.0, 0.0, 0.0])
    grid = codes * (levels // 2)
    z = (torch.atanh((grid + offset) / half_l) - torch.atanh(offset / half_l)).requires_grad_()
    quantized, recovered = quantizer(z)
    assert torch.equal(recovered, ids)
    torch.testing.assert_close(quantized.detach(), codes)
    quantized.pow(2).sum().backward()
    assert z.grad.abs().sum() > 0  # straight-through: rounding does not block the gradient
    with pytest.raises(ValueError, match="Token ids"):
        quantizer.ids_to_codes(torch.tensor([1000]))


def test_fsq_uses_every_code_on_spread_inputs():
    quantizer = FiniteScalarQuantizer([4, 3])
    _, ids = quantizer(torch.randn(5000, 2) * 3)
    assert set(ids.tolist()) == set(range(12))


def test_config():
    config = SpeechTokenizerConfig()
    assert config.codebook_size == 1000 and config.frame_rate == pytest.approx(22050 / 512)
    assert isinstance(config.codec_config, SpeechCodecConfig)
    with pytest.raises(ValueError, match="fsq_levels"):
        SpeechTokenizerConfig(fsq_levels=[8, 1])
    with pytest.raises(ValueError, match="kernel_size"):
        SpeechTokenizerConfig(kernel_size=2)


def test_encode_decode_shapes(speech):
    tokenizer = _tiny_tokenizer()
    waveforms = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in speech], batch_first=True)
    lengths = torch.tensor([len(w) for w in speech])
    ids, mask = tokenizer.encode(waveforms, lengths)
    latents, latents_mask = tokenizer.codec.encode(waveforms, lengths)
    assert ids.dtype == torch.long and ids.shape == latents.shape[:2] and torch.equal(mask, latents_mask)
    assert ids.min() >= 0 and ids.max() < tokenizer.codebook_size == 36
    assert torch.all(ids[~mask] == 0)
    torch.testing.assert_close(tokenizer.encode_latents(latents, mask)[0], ids)
    audio, audio_lengths = tokenizer.decode(ids, mask)
    assert audio.shape[0] == 3 and audio_lengths.tolist() == tokenizer.codec.num_samples(mask.sum(1)).tolist()
    decoded = tokenizer.decode_list([x[m] for x, m in zip(ids, mask)])
    assert [len(x) for x in decoded] == audio_lengths.tolist()
    assert tokenizer.decode_latents(ids, mask).shape == latents.shape
    with pytest.raises(ValueError, match="Token ids"):
        tokenizer.decode(torch.full((1, 5), 36))


def test_training_reduces_loss_and_keeps_codec_frozen(speech):
    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer().train()
    tokenizer.codec.requires_grad_(False)
    codec_before = {k: v.clone() for k, v in tokenizer.codec.state_dict().items()}
    parameters = [p for name, p in tokenizer.named_parameters() if not name.startswith("codec.")]
    optimizer = torch.optim.AdamW(parameters, lr=3e-3)
    latents = torch.nn.utils.rnn.pad_sequence(tokenizer.codec.encode_list(speech), batch_first=True)
    losses = []
    for _ in range(40):
        output = tokenizer(latents=latents)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.latent_loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    for key, value in tokenizer.codec.state_dict().items():
        torch.testing.assert_close(value, codec_before[key], rtol=0, atol=0)


def test_save_and_reload_give_identical_tokens(tmp_path, speech):
    tokenizer = _tiny_tokenizer()
    tokenizer.codec.set_mel_statistics(speech)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, SpeechTokenizerModel) and reloaded.config.fsq_levels == [4, 3, 3]
    torch.testing.assert_close(reloaded.codec.mel_mean, tokenizer.codec.mel_mean, rtol=0, atol=0)
    a, b = tokenizer.encode_list(speech[:2]), reloaded.encode_list(speech[:2])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    np.testing.assert_array_equal(tokenizer.decode_list(a)[0], reloaded.decode_list(a)[0])


@pytest.mark.skipif(not (PRETRAINED_TOKENIZER_DIR / "config.json").is_file(), reason="no bundled checkpoint")
def test_bundled_tokenizer_round_trip(speech):
    tokenizer = load_pretrained_tokenizer()
    codec = load_pretrained_codec()
    assert tokenizer.codebook_size == 1000 and tokenizer.frame_rate == codec.frame_rate
    for key, value in codec.state_dict().items():  # the tokenizer holds the bundled codec
        torch.testing.assert_close(tokenizer.codec.state_dict()[key], value, rtol=0, atol=0)
    ids = tokenizer.encode_list(speech)
    assert len(torch.unique(torch.cat(ids))) > 80
    decoded = tokenizer.decode_list(ids)
    for original, output in zip(speech, decoded):
        n = min(len(original), len(output))
        a = codec.features(torch.from_numpy(original[:n])[None])
        b = codec.features(torch.from_numpy(np.ascontiguousarray(output[:n]))[None])
        assert (a - b).abs().mean() < 0.8


def test_decode_codes_and_resynthesize_are_the_tokenizer_round_trip(speech):
    from ardm_trl.audio import decode_codes, load_speech_tokenizer, resynthesize

    tokenizer = _tiny_tokenizer()
    codes = [c.tolist() for c in tokenizer.encode_list(speech)]
    decoded = decode_codes(tokenizer, codes + [[]])  # an empty code list still gets a waveform
    assert len(decoded) == len(speech) + 1 and decoded[-1].size > 0
    by_hand = tokenizer.decode_list([torch.tensor(c) for c in codes])
    for a, b in zip(decoded, by_hand):
        np.testing.assert_array_equal(a, b)
    # resynthesis in batches of 2 is the encode -> decode round trip of each batch (codes and audio at the end of
    # a padded utterance depend slightly on the padding: 2 of 90 codes here; so the batches match on both sides)
    batches = [w for chunk in (speech[:2], speech[2:])
               for w in decode_codes(tokenizer, [c.tolist() for c in tokenizer.encode_list(chunk)])]  # fmt: skip
    for a, b in zip(resynthesize(tokenizer, speech, batch_size=2), batches, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(load_speech_tokenizer(None), SpeechTokenizerModel) and not load_speech_tokenizer(None).training

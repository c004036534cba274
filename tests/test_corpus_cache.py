"""Tests of the on-disk corpus cache and of the batched NumPy audio reading the pretraining scripts use."""

import numpy as np

from ardm_trl.data import build_tts_corpus
from ardm_trl.data.corpus_cache import encode_audio, load_audio, load_or_build_corpus


def test_saved_corpus_reloads_equal_to_a_fresh_build(tmp_path):
    built = load_or_build_corpus(tmp_path, 24, seed=3, sampling_rate=16000)
    folder = tmp_path / "corpus_24_3_16000"
    assert folder.is_dir() and not (tmp_path / "corpus_24_3_16000.partial").exists()
    reloaded = load_or_build_corpus(tmp_path, 24, seed=3, sampling_rate=16000)
    fresh = build_tts_corpus(24, seed=3, sampling_rate=16000)
    for split in ("train", "test"):
        assert reloaded[split]["text"] == fresh[split]["text"] == built[split]["text"]
        for a, b in zip(load_audio(reloaded[split]), fresh[split]["audio"]):
            np.testing.assert_array_equal(a, np.asarray(b, dtype=np.float32))


def test_a_half_written_corpus_is_never_loaded(tmp_path):
    stale = tmp_path / "corpus_12_0_16000.partial"  # what a run killed while saving leaves behind
    stale.mkdir()
    (stale / "dataset_dict.json").write_text("{")
    corpus = load_or_build_corpus(tmp_path, 12, seed=0, sampling_rate=16000)
    assert len(corpus["train"]) + len(corpus["test"]) == 12 and not stale.exists()
    assert len(load_or_build_corpus(tmp_path, 12, seed=0, sampling_rate=16000)["train"]) == len(corpus["train"])


def _texts_of_a_shared_build(cache_dir):
    corpus = load_or_build_corpus(cache_dir, 60, seed=2, sampling_rate=16000)
    return list(corpus["train"]["text"]) + list(corpus["test"]["text"])


def test_processes_building_the_same_corpus_at_once_share_one_build(tmp_path):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_texts_of_a_shared_build, [tmp_path, tmp_path])
    assert len(first) == 60 and first == second
    assert not (tmp_path / "corpus_60_2_16000.partial").exists()


def test_encode_audio_keeps_row_order_and_batches_similar_durations(tmp_path):
    split = load_or_build_corpus(tmp_path, 30, seed=1, sampling_rate=16000)["train"]
    batches = []

    def encode_list(waveforms):
        assert all(w.dtype == np.float32 for w in waveforms)
        batches.append([len(w) for w in waveforms])
        return [len(w) for w in waveforms]

    encoded = encode_audio(split, encode_list, batch_size=4)
    assert encoded == [len(a) for a in split["audio"]]
    flat = [n for batch in batches for n in batch]
    assert flat == sorted(flat) and max(len(b) for b in batches) == 4
    assert len(load_audio(split, limit=5)) == 5


def test_tokenize_corpus_caches_whole_files_and_rebuilds_on_a_new_key(tmp_path):
    import torch

    from ardm_trl.data.corpus_cache import TOKEN_CORPUS_COLUMNS, tokenize_corpus

    class CountingTokenizer:  # codes = one per 1,000 samples; counts the calls
        sampling_rate, calls = 16000, 0

        def encode_list(self, waveforms):
            CountingTokenizer.calls += 1
            return [torch.arange(len(w) // 1000) for w in waveforms]

    cache = tmp_path / "tokens.pt"
    data = tokenize_corpus(20, 2, CountingTokenizer(), cache, corpus_cache_dir=tmp_path)
    assert cache.is_file() and not (tmp_path / "tokens.pt.partial").exists()
    assert set(TOKEN_CORPUS_COLUMNS) <= set(data["train"]) and "audio" in data["test"]
    assert [len(s) for s in data["test"]["speech_ids"]] == [len(a) // 1000 for a in data["test"]["audio"]]
    calls = CountingTokenizer.calls
    assert tokenize_corpus(20, 2, CountingTokenizer(), cache, corpus_cache_dir=tmp_path)["key"] == data["key"]
    assert CountingTokenizer.calls == calls  # reused, not re-encoded
    other = tokenize_corpus(20, 2, CountingTokenizer(), cache, tokenizer_key="other", corpus_cache_dir=tmp_path)
    assert other["key"]["tokenizer"] == "other" and CountingTokenizer.calls > calls


def test_encode_latent_corpus_keys_the_cache_on_the_codec_weights(tmp_path):
    import torch

    from ardm_trl.data.corpus_cache import LATENT_CORPUS_COLUMNS, encode_latent_corpus

    class FrameCodec(torch.nn.Module):  # latents = one (1, 2) frame per 1,000 samples, scaled by its one weight
        sampling_rate = 16000

        def __init__(self, scale: float):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(scale))

        def encode_list(self, waveforms):
            return [self.scale.detach() * torch.ones(len(w) // 1000, 2) for w in waveforms]

    cache = tmp_path / "latents.pt"
    data = encode_latent_corpus(20, 2, FrameCodec(1.0), cache, corpus_cache_dir=tmp_path)
    assert set(LATENT_CORPUS_COLUMNS) <= set(data["train"]) and "audio" in data["test"]
    assert all(x.dtype == torch.float32 and x.shape[-1] == 2 for x in data["train"]["latents"])
    assert torch.equal(encode_latent_corpus(20, 2, FrameCodec(1.0), cache, corpus_cache_dir=tmp_path)["train"]["latents"][0],
                       data["train"]["latents"][0])  # fmt: skip
    retrained = encode_latent_corpus(20, 2, FrameCodec(3.0), cache, corpus_cache_dir=tmp_path)  # same name, new weights
    assert retrained["key"]["codec_fingerprint"] == 3.0 and float(retrained["train"]["latents"][0].max()) == 3.0

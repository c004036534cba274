"""Voice prompts: every prompt comes from another utterance of the same speaker, deterministically given the seed."""

import random

import numpy as np
import pytest
import torch

from ardm_trl.data import ARDMTextTokenizer, build_tts_corpus, voice_prompt_rows
from ardm_trl.data.prompts import choose_eval_prompts, pick_prompt, speaker_index


def columns():
    voices = ["a", "a", "a", "b", "b", "c"]  # speaker c has one utterance: it cannot be prompted
    return {"text": [f"t{i}" for i in range(6)], "voice": voices, "pitch_level": ["mid"] * 6,
            "latents": [torch.full((10 + i, 2), float(i)) for i in range(6)]}  # fmt: skip


def test_pick_prompt_cuts_another_utterance_of_the_same_speaker():
    rows = columns()
    speakers = speaker_index(rows)
    assert speakers == {"a|mid": [0, 1, 2], "b|mid": [3, 4], "c|mid": [5]}
    rng = random.Random(0)
    for index in range(5):
        prompt, source = pick_prompt(rows, speakers, index, rng, min_frames=3, max_frames=6)
        assert source != index and rows["voice"][source] == rows["voice"][index]
        assert 3 <= prompt.shape[0] <= 6 and bool((prompt == source).all())
    assert pick_prompt(rows, speakers, 5, rng, 3, 6) == (None, None)


def test_choose_eval_prompts_is_seeded_and_skips_single_utterance_speakers():
    rows = columns()
    chosen, prompts, sources = choose_eval_prompts(rows, 10, seed=3, min_frames=2, max_frames=4)
    assert sorted(chosen) == [0, 1, 2, 3, 4]
    assert all(rows["voice"][s] == rows["voice"][c] and s != c for c, s in zip(chosen, sources))
    again = choose_eval_prompts(rows, 10, seed=3, min_frames=2, max_frames=4)
    assert again[0] == chosen and again[2] == sources and all(torch.equal(a, b) for a, b in zip(again[1], prompts))
    assert len(choose_eval_prompts(rows, 2, seed=3)[0]) == 2


def test_voice_prompt_rows_carry_text_ids_prompt_and_labels():
    class FirstSamplesCodec:  # latents = frames of 100 samples, 2 dims
        def encode_list(self, waveforms):
            return [torch.tensor(np.asarray(w[: len(w) // 100 * 100]).reshape(-1, 100)[:, :2]) for w in waveforms]

    split = build_tts_corpus(24, seed=0, sampling_rate=16000)["train"]
    tokenizer = ARDMTextTokenizer.from_texts(split["phonemes"])
    rows = voice_prompt_rows(split, FirstSamplesCodec(), tokenizer, prompt_frames=8, limit=5,
                             include_target_latents=True, seed=1)  # fmt: skip
    assert len(rows) == 5
    phonemes = dict(zip(split["text"], split["phonemes"]))
    for row in rows:
        assert row["text_input_ids"] == tokenizer.encode(phonemes[row["prompt"]])
        assert row["prompt_latents"].shape == (8, 2) and row["latents"].shape[-1] == 2
        audio = row["prompt_audio"]["array"]
        source = [i for i in range(len(split)) if len(split[i]["audio"]) == len(audio)
                  and np.array_equal(np.asarray(split[i]["audio"], dtype=np.float32), audio)]  # fmt: skip
        assert source and all(split[i]["voice"] == row["voice"] and split[i]["pitch_level"] == row["pitch_level"]
                              for i in source)  # fmt: skip
        assert row["prompt_audio"]["sampling_rate"] == 16000 and {"voice", "gender", "pitch_level"} <= set(row)


def test_prompt_rows_from_raw_text_and_a_voice_clip_generate_speech(tmp_path):
    """Raw text plus a voice clip (at another sampling rate) -> rows that the bundled ARDM samples from and the
    trainers take: phoneme ids in the model's vocabulary, the clip's codec frames as the voice prompt."""
    import torchaudio.functional as AF
    from transformers import AutoModel, AutoTokenizer

    from ardm_trl.audio import bundled_model_dir, load_pretrained_codec
    from ardm_trl.data import prompt_rows_from_text
    from ardm_trl.data.espeak import phonemize, synthesize
    from ardm_trl.trainer.rollout import generate_rollouts, prepare_prompt_batch

    codec = load_pretrained_codec()
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir("ardm"))
    model = AutoModel.from_pretrained(bundled_model_dir("ardm")).eval()
    clip, rate = synthesize("This is my voice.", voice="en-us+f3")
    clip_16k = AF.resample(torch.as_tensor(clip, dtype=torch.float32), rate, 16000).numpy()
    rows = prompt_rows_from_text(["Hello there.", "Good morning."], [clip_16k, clip_16k], 16000, codec, tokenizer)
    assert rows[0]["text_input_ids"] == tokenizer.encode(phonemize("Hello there."))
    assert 1 not in rows[0]["text_input_ids"]  # every phoneme is in the vocabulary (1 = <unk>)
    direct = codec.encode_list([clip])[0][:48]
    assert rows[0]["prompt_latents"].shape == direct.shape  # resampled to the codec's rate: the same frame count
    batch = prepare_prompt_batch(rows, 1, None, model.config.text_pad_token_id, model.config.patch_size)
    out = generate_rollouts(model, batch, max_patches=4, generator=torch.Generator().manual_seed(0))
    assert all(0 < c.shape[0] <= 4 * model.config.patch_size and torch.isfinite(c).all() for c in out.completions())
    with pytest.raises(ValueError, match="one clip per text"):
        prompt_rows_from_text(["a"], [], 16000, codec, tokenizer)

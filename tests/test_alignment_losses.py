"""Tests of the pretraining alignment aids: the guided-attention loss (ardm_trl.models.guided_attention) of the ARDM
and the codec LM, and the ARDM's auxiliary text CTC."""

import importlib
from contextlib import contextmanager

import pytest
import torch
from conftest import tiny_ardm_config

from ardm_trl import ARDMConfig, ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.data.collators import ARDMDataCollator
from ardm_trl.evaluation import teacher_forced_latents, text_conditioning_gain
from ardm_trl.models.guided_attention import diagonal_prior, guided_attention_loss


@contextmanager
def captured_loss_arguments(module_name):
    """Replace `guided_attention_loss` in a modeling module by a spy that records the columns and lengths it gets."""
    module = importlib.import_module(module_name)
    captured = {}

    def spy(attentions, query_columns, query_lengths, key_columns, key_lengths, sigma, num_heads):
        captured.update(keys=key_columns, key_lengths=key_lengths, queries=query_columns, query_lengths=query_lengths)
        return attentions[0].new_zeros(())

    original, module.guided_attention_loss = module.guided_attention_loss, spy
    try:
        yield captured
    finally:
        module.guided_attention_loss = original


def train(model, batch, steps, lr=3e-3):
    """`steps` AdamW steps on one batch, in training mode; returns the last output."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return out


def _one_hot_attention(length, query_columns, key_columns, attend):
    """(1, 1, L, L) attention where query column q attends exactly key column attend(q)."""
    attention = torch.zeros(1, 1, length, length)
    for j, q in enumerate(query_columns):
        attention[0, 0, q, key_columns[attend(j)]] = 1.0
    return attention


def test_prior_peaks_on_the_diagonal_and_is_zero_outside_the_lengths():
    prior = diagonal_prior(torch.tensor([4, 2]), torch.tensor([12, 3]), num_queries=4, num_keys=12, sigma=0.2)
    assert prior.shape == (2, 4, 12)
    # speech position j of N peaks at text position i of T with (i + .5) / T = (j + .5) / N
    assert prior[0].argmax(-1).tolist() == [1, 4, 7, 10]
    assert torch.all(prior[1, 2:] == 0) and torch.all(prior[1, :, 3:] == 0)


def test_loss_is_low_on_the_diagonal_and_one_without_text_attention():
    length, text = 20, list(range(2, 10))  # 8 text tokens in columns 2..9
    speech = list(range(11, 19))  # 8 speech queries
    args = (torch.tensor([speech]), torch.tensor([8]), torch.tensor([text]), torch.tensor([8]))
    diagonal = _one_hot_attention(length, speech, text, lambda j: j)
    reversed_ = _one_hot_attention(length, speech, text, lambda j: 7 - j)
    no_text = _one_hot_attention(length, speech, speech, lambda j: j)  # attends the speech itself
    on = guided_attention_loss([diagonal], *args, sigma=0.2, num_heads=1)
    off = guided_attention_loss([reversed_], *args, sigma=0.2, num_heads=1)
    none = guided_attention_loss([no_text], *args, sigma=0.2, num_heads=1)
    assert on < 0.05 < off and none.item() == pytest.approx(1.0)


def test_only_the_first_heads_are_guided():
    length, text, speech = 12, [1, 2, 3, 4], [6, 7, 8, 9]
    args = (torch.tensor([speech]), torch.tensor([4]), torch.tensor([text]), torch.tensor([4]))
    good = _one_hot_attention(length, speech, text, lambda j: j)
    bad = _one_hot_attention(length, speech, speech, lambda j: j)
    two_heads = torch.cat([good, bad], dim=1)  # head 0 on the diagonal, head 1 on the speech
    assert guided_attention_loss([two_heads], *args, num_heads=1) < 0.05
    assert guided_attention_loss([two_heads], *args, num_heads=2) > 0.45
    with pytest.raises(ValueError, match="attention maps"):
        guided_attention_loss([], *args)


def _text_reading_batch(config, batch=6, patches=6, seed=0):
    """Each target patch is a fixed function of the text token at the same relative position: the task needs the
    text, read left to right."""
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(config.text_vocab_size, config.patch_dim, generator=torch.Generator().manual_seed(99))
    text = torch.randint(1, config.text_vocab_size, (batch, patches), generator=generator)
    latents = table[text].reshape(batch, patches * config.patch_size, config.latent_dim)
    rows = [{"text_input_ids": t.tolist(), "latents": x} for t, x in zip(text, latents)]
    return ARDMDataCollator(config.patch_size)(rows)


def test_ardm_pretraining_with_guided_attention_learns_a_diagonal_alignment():
    config = tiny_ardm_config(guided_attention_weight=1.0, cfg_dropout_prob=0.0)
    model = ARDMForSpeechSynthesis(config).train()
    batch = _text_reading_batch(config)
    first = model(**batch).guided_attention_loss.item()
    gain_before = text_conditioning_gain(model, batch)["gain"]
    out = train(model, batch, steps=60)
    last = model(**batch).guided_attention_loss.item()
    assert last < 0.5 * first, (first, last)
    gain = text_conditioning_gain(model, batch)
    assert abs(gain_before) < 0.05 and gain["gain"] > 0.3, (gain_before, gain)  # it now reads the text
    torch.testing.assert_close(out.loss, out.diffusion_loss + config.stop_loss_weight * out.stop_loss
                               + config.guided_attention_weight * out.guided_attention_loss)
    assert model.backbone.lm.config._attn_implementation != "eager"  # restored after the pass


def test_guided_attention_only_shapes_training():
    config = tiny_ardm_config(guided_attention_weight=1.0)
    model = ARDMForSpeechSynthesis(config)
    batch = _text_reading_batch(config)
    model.eval()
    out = model(**batch)
    assert out.guided_attention_loss is None
    torch.testing.assert_close(out.loss, out.diffusion_loss + config.stop_loss_weight * out.stop_loss)
    # the eager pass gives the same LM states as the default attention
    states = model.compute_lm_states(batch["text_input_ids"], batch["latents"], latents_mask=batch["latents_mask"])
    guided = model.compute_lm_states(batch["text_input_ids"], batch["latents"], latents_mask=batch["latents_mask"],
                                     guided_attention=True)
    torch.testing.assert_close(states.hidden, guided.hidden, atol=1e-5, rtol=1e-5)
    assert guided.guided_attention_loss is not None


def test_text_columns_of_the_loss_are_the_text_tokens():
    """Key columns point at the text embeddings, for rows with different text and prompt lengths."""
    config = tiny_ardm_config()
    model = ARDMForSpeechSynthesis(config)
    rows = [{"text_input_ids": [1, 2, 3], "latents": torch.randn(6, config.latent_dim),
             "prompt_latents": torch.randn(4, config.latent_dim)},
            {"text_input_ids": [4, 5, 6, 7, 8], "latents": torch.randn(4, config.latent_dim),
             "prompt_latents": torch.randn(2, config.latent_dim)}]  # fmt: skip
    batch = ARDMDataCollator(config.patch_size)(rows)
    prompt, prompt_mask = model.patchify(batch["prompt_latents"], batch["prompt_latents_mask"])
    prefix, _ = model.backbone.build_prefix(batch["text_input_ids"], batch["text_attention_mask"], prompt, prompt_mask)
    with captured_loss_arguments("ardm_trl.models.ardm.modeling_ardm") as captured:
        model.compute_lm_states(batch["text_input_ids"], batch["latents"], batch["text_attention_mask"],
                                batch["latents_mask"], batch["prompt_latents"], batch["prompt_latents_mask"],
                                guided_attention=True)
    for i, row in enumerate(rows):
        n = len(row["text_input_ids"])
        assert captured["key_lengths"][i] == n
        columns = captured["keys"][i, :n]
        torch.testing.assert_close(prefix[i, columns], model.backbone.text_embedding(torch.tensor(row["text_input_ids"])))
        assert captured["query_lengths"][i] == row["latents"].shape[0] // config.patch_size
        assert captured["queries"][i, 0] == prefix.shape[1] - 1  # the state that predicts the first patch


@pytest.mark.parametrize("kwargs, match", [
    (dict(guided_attention_weight=-1.0), "guided_attention_weight"),
    (dict(guided_attention_sigma=0.0), "guided_attention_sigma"),
    (dict(guided_attention_heads=9), "guided_attention_heads"),
])  # fmt: skip
def test_bad_guided_attention_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ARDMConfig(**{**tiny_ardm_config().to_dict(), **kwargs})


# ------------------------------------------------------------------------------------------------ codec LM
def _codec_lm(**overrides):
    from ardm_trl.models.codec_lm import CodecLMConfig, CodecLMForSpeechSynthesis

    torch.manual_seed(0)
    lm = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2,
          "num_hidden_layers": 2}  # fmt: skip
    return CodecLMForSpeechSynthesis(CodecLMConfig(text_vocab_size=12, codebook_size=24, lm_config=lm, **overrides))


def _codec_lm_batch(model, batch=6, length=6, seed=0):
    """Speech code `j` is a fixed function of the text unit at the same relative position."""
    from ardm_trl.models.codec_lm import CodecLMDataCollator

    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(0, 12, (batch, length), generator=generator)
    rows = [{"text_ids": t.tolist(), "speech_ids": (2 * t + 1).tolist()} for t in text]
    rows[0] = {"text_ids": rows[0]["text_ids"][:3], "speech_ids": rows[0]["speech_ids"][:3]}  # a shorter row
    return CodecLMDataCollator(model.config)(rows)


def test_codec_lm_guided_attention_columns_follow_the_collator_layout():
    model = _codec_lm(guided_attention_weight=1.0).train()
    batch = _codec_lm_batch(model)
    with captured_loss_arguments("ardm_trl.models.codec_lm.modeling_codec_lm") as captured:
        model(**batch)
    ids, labels = batch["input_ids"], batch["labels"]
    for i in range(ids.shape[0]):
        n = int(captured["key_lengths"][i])
        text = ids[i, captured["keys"][i, :n]]
        assert torch.all(text < model.config.text_vocab_size) and n == int((ids[i] < 12).sum())
        q = captured["queries"][i, : captured["query_lengths"][i]]
        # query column q predicts the token at q + 1, which is labelled
        assert torch.all(labels[i, q + 1] != -100) and int(captured["query_lengths"][i]) == int(labels[i].ne(-100).sum())
        assert ids[i, q[0]] == model.config.speech_start_token_id


def test_codec_lm_pretraining_with_guided_attention_learns_a_diagonal_alignment():
    model = _codec_lm(guided_attention_weight=1.0).train()
    batch = _codec_lm_batch(model)
    first = model(**batch).guided_attention_loss.item()
    train(model, batch, steps=60)
    assert model(**batch).guided_attention_loss.item() < 0.5 * first
    model.eval()
    assert model(**batch).guided_attention_loss is None  # training only; eval loss is the cross-entropy
    with pytest.raises(ValueError, match="guided_attention_heads"):
        _codec_lm(guided_attention_heads=3)


# ------------------------------------------------------------------------------------------------ ARDM text CTC
def test_text_ctc_trains_a_head_that_reads_the_spoken_text(tmp_path):
    config = tiny_ardm_config(ctc_loss_weight=1.0, cfg_dropout_prob=0.0)
    model = ARDMForSpeechSynthesis(config).train()
    batch = _text_reading_batch(config)
    first = model(**batch).ctc_loss.item()
    out = train(model, batch, steps=80)
    assert out.ctc_loss.item() < 0.3 * first, (first, out.ctc_loss.item())
    torch.testing.assert_close(out.loss, out.diffusion_loss + config.stop_loss_weight * out.stop_loss
                               + config.ctc_loss_weight * out.ctc_loss)
    # greedy CTC decoding of the LM states gives back the text of each row
    model.eval()
    states = model.compute_lm_states(batch["text_input_ids"], batch["latents"], latents_mask=batch["latents_mask"])
    frames = model.ctc_head(states.hidden).reshape(states.hidden.shape[0], -1, config.text_vocab_size).argmax(-1)
    decoded = [[int(t) for i, t in enumerate(row) if t != 0 and (i == 0 or t != row[i - 1])] for row in frames]
    expected = [row[row != 0].tolist() for row in batch["text_input_ids"]]
    assert sum(d == e for d, e in zip(decoded, expected)) >= len(expected) - 1, (decoded, expected)
    assert model(**batch).ctc_loss is None  # training only
    model.save_pretrained(tmp_path)
    reloaded = ARDMForSpeechSynthesis.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.ctc_head.weight, model.ctc_head.weight)


def test_no_ctc_head_without_the_ctc_loss():
    assert ARDMForSpeechSynthesis(tiny_ardm_config()).ctc_head is None
    with pytest.raises(ValueError, match="ctc_loss_weight"):
        tiny_ardm_config(ctc_loss_weight=-0.5)


def _teacher_forced_error(model, batch, **kwargs):
    estimates = teacher_forced_latents(model.eval(), batch, **kwargs)
    lengths = batch["latents_mask"].sum(-1).tolist()
    assert [e.shape[0] for e in estimates] == lengths
    return sum(float((e - x[:n]).pow(2).mean()) for e, x, n in zip(estimates, batch["latents"], lengths)) / len(lengths)


def test_teacher_forced_latents_carry_the_text_once_the_model_reads_it():
    config = tiny_ardm_config(guided_attention_weight=1.0, cfg_dropout_prob=0.0)
    model = ARDMForSpeechSynthesis(config)
    batch = _text_reading_batch(config)
    before = _teacher_forced_error(model, batch, estimate="mean")
    train(model, batch, steps=60)
    after = _teacher_forced_error(model, batch, estimate="mean")
    assert after < 0.5 * before, (before, after)
    sampled = _teacher_forced_error(model, batch, estimate="sample", num_inference_steps=8, lm_guidance_scale=2.0)
    assert sampled < before, (before, sampled)
    first = teacher_forced_latents(model, batch, estimate="sample", num_inference_steps=4, seed=3)
    again = teacher_forced_latents(model, batch, estimate="sample", num_inference_steps=4, seed=3)
    torch.testing.assert_close(first, again)  # seeded
    with pytest.raises(ValueError, match="'sample' or 'mean'"):
        teacher_forced_latents(model, batch, estimate="mode")


def test_teacher_forced_latents_of_an_utterance_do_not_depend_on_its_batch():
    config = tiny_ardm_config()
    model = ARDMForSpeechSynthesis(config).eval()
    generator = torch.Generator().manual_seed(0)
    rows = [
        {"text_input_ids": torch.randint(1, config.text_vocab_size, (n,), generator=generator).tolist(),
         "latents": torch.randn(frames, config.latent_dim, generator=generator)}
        for n, frames in ((5, 10), (9, 23))
    ]  # fmt: skip
    collate = ARDMDataCollator(config.patch_size)
    alone = teacher_forced_latents(model, collate(rows[:1]), estimate="mean")[0]
    together = teacher_forced_latents(model, collate(rows), estimate="mean")
    assert [x.shape[0] for x in together] == [10, 23]  # true lengths, not the padded patch multiple
    torch.testing.assert_close(together[0], alone, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ context noise
def test_context_noise_corrupts_what_the_model_reads_not_its_targets():
    config = tiny_ardm_config(context_noise_std=0.5)
    model = ARDMForSpeechSynthesis(config).eval()
    batch = _text_reading_batch(config, batch=8, patches=8)
    inputs = (batch["text_input_ids"], batch["latents"])
    clean = model.compute_lm_states(*inputs, latents_mask=batch["latents_mask"])
    torch.manual_seed(0)
    noisy = model.compute_lm_states(*inputs, latents_mask=batch["latents_mask"], context_noise_std=0.5)
    torch.testing.assert_close(noisy.patches, clean.patches)  # the targets stay clean
    torch.testing.assert_close(noisy.previous_patches[:, 0], clean.previous_patches[:, 0])  # no patch before the first
    added = (noisy.previous_patches - clean.previous_patches)[:, 1:]
    assert 0.4 < added.std().item() < 0.6, added.std()
    assert not torch.allclose(noisy.hidden, clean.hidden)  # the LM reads the noisy patches too


def test_context_noise_only_in_pretraining_forward():
    module = importlib.import_module("ardm_trl.models.ardm.modeling_ardm")
    config = tiny_ardm_config(context_noise_std=0.3)
    model = ARDMForSpeechSynthesis(config)
    batch = _text_reading_batch(config)
    seen = []
    original = module.ARDMForSpeechSynthesis.compute_lm_states

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("context_noise_std", 0.0))
        return original(self, *args, **kwargs)

    module.ARDMForSpeechSynthesis.compute_lm_states = spy
    try:
        model.train()(**batch)  # pretraining: labels in training mode
        model.eval()(**batch)  # evaluation loss
        model.train()(**{k: v for k, v in batch.items() if k != "labels"})  # no labels: not a pretraining pass
    finally:
        module.ARDMForSpeechSynthesis.compute_lm_states = original
    assert seen == [0.3, 0.0, 0.0]
    value_model = ARDMValueModel.from_ardm(model)
    assert value_model.config.context_noise_std == 0.0
    with pytest.raises(ValueError, match="context_noise_std"):
        tiny_ardm_config(context_noise_std=-0.1)


def test_codec_lm_text_gap_grows_once_the_model_reads_its_text():
    from ardm_trl.evaluation import codec_lm_text_gap

    model = _codec_lm(guided_attention_weight=1.0)
    generator = torch.Generator().manual_seed(1)
    rows = [{"text_ids": t.tolist(), "speech_ids": (2 * t + 1).tolist()}
            for t in torch.randint(0, 12, (6, 6), generator=generator)]  # fmt: skip
    before = codec_lm_text_gap(model, rows, batch_size=4)
    train(model, _codec_lm_batch(model), steps=80)
    after = codec_lm_text_gap(model, rows, batch_size=4)
    assert abs(before["gap"]) < 0.1 and after["gap"] > 1.0, (before, after)
    assert after["matched"] < before["matched"] and model.training  # the training mode is restored
    with pytest.raises(ValueError, match="at least two rows"):
        codec_lm_text_gap(model, rows[:1])

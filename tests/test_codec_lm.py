"""Tests of the codec-token TTS language model (tiny configs built in the test)."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from ardm_trl.models.codec_lm import CodecLMConfig, CodecLMDataCollator, CodecLMForSpeechSynthesis

torch.set_num_threads(1)

TINY_LM = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
}


def tiny_model(seed: int = 0) -> CodecLMForSpeechSynthesis:
    torch.manual_seed(seed)
    config = CodecLMConfig(text_vocab_size=12, codebook_size=24, lm_config=TINY_LM)
    return CodecLMForSpeechSynthesis(config).eval()


def test_vocabulary_layout_and_validation():
    config = CodecLMConfig(text_vocab_size=12, codebook_size=24, lm_config=TINY_LM)
    assert (config.pad_token_id, config.bos_token_id, config.speech_start_token_id) == (12, 13, 14)
    assert config.speech_token_offset == 15 and config.eos_token_id == 15 + 24 and config.vocab_size == 40
    assert config.lm_config.vocab_size == 40 and config.lm_config.pad_token_id == 12
    with pytest.raises(ValueError, match="eos_token_id"):
        CodecLMConfig(text_vocab_size=12, codebook_size=24, eos_token_id=3)
    with pytest.raises(ValueError, match="codebook_size"):
        CodecLMConfig(codebook_size=1)


def test_overfits_one_batch():
    model = tiny_model().train()
    collator = CodecLMDataCollator(model.config)
    batch = collator(
        [
            {"text_ids": [1, 2, 3], "speech_ids": [5, 6, 7, 8, 9]},
            {"text_ids": [4, 5], "speech_ids": [10, 11, 12]},
        ]
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model(**batch).loss.item()
    for _ in range(60):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 2.5  # ~log(25) at initialisation
    assert loss.item() < 0.05
    # and greedy-ish sampling now reproduces the memorised speech, stopping at end-of-speech
    out = model.eval().sample_speech([[1, 2, 3], [4, 5]], max_new_tokens=10, temperature=0.05)
    assert out.codes_list() == [[5, 6, 7, 8, 9], [10, 11, 12]]
    assert out.completion_mask.sum(1).tolist() == [6, 4]


def test_labels_outside_speech_range_raise():
    model = tiny_model()
    batch = CodecLMDataCollator(model.config)([{"text_ids": [1], "speech_ids": [2]}])
    batch["labels"] = batch["input_ids"].clone()  # text positions not masked
    with pytest.raises(ValueError, match="-100"):
        model(**batch)


def test_save_load_identical_outputs(tmp_path):
    model = tiny_model()
    batch = CodecLMDataCollator(model.config)([{"text_ids": [1, 2], "speech_ids": [3, 4, 5]}])
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "ardm_codec_lm"
    for auto in (AutoModel, AutoModelForCausalLM):
        reloaded = auto.from_pretrained(tmp_path).eval()
        assert isinstance(reloaded, CodecLMForSpeechSynthesis)
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_kv_cache_sampling_equals_full_recompute():
    model = tiny_model()
    texts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]  # different lengths: left padding
    cached = model.sample_speech(texts, max_new_tokens=25, generator=torch.Generator().manual_seed(3))
    full = model.sample_speech(texts, max_new_tokens=25, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached.speech_ids, full.speech_ids)
    torch.testing.assert_close(cached.logits, full.logits, rtol=1e-4, atol=1e-5)
    # the Gumbel-max sample is the argmax of logits + kept noise
    replay = (cached.logits + cached.gumbel_noise).argmax(-1)
    assert torch.equal(replay[cached.completion_mask], cached.speech_ids[cached.completion_mask])


def test_teacher_forced_logits_match_sampling_and_ignore_padding():
    model = tiny_model()
    texts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]
    out = model.sample_speech(texts, max_new_tokens=12, generator=torch.Generator().manual_seed(0))
    replayed = model.teacher_forced_speech_logits(out.sequences, out.attention_mask, out.prompt_length)
    mask = out.completion_mask
    torch.testing.assert_close(replayed[mask], out.logits[mask], rtol=1e-4, atol=1e-5)
    # a row alone gives the same logits as inside the left-padded batch
    alone_ids = out.sequences[:1, out.attention_mask[0].argmax() :]
    alone = model(input_ids=alone_ids, attention_mask=torch.ones_like(alone_ids)).speech_logits
    torch.testing.assert_close(alone[0, -replayed.shape[1] - 1 : -1], replayed[0], rtol=1e-4, atol=1e-5)


def test_generate_only_emits_speech_tokens():
    model = tiny_model()
    prompts, mask = model.build_prompts([[1, 2], [3, 4, 5, 6]])
    generated = model.generate(input_ids=prompts, attention_mask=mask, max_new_tokens=8, do_sample=True)
    new = generated[:, prompts.shape[1] :]
    is_speech = (new >= model.config.speech_token_offset) | (new == model.config.pad_token_id)
    assert is_speech.all()


def test_tokenizer_layout_roundtrip_and_auto_class(tmp_path):
    from transformers import AutoTokenizer

    from ardm_trl.models.codec_lm import CodecLMTokenizer, build_speech_prompts

    tokenizer = CodecLMTokenizer.from_texts(["həloʊ wɜːld", "abc"], codebook_size=24)
    config = CodecLMConfig(text_vocab_size=tokenizer.text_vocab_size, codebook_size=24, lm_config=TINY_LM)
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.speech_start_token_id, tokenizer.eos_token_id) == (
        config.pad_token_id, config.bos_token_id, config.speech_start_token_id, config.eos_token_id)  # fmt: skip
    units = tokenizer.encode("həloʊ", add_special_tokens=False)
    prompts, _ = build_speech_prompts([units], config)
    assert tokenizer("həloʊ")["input_ids"] == prompts[0].tolist()
    assert tokenizer.encode("q", add_special_tokens=False) == [0]  # unknown character -> <unk> (unit 0)
    ids = [config.speech_token_offset + 3, config.speech_token_offset + 23, config.eos_token_id, config.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<|s_3|><|s_23|>"
    assert tokenizer.speech_codes(ids) == [3, 23]
    CodecLMForSpeechSynthesis(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(reloaded, CodecLMTokenizer) and reloaded.units == tokenizer.units
    assert reloaded("həloʊ")["input_ids"] == prompts[0].tolist()


def test_output_embeddings_view_gives_the_forward_logits():
    model = tiny_model()
    batch = CodecLMDataCollator(model.config)([{"text_ids": [1, 2], "speech_ids": [3, 4, 5]}])
    out = model(**batch)
    head = model.get_output_embeddings()
    assert not list(head.parameters())  # a view: no parameters of its own
    torch.testing.assert_close(head(out.hidden_states), out.logits)
    head(out.hidden_states)[..., model.config.speech_token_offset].sum().backward()
    assert model.speech_head.weight.grad.abs().sum() > 0


def test_trl_grpo_trainer_trains_the_codec_lm(tmp_path):
    """TRL's own GRPOTrainer runs on the codec LM through its tokenizer (the baseline of the DiffRO benchmark)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from ardm_trl.models.codec_lm import CodecLMTokenizer

    tokenizer = CodecLMTokenizer.from_texts(["abcdefgh"], codebook_size=24)
    torch.manual_seed(0)
    model = CodecLMForSpeechSynthesis(
        CodecLMConfig(text_vocab_size=tokenizer.text_vocab_size, codebook_size=24, lm_config=TINY_LM)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def prefer_code_3(prompts, completions, completion_ids, **kwargs):
        codes = [tokenizer.speech_codes(ids) for ids in completion_ids]
        assert all(0 <= c < 24 for row in codes for c in row)
        return [row.count(3) / max(len(row), 1) for row in codes]

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=8, max_steps=2, learning_rate=1e-2, report_to="none", use_cpu=True,
                      save_strategy="no", beta=0.0)  # fmt: skip
    dataset = Dataset.from_list([{"prompt": "abcdefgh"[i % 8 :][:3]} for i in range(16)])
    GRPOTrainer(
        model=model, reward_funcs=prefer_code_3, args=args, train_dataset=dataset, processing_class=tokenizer
    ).train()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sample_codes_is_seeded_and_batch_size_independent_in_length():
    from ardm_trl.models.codec_lm import sample_codes

    model = tiny_model()
    texts = [[1, 2], [3, 4, 5, 6], [7], [2, 2, 3]]
    first = sample_codes(model, texts, max_new_tokens=6, seed=5, batch_size=2)
    assert first == sample_codes(model, texts, max_new_tokens=6, seed=5, batch_size=2)
    assert len(first) == len(texts) and all(len(c) <= 6 for c in first)
    assert all(0 <= code < model.config.codebook_size for c in first for code in c)
    assert first != sample_codes(model, texts, max_new_tokens=6, seed=6, batch_size=2)


def test_time_limit_callback_stops_and_saves_a_checkpoint(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from ardm_trl.trainer import TimeLimitCallback

    model = tiny_model().train()
    rows = [{"text_ids": [1, 2, 3], "speech_ids": [5, 6, 7, 8, 9]}, {"text_ids": [4, 5], "speech_ids": [10, 11]}] * 8
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=50, per_device_train_batch_size=2, use_cpu=True,
                             report_to=[], save_strategy="no", logging_strategy="no", remove_unused_columns=False)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=CodecLMDataCollator(model.config), callbacks=[TimeLimitCallback(0.0)])  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 1  # the limit (0 minutes) is over after the first step
    assert (tmp_path / "checkpoint-1" / "model.safetensors").is_file()  # saved although save_strategy is "no"


def test_top_p_keeps_the_smallest_nucleus_and_composes_with_top_k():
    from ardm_trl.models.codec_lm import process_speech_logits

    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    kept = lambda **kw: torch.isfinite(process_speech_logits(logits, **kw)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(top_p=0.3) == [0]  # the most likely token is always kept
    assert kept(top_p=0.79) == [0, 1] and kept(top_p=0.81) == [0, 1, 2] and kept(top_p=1.0) == [0, 1, 2, 3]
    assert kept(top_k=2, top_p=0.99) == [0, 1]  # top-k first, then the nucleus of what is left
    batch = process_speech_logits(torch.stack([logits, logits.flip(0)])[None], top_p=0.6)  # (1, 2, K + 1)
    assert torch.isfinite(batch).sum(-1).tolist() == [[2, 2]] and torch.isfinite(batch[0, 1, 3])
    with pytest.raises(ValueError, match="top_p"):
        process_speech_logits(logits, top_p=0.0)


def test_classifier_free_guidance_combines_the_text_and_text_free_log_probs():
    model = tiny_model()
    texts = [[1, 2, 3, 4], [5]]
    plain = model.sample_speech(texts, max_new_tokens=6, generator=torch.Generator().manual_seed(3))
    same = model.sample_speech(texts, max_new_tokens=6, generator=torch.Generator().manual_seed(3), guidance_scale=1.0)
    assert torch.equal(plain.speech_ids, same.speech_ids) and torch.equal(plain.logits, same.logits)
    guided = model.sample_speech(texts, max_new_tokens=6, generator=torch.Generator().manual_seed(3), guidance_scale=3.0)
    recomputed = model.sample_speech(texts, max_new_tokens=6, generator=torch.Generator().manual_seed(3),
                                     guidance_scale=3.0, use_cache=False)  # fmt: skip
    assert torch.equal(guided.speech_ids, recomputed.speech_ids)
    torch.testing.assert_close(guided.logits, recomputed.logits, atol=1e-5, rtol=0)
    # only the conditional rows come back, in the plain layout
    assert guided.sequences.shape[0] == 2 and guided.prompt_length == plain.prompt_length
    # every step's logits are log p(.|none) + w (log p(.|text) - log p(.|none)) of the sampled prefix
    steps = guided.speech_ids.shape[1]
    with torch.no_grad():
        conditional = model.teacher_forced_speech_logits(guided.sequences, guided.attention_mask, guided.prompt_length)
        free_prompts, free_mask = model.build_prompts([[], []])
        speech = guided.sequences[:, guided.prompt_length :]
        free = torch.cat([free_prompts, speech], 1)
        free_mask = torch.cat([free_mask, guided.attention_mask[:, guided.prompt_length :]], 1)
        text_free = model.teacher_forced_speech_logits(free, free_mask, free_prompts.shape[1])
    conditional, text_free = conditional.log_softmax(-1), text_free.log_softmax(-1)
    expected = text_free + 3.0 * (conditional - text_free)
    done = guided.completion_mask
    torch.testing.assert_close(guided.logits[done], expected[:, :steps][done], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="guidance_scale"):
        model.sample_speech(texts, max_new_tokens=2, guidance_scale=0.0)


def test_text_dropout_collates_text_free_rows_that_guided_attention_skips():
    config = CodecLMConfig(text_vocab_size=12, codebook_size=24, lm_config=TINY_LM, guided_attention_weight=1.0,
                           cfg_dropout_prob=0.5)  # fmt: skip
    with pytest.raises(ValueError, match="cfg_dropout_prob"):
        CodecLMConfig(text_vocab_size=12, codebook_size=24, cfg_dropout_prob=1.0)
    features = [{"text_ids": [1, 2, 3], "speech_ids": [4, 5, 6, 7]} for _ in range(64)]
    torch.manual_seed(0)
    batch = CodecLMDataCollator(config, text_dropout_prob=config.cfg_dropout_prob)(features)
    dropped = batch["input_ids"][:, 1] == config.speech_start_token_id
    assert 16 < int(dropped.sum()) < 48  # about half the rows lost their text
    kept_row = [config.bos_token_id, 1, 2, 3, config.speech_start_token_id]
    assert all(row[:5].tolist() == kept_row for row in batch["input_ids"][~dropped])
    # the speech labels are the same with or without the text
    speech = [t + config.speech_token_offset for t in (4, 5, 6, 7)] + [config.eos_token_id]
    for row, labels in zip(batch["input_ids"], batch["labels"]):
        assert labels[labels != -100].tolist() == speech and row[labels != -100].tolist() == speech
    assert not CodecLMDataCollator(config)(features)["input_ids"][:, 1].eq(config.speech_start_token_id).any()
    # guided attention only counts the rows that kept their text
    torch.manual_seed(0)
    model = CodecLMForSpeechSynthesis(config)
    with torch.no_grad():
        both = model(**batch).guided_attention_loss
        kept = model(**{k: v[~dropped] for k, v in batch.items()}).guided_attention_loss
        none = model(**{k: v[dropped] for k, v in batch.items()}).guided_attention_loss
    torch.testing.assert_close(both, kept)
    assert none.item() == 0.0

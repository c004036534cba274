"""DiffRO on a user's own causal LM: tiny random `Qwen2ForCausalLM` / `LlamaForCausalLM` whose vocabulary holds a
block of speech tokens, in the library's token order and in CosyVoice2's, with no subclass and no glue."""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from ardm_trl.models.codec_lm import SpeechTokenLayout, sample_speech, teacher_forced_speech_logits
from ardm_trl.trainer import DiffROConfig, DiffROTrainer

torch.set_num_threads(1)
TEXT, K = 12, 24
LAYOUTS = {
    # text, pad, bos, speech start, speech, end of speech (the library's codec LM)
    "library": SpeechTokenLayout(codebook_size=K, speech_token_offset=TEXT + 3, eos_token_id=TEXT + 3 + K,
                                 speech_start_token_id=TEXT + 2, pad_token_id=TEXT, bos_token_id=TEXT + 1,
                                 text_vocab_size=TEXT),  # fmt: skip
    # text, speech, end of speech, then start of sequence / task id / pad (CosyVoice2)
    "cosyvoice2": SpeechTokenLayout(codebook_size=K, speech_token_offset=TEXT, eos_token_id=TEXT + K,
                                    speech_start_token_id=TEXT + K + 2, pad_token_id=TEXT + K + 3,
                                    bos_token_id=TEXT + K + 1, text_vocab_size=TEXT),  # fmt: skip
}
VOCAB = TEXT + K + 4
ARCHS = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def user_model(arch: str, seed: int = 0):
    config_class, model_class = ARCHS[arch]
    torch.manual_seed(seed)
    config = config_class(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                          tie_word_embeddings=False)  # fmt: skip
    return model_class(config)


def prompts(n: int = 64) -> Dataset:
    return Dataset.from_list([{"text_ids": [i % TEXT, (3 * i + 1) % TEXT][: 1 + i % 2]} for i in range(n)])


def prefer_code_3(soft_tokens, token_mask, **columns):
    return (soft_tokens[..., 3] * token_mask).sum(-1) / token_mask.sum(-1).clamp(min=1)


def config(tmp_path, **overrides) -> DiffROConfig:
    values = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=2, learning_rate=3e-3,
                  logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", max_new_tokens=10, beta=0.01,
                  seed=0)  # fmt: skip
    return DiffROConfig(**{**values, **overrides})


@pytest.mark.parametrize("order", list(LAYOUTS))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_samples_follow_the_layout_and_replay_exactly(arch, order):
    model, layout = user_model(arch).eval(), LAYOUTS[order]
    out = sample_speech(model, [[1, 2, 3], [4]], layout, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    speech = out.sequences[:, out.prompt_length :]
    codes = speech[out.code_mask]
    assert ((codes >= layout.speech_token_offset) & (codes < layout.speech_token_offset + K)).all()
    assert torch.equal(speech[out.code_mask] - layout.speech_token_offset, out.speech_ids[out.code_mask])
    assert out.sequences[1, out.prompt_length - 1] == layout.speech_start_token_id
    replayed = teacher_forced_speech_logits(model, out.sequences, out.attention_mask, out.prompt_length, layout)
    from ardm_trl.models.codec_lm import process_speech_logits

    mask = out.completion_mask
    torch.testing.assert_close(process_speech_logits(replayed.float())[mask], out.logits[mask], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("order", list(LAYOUTS))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_diffro_trains_a_plain_causal_lm_saves_it_and_trains_it_again_from_the_folder(tmp_path, arch, order):
    trainer = DiffROTrainer(user_model(arch), prefer_code_3, config(tmp_path / "run", max_steps=30, logging_steps=5),
                            train_dataset=prompts(), speech_token_layout=LAYOUTS[order])  # fmt: skip
    trainer.train()
    rewards = [h["rewards/prefer_code_3/mean"] for h in trainer.state.log_history if "reward" in h]
    assert rewards[0] < 0.1 and rewards[-1] > 3 * rewards[0], rewards  # ~1/24 at initialisation
    trainer.save_model()

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "run")
    assert type(reloaded).__name__ == ARCHS[arch][1].__name__
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[name]), name
    assert SpeechTokenLayout.from_model(reloaded) == LAYOUTS[order]  # saved in config.json
    again = DiffROTrainer(str(tmp_path / "run"), prefer_code_3, config(tmp_path / "again"), train_dataset=prompts())
    again.train()
    assert again.state.global_step == 2


def test_lora_on_a_plain_causal_lm_changes_only_adapters(tmp_path):
    from peft import LoraConfig

    model = user_model("qwen2")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = DiffROTrainer(model, prefer_code_3, config(tmp_path, learning_rate=1e-2), train_dataset=prompts(),
                            speech_token_layout=LAYOUTS["cosyvoice2"],
                            peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # fmt: skip
    trainer.train()
    state = trainer.model.state_dict()
    changed = [k for k, v in state.items() if "lora_" in k and not torch.equal(v, torch.zeros_like(v))]
    assert changed
    for key, value in state.items():
        if "lora_" not in key:
            original = key.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(value, base[original]), key


def test_a_model_without_a_layout_or_with_ids_outside_its_vocabulary_is_refused(tmp_path):
    model = user_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="does not say where its speech tokens are"):
        DiffROTrainer(model, prefer_code_3, config(tmp_path), train_dataset=prompts())
    too_big = SpeechTokenLayout(codebook_size=K, speech_token_offset=VOCAB - 2, eos_token_id=0, speech_start_token_id=1,
                                pad_token_id=2)  # fmt: skip
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        DiffROTrainer(model, prefer_code_3, config(tmp_path), train_dataset=prompts(), speech_token_layout=too_big)
    with pytest.raises(ValueError, match="must not hold special tokens"):
        SpeechTokenLayout(codebook_size=K, speech_token_offset=0, eos_token_id=3, speech_start_token_id=K,
                          pad_token_id=K + 1)  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_example_trains_a_users_qwen2_folder_with_a_layout_file(tmp_path):
    """`examples/diffro.py --model_name_or_path <Qwen2 folder> --speech_token_layout layout.json`, as its docstring
    shows: the bundled token reward model reads the user's codes (same codebook size), the layout is saved in the
    trained model's config and the folder reloads with `AutoModelForCausalLM`."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ardm_trl.models.codec_lm import CodecLMTokenizer

    repo = Path(__file__).resolve().parents[1]
    tokenizer = CodecLMTokenizer.from_pretrained(repo / "pretrained" / "codec_lm")
    text, codes = tokenizer.text_vocab_size, 1000
    layout = dict(codebook_size=codes, speech_token_offset=text, eos_token_id=text + codes, bos_token_id=text + codes + 1,
                  speech_start_token_id=text + codes + 2, pad_token_id=text + codes + 3, text_vocab_size=text)  # fmt: skip
    config = Qwen2Config(vocab_size=text + codes + 4, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "user_lm")
    tokenizer.save_pretrained(tmp_path / "user_lm")  # text units the token reward model's CTC head reads
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    command = [sys.executable, "examples/diffro.py", "--model_name_or_path", str(tmp_path / "user_lm"),
               "--speech_token_layout", str(tmp_path / "layout.json"), "--output_dir", str(tmp_path / "out"),
               "--max_steps", "2", "--per_device_train_batch_size", "2", "--num_utterances", "120",
               "--max_new_tokens", "12", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]  # fmt: skip
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert isinstance(trained, Qwen2ForCausalLM)
    assert SpeechTokenLayout.from_dict(trained.config.speech_token_layout) == SpeechTokenLayout.from_dict(layout)
    before = Qwen2ForCausalLM.from_pretrained(tmp_path / "user_lm").state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in trained.state_dict().items())


def test_the_documented_cosyvoice2_lines_run_as_written(tmp_path, monkeypatch):
    """docs/bring_your_own_model.md's block, on a tiny Qwen2 with CosyVoice2's vocabulary (151,646 text ids, 6,561 speech codes, 4
    special ids): only the folder, the step count and the sample length are replaced."""
    import re
    from pathlib import Path

    block = next(b for b in re.findall(r"```python\n(.*?)```", (Path(__file__).parents[1] / "docs" / "bring_your_own_model.md")
                                       .read_text(), re.S) if "CosyVoice2" in b)  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=151_646 + 6565, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                 tie_word_embeddings=False)).save_pretrained(tmp_path / "lm")  # fmt: skip
    small = 'max_steps=1, per_device_train_batch_size=2, max_new_tokens=4, use_cpu=True, report_to="none", ' \
            'save_strategy="no"'  # fmt: skip
    code = (block.replace('"path/or/hub-id-of-your-lm"', repr(str(tmp_path / "lm")))
            .replace('DiffROConfig(output_dir="out")', f"DiffROConfig(output_dir='out', {small})")
            .replace('DiffROConfig(output_dir="out-2")', f"DiffROConfig(output_dir='out-2', {small})")
            .replace("max_new_tokens=300", "max_new_tokens=4"))  # fmt: skip
    assert code.count(small) == 2 and "max_new_tokens=4)" in code
    monkeypatch.chdir(tmp_path)
    namespace = {"my_reward": lambda soft_tokens, token_mask, **columns: (soft_tokens[..., 3] * token_mask).sum(-1),
                 "rows_with_text_ids": Dataset.from_list([{"text_ids": [9906, 1879]}, {"text_ids": [13]}] * 2)}
    exec(compile(code, "docs/bring_your_own_model.md", "exec"), namespace)
    assert namespace["trainer"].state.global_step == 1
    assert SpeechTokenLayout.from_model(namespace["model"]) == namespace["layout"]
    assert namespace["again"].speech_token_layout == namespace["layout"]
    codes = namespace["samples"].speech_ids[namespace["samples"].code_mask]
    assert ((codes >= 0) & (codes < 6561)).all()

"""Smoke tests of the pretraining examples that no benchmark runs: `examples/pretrain_ardm.py`,
`examples/pretrain_codec_lm.py` and `examples/train_token_reward.py` on a tiny corpus, a few optimizer steps each, through saving, reloading and the
evaluation they write (the examples import the shared helpers from the library, not from each other)."""

import json

import pytest
from conftest import run_repo_script

pytestmark = [pytest.mark.slow, pytest.mark.speech]


def run(script: str, *arguments: str) -> None:
    run_repo_script(f"examples/{script}", *arguments, timeout=1200)


def test_pretrain_codec_lm_then_train_token_reward_on_a_tiny_corpus(tmp_path):
    common = ["--num_utterances", "120", "--data_cache", str(tmp_path / "tokens.pt"), "--use_cpu", "true"]
    codec_lm = tmp_path / "codec_lm"
    run("pretrain_codec_lm.py", *common, "--corpus_cache_dir", str(tmp_path / "corpora"), "--max_train_minutes", "5",
        "--max_steps", "3", "--hidden_size", "32",
        "--intermediate_size", "64", "--num_layers", "1", "--num_heads", "2", "--per_device_train_batch_size", "4",
        "--num_eval_samples", "2", "--output_dir", str(tmp_path / "ckpt"), "--model_dir", str(codec_lm))  # fmt: skip
    report = json.loads((codec_lm / "eval_results.json").read_text())
    assert {"model", "tokenizer_resynthesis", "original_audio", "teacher_forced_ce"} <= set(report)
    assert report["train_steps"] == 3 and report["model"]["ctc_nll"] > 0
    assert (codec_lm / "model.safetensors").is_file() and (codec_lm / "README.md").is_file()

    reward = tmp_path / "token_reward"
    run("train_token_reward.py", *common, "--codec_lm_path", str(codec_lm), "--max_train_minutes", "5",
        "--max_steps", "3", "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2",
        "--num_quality_labels", "8", "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "mtr_ckpt"),
        "--model_dir", str(reward), "--quality_cache", str(tmp_path / "quality.pt"))  # fmt: skip
    results = json.loads((reward / "eval_results.json").read_text())  # reuses the codec LM's tokens.pt
    assert results["train_steps"] == 3 and "eval_ctc_nll" in results["held_out"]


def test_pretrain_ardm_trains_saves_and_evaluates_next_to_the_corpus_audio(tmp_path):
    model = tmp_path / "ardm"
    common = ["--num_utterances", "120", "--data_cache", str(tmp_path / "latents.pt"), "--corpus_cache_dir",
              str(tmp_path / "corpora"), "--model_dir", str(model), "--num_eval_samples", "2"]  # fmt: skip
    run("pretrain_ardm.py", *common, "--max_train_minutes", "5", "--max_steps", "3", "--lm_hidden_size", "32",
        "--lm_intermediate_size", "64", "--lm_num_layers", "1", "--lm_num_heads", "2", "--head_hidden_size", "32",
        "--head_num_layers", "1", "--per_device_train_batch_size", "4", "--use_cpu", "true",
        "--output_dir", str(tmp_path / "ckpt"))  # fmt: skip
    report = json.loads((model / "eval_results.json").read_text())
    results = report["results"]
    # a 3-step model stops after a patch or two (too short for the CTC to align the text: NLL nan); the references
    # are scored for real
    assert {"generated", "corpus audio", "codec reconstruction", "teacher-forced mean"} <= set(results)
    assert results["corpus audio"]["ctc_nll"] > 0 and results["codec reconstruction"]["wer"] >= 0, report
    assert results["generated"]["mean_patches"] >= 1 and "wer" in results["generated"]
    assert report["num_samples"] == 2 and report["temperature"] == 1.0
    assert (model / "model.safetensors").is_file() and (model / "text_vocab.json").is_file()
    # evaluation only (`--max_train_minutes 0`), continuing from the saved model and reusing the latent cache
    before = (model / "model.safetensors").read_bytes()
    run("pretrain_ardm.py", *common, "--max_train_minutes", "0", "--eval_temperature", "0", "--output_dir",
        str(tmp_path / "ckpt2"))  # fmt: skip
    assert (model / "model.safetensors").read_bytes() == before
    report = json.loads((model / "eval_results.json").read_text())
    assert report["temperature"] == 0.0 and report["results"]["corpus audio"] == results["corpus audio"]

"""Smoke tests of the pretraining examples that no benchmark runs: `examples/pretrain_codec_lm.py` and
`examples/train_token_reward.py` on a tiny corpus, a few optimizer steps each, through saving, reloading and the
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

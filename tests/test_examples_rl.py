"""The RL examples end to end with tiny settings, as documented: `examples/vgpo.py` and `examples/ardm_dpo.py` in one
process; every `accelerate launch` command the docs show for `examples/vgpo.py`, `examples/ardm_dpo.py` and
`examples/diffro.py` (the `multi_gpu.yaml`, `deepspeed_zero2.yaml` and `deepspeed_zero3.yaml` configs, and the
`--multi_gpu` flags) on 2 CPU ranks; DiffRO refuses ZeRO-3 by name."""

import json
import sys
from pathlib import Path

import pytest
from conftest import accelerate_launch, run_repo_script

from ardm_trl.models.ardm import sampling_settings

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.speech

TINY_VGPO = ["--task", "ctc", "--value_model_name_or_path", "none", "--value_pretrain_steps", "2", "--max_steps", "2",
             "--num_train_prompts", "4", "--num_eval_prompts", "2", "--eval_seeds", "0", "--corpus_utterances", "120",
             "--per_device_train_batch_size", "2", "--num_generations", "2", "--max_patches", "24",
             "--num_inference_steps", "2", "--num_threads", "1"]  # fmt: skip
TINY_DIFFRO = ["--use_cpu", "true", "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "8",
               "--num_utterances", "120", "--max_prompts", "8", "--report_to", "none", "--save_strategy", "no"]  # fmt: skip
TINY_DPO = ["--task", "ctc", "--max_steps", "2", "--num_train_prompts", "4", "--num_eval_prompts", "2",
            "--eval_seeds", "0", "--corpus_utterances", "120", "--num_samples", "2", "--per_device_train_batch_size", "2"]  # fmt: skip


def load_example(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_the_demo_uses_the_bundled_value_model_of_its_task_and_names_a_missing_one():
    vgpo = load_example("vgpo")
    script_args = vgpo.ScriptArguments()
    assert script_args.task == "pitch" and script_args.value_model_name_or_path is None
    value_model = vgpo.value_model_for(script_args, None, None, None, None)
    assert type(value_model).__name__ == "ARDMValueModel" and not value_model.has_untrained_head()
    with pytest.raises(FileNotFoundError, match="No value model is bundled for task 'f0'"):
        vgpo.value_model_for(vgpo.ScriptArguments(task="f0"), None, None, None, None)


def check_saved_policy(folder: Path) -> None:
    from ardm_trl import ARDMForSpeechSynthesis

    model = ARDMForSpeechSynthesis.from_pretrained(folder)
    assert sampling_settings(model)["temperature"] == 0.25  # the setting it was trained and evaluated at
    assert (folder / "text_vocab.json").is_file() and (folder / "run_info.json").is_file()


@pytest.mark.slow  # the two-process runs below cover the same path in the fast suite
def test_vgpo_example_trains_evaluates_and_saves(tmp_path):
    out = tmp_path / "vgpo"
    completed = run_repo_script("examples/vgpo.py", *TINY_VGPO, "--output_dir", out, timeout=900)
    assert "| VGPO |" in completed.stdout and "± " in completed.stdout
    table = json.loads((out / "results.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["Base", "VGPO"]
    check_saved_policy(out / "model")
    assert (out / "model" / "value_model").is_dir()


@pytest.mark.slow
def test_ardm_dpo_example_trains_evaluates_and_saves(tmp_path):
    out = tmp_path / "dpo"
    completed = run_repo_script("examples/ardm_dpo.py", *TINY_DPO, "--output_dir", out, timeout=900)
    assert "ARDM-DPO (β=2)" in completed.stdout
    check_saved_policy(out / "model")


@pytest.mark.parametrize("script, tiny, port", [("examples/vgpo.py", TINY_VGPO, 29631),
                                                ("examples/ardm_dpo.py", TINY_DPO, 29632)])
def test_examples_run_on_two_processes_with_the_documented_config(tmp_path, script, tiny, port):
    completed = accelerate_launch(ROOT / script, *tiny, "--output_dir", tmp_path / "out", port=port,
                                  config_file=ROOT / "examples" / "accelerate_configs" / "multi_gpu.yaml", timeout=1200)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "± " in completed.stdout  # the results table, printed once
    table = json.loads((tmp_path / "out" / "results.json").read_text())
    assert table["rows"][0]["name"] == "Base" and len(table["rows"]) == 2
    check_saved_policy(tmp_path / "out" / "model")


def check_saved(script: str, folder: Path) -> None:
    if script == "examples/diffro.py":
        from transformers import AutoModelForCausalLM

        import ardm_trl  # noqa: F401  (registers the codec LM)

        assert type(AutoModelForCausalLM.from_pretrained(folder)).__name__ == "CodecLMForSpeechSynthesis"
    else:
        check_saved_policy(folder / "model")


DEEPSPEED_ENV = {"DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": str(ROOT / ".cache" / "torch_extensions")}


@pytest.mark.parametrize("script, tiny, port, stage", [("examples/vgpo.py", TINY_VGPO, 29641, 2),
                                                       ("examples/ardm_dpo.py", TINY_DPO, 29642, 2),
                                                       ("examples/diffro.py", TINY_DIFFRO, 29643, 2),
                                                       ("examples/vgpo.py", TINY_VGPO, 29645, 3),
                                                       ("examples/ardm_dpo.py", TINY_DPO, 29646, 3)])  # fmt: skip
def test_examples_run_under_the_documented_deepspeed_configs(tmp_path, script, tiny, port, stage):
    pytest.importorskip("deepspeed")
    completed = accelerate_launch(ROOT / script, *tiny, "--output_dir", tmp_path / "out", port=port, timeout=1200,
                                  config_file=ROOT / "examples" / "accelerate_configs" / f"deepspeed_zero{stage}.yaml",
                                  env=DEEPSPEED_ENV)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    check_saved(script, tmp_path / "out")  # saved whole: it reloads and samples


def test_diffro_refuses_deepspeed_zero3_by_name(tmp_path):
    pytest.importorskip("deepspeed")
    completed = accelerate_launch(ROOT / "examples" / "diffro.py", *TINY_DIFFRO, "--output_dir", tmp_path / "out",
                                  port=29647, timeout=1200, env=DEEPSPEED_ENV,
                                  config_file=ROOT / "examples" / "accelerate_configs" / "deepspeed_zero3.yaml")  # fmt: skip
    assert completed.returncode != 0
    assert "DiffROTrainer does not support DeepSpeed ZeRO-3" in completed.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_diffro_example_runs_on_two_processes_with_the_documented_flags(tmp_path):
    completed = accelerate_launch(ROOT / "examples" / "diffro.py", *TINY_DIFFRO, "--output_dir", tmp_path / "out",
                                  port=29644, timeout=1200)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    check_saved("examples/diffro.py", tmp_path / "out")

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_ardm_config(**overrides):
    """A tiny ARDM configuration for fast tests (built in-process, nothing downloaded)."""
    from ardm_trl import ARDMConfig

    values = dict(
        latent_dim=4,
        patch_size=2,
        text_vocab_size=16,
        backbone_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
        ),
        head_hidden_size=48,
        head_num_layers=2,
        max_patches=8,
        diffusion_batch_multiplier=2,
    )
    values.update(overrides)
    return ARDMConfig(**values)


@pytest.fixture
def tiny_config():
    return tiny_ardm_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def accelerate_launch(script, *script_args, port: int, config_file=None, env=None, timeout: int = 600):
    """Run `script` under `accelerate launch` with two processes on the CPU (gloo) and return the finished process.

    `accelerate launch --cpu --num_processes 2` silently runs one process; `--multi_gpu` with a CPU script runs two.
    With `config_file` (e.g. DeepSpeed) the file decides the launcher.
    """
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    launcher = ["--config_file", str(config_file)] if config_file else [
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--main_process_port", str(port),
           str(script), *map(str, script_args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo / "tests"), **(env or {})}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)


def run_repo_script(script, *script_args, timeout: int = 600):
    """Run a script of the repository (`"benchmarks/x.py"`, `"examples/y.py"`) from the repository root on one
    thread, assert that it exited with 0 (showing the end of its stderr otherwise) and return the finished process."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(repo / script), *map(str, script_args)]
    completed = subprocess.run(command, cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                               text=True, timeout=timeout)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed

"""VGPOTrainer under DeepSpeed ZeRO-2 on two CPU ranks (the `deepspeed` extra; skipped without it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")
REPO = Path(__file__).resolve().parents[1]


def test_deepspeed_zero2_two_ranks_train(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests"), "DS_ACCELERATOR": "cpu",
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "examples" / "accelerate_configs" / "deepspeed_zero2.yaml"), "--main_process_port", "29541",
           str(REPO / "tests" / "scripts" / "vgpo_deepspeed.py"), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {"num_processes": 2, "changed_parameters": report["changed_parameters"], "zero_stage": 2}
    assert report["changed_parameters"] > 0

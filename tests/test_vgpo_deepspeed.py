"""VGPOTrainer under DeepSpeed ZeRO-2 on two CPU ranks (the `deepspeed` extra; skipped without it)."""

import json
import os
from pathlib import Path

import pytest
from conftest import accelerate_launch

pytest.importorskip("deepspeed")
REPO = Path(__file__).resolve().parents[1]


def test_deepspeed_zero2_two_ranks_train(tmp_path):
    result = accelerate_launch(
        REPO / "tests" / "scripts" / "vgpo_deepspeed.py", tmp_path, port=29541,
        config_file=REPO / "examples" / "accelerate_configs" / "deepspeed_zero2.yaml",
        env={"DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == {"num_processes": 2, "changed_parameters": report["changed_parameters"], "zero_stage": 2}
    assert report["changed_parameters"] > 0

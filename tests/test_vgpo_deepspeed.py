"""VGPOTrainer under DeepSpeed ZeRO-2 and ZeRO-3 on two CPU ranks (the `deepspeed` extra; skipped without it)."""

import json
import os
from pathlib import Path

import pytest
from conftest import accelerate_launch

pytest.importorskip("deepspeed")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stage, port, lora", [(2, 29541, False), (3, 29542, False), (3, 29543, True)],
                         ids=["zero2", "zero3", "zero3_lora"])
def test_deepspeed_two_ranks_train(tmp_path, stage, port, lora):
    result = accelerate_launch(
        REPO / "tests" / "scripts" / "vgpo_deepspeed.py", tmp_path, *(["lora"] if lora else []), port=port,
        config_file=REPO / "examples" / "accelerate_configs" / f"deepspeed_zero{stage}.yaml",
        env={"DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["num_processes"] == 2 and report["zero_stage"] == stage
    assert report["policy_sharded"] == (stage == 3)  # ZeRO-3 shards the trained policy, ZeRO-2 does not
    assert report["whole_parameters"] == report["expected_parameters"]  # gathered back whole
    assert report["changed_parameters"] > 0 and report["value_changed_parameters"] > 0


def test_zero3_init_disabled_switches_the_active_configuration_off_and_back():
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled

    from ardm_trl.zero3 import gathered_state_dict, is_zero3_sharded, zero3_init_disabled

    with zero3_init_disabled():  # no configuration: a no-op
        assert not is_deepspeed_zero3_enabled()
    config = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    try:
        assert is_deepspeed_zero3_enabled()
        with zero3_init_disabled():
            assert not is_deepspeed_zero3_enabled()
        assert is_deepspeed_zero3_enabled() and config.is_zero3()
    finally:
        from transformers.integrations import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    import torch

    layer = torch.nn.Linear(3, 2)
    assert not is_zero3_sharded(layer)
    state = gathered_state_dict(layer)
    assert torch.equal(state["weight"], layer.weight) and state["weight"].data_ptr() != layer.weight.data_ptr()

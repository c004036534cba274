"""VGPOTrainer under DeepSpeed on 2 CPU ranks (gloo), run by tests/test_vgpo_deepspeed.py via `accelerate launch
--config_file examples/accelerate_configs/deepspeed_zero{2,3}.yaml`: online value update and ADM on, optionally LoRA;
the whole policy gathered back after training (under ZeRO-3 from its shards)."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

PartialState(backend="gloo")  # before the Trainer; with `ddp_backend="gloo"` below, DeepSpeed runs on CPU ranks

from test_vgpo import dataset, make_models, mean_latent, vgpo_args  # noqa: E402

from ardm_trl.trainer import VGPOTrainer  # noqa: E402
from ardm_trl.zero3 import is_zero3_sharded  # noqa: E402


def main(out_dir: str, lora: bool = False) -> None:
    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    value_before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    args = vgpo_args(out_dir, max_steps=2, use_cpu=False, ddp_backend="gloo", online_value_update=True, value_steps=1,
                     use_adm=True, discriminator_steps=1)  # fmt: skip
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset(16), peft_config=peft_config)
    assert trainer.is_deepspeed_enabled, "DeepSpeed plugin was dropped"
    trainer.train()
    stage = trainer.accelerator.state.deepspeed_plugin.zero_stage
    sharded = is_zero3_sharded(trainer.accelerator.unwrap_model(trainer.model))
    model = trainer.whole_policy()  # every rank: gathers under ZeRO-3
    if lora:  # the adapters folded in: the weights the trained policy samples with
        model = model.merge_and_unload()
    changed = sum(not torch.equal(p.detach().cpu(), before[n]) for n, p in model.named_parameters())
    value_changed = sum(not torch.equal(p.detach(), value_before[n]) for n, p in value_model.named_parameters())
    if trainer.accelerator.is_main_process:
        Path(out_dir, "report.json").write_text(json.dumps(
            {"num_processes": trainer.accelerator.num_processes, "changed_parameters": changed,
             "value_changed_parameters": value_changed, "zero_stage": stage, "policy_sharded": sharded,
             "whole_parameters": sum(p.numel() for p in model.parameters()),
             "expected_parameters": sum(p.numel() for p in before.values())}))  # fmt: skip
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], lora=len(sys.argv) > 2 and sys.argv[2] == "lora")

"""VGPOTrainer under DeepSpeed ZeRO-2 on 2 CPU ranks (gloo), run by tests/test_vgpo_deepspeed.py via `accelerate
launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml`."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

PartialState(backend="gloo")  # before the Trainer; with `ddp_backend="gloo"` below, DeepSpeed runs on CPU ranks

from test_vgpo import dataset, make_models, mean_latent, vgpo_args  # noqa: E402

from ardm_trl.trainer import VGPOTrainer  # noqa: E402


def main(out_dir: str) -> None:
    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    args = vgpo_args(out_dir, max_steps=2, use_cpu=False, ddp_backend="gloo", online_value_update=True, value_steps=1)
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset(16))
    assert trainer.is_deepspeed_enabled, "DeepSpeed plugin was dropped"
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    changed = sum(not torch.equal(p.detach().cpu(), before[n]) for n, p in model.named_parameters())
    if trainer.accelerator.is_main_process:
        Path(out_dir, "report.json").write_text(json.dumps(
            {"num_processes": trainer.accelerator.num_processes, "changed_parameters": changed,
             "zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage}))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])

"""Run by tests/test_vgpo.py under `accelerate launch --multi_gpu --num_processes 2` on the CPU (gloo)."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from test_vgpo import dataset, make_models, mean_latent, vgpo_args

from ardm_trl.trainer import VGPOTrainer


def main(out_dir: str) -> None:
    state = PartialState()
    policy, value_model = make_models()  # same seed on every rank: identical initial weights
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    args = vgpo_args(out_dir, max_steps=2, online_value_update=True, value_steps=1)
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset(16))
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    changed = sum(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    # DDP keeps the policy identical across ranks; the value model is all-reduced by the trainer
    checksum = torch.tensor([sum(p.double().sum() for p in model.parameters()),
                             sum(p.double().sum() for p in value_model.parameters())])
    gathered = trainer.accelerator.gather(checksum[None])
    agree = bool(torch.allclose(gathered[0], gathered[1], rtol=1e-6, atol=1e-6))
    if state.is_main_process:
        Path(out_dir, "report.json").write_text(json.dumps(
            {"num_processes": state.num_processes, "changed_parameters": changed, "ranks_agree": agree}))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])

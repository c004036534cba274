"""Run by tests/test_ardm_dpo.py under `accelerate launch --multi_gpu --num_processes 2` on the CPU (gloo)."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from test_ardm_dpo import dpo_args, make_policy, preference_dataset

from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer


def main(out_dir: str) -> None:
    state = PartialState()
    policy = make_policy()  # same seed on every rank: identical initial weights
    data = preference_dataset(policy, n=16)  # seeded generator: identical pairs on every rank
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = ARDMDPOTrainer(policy, args=dpo_args(out_dir, max_steps=2, per_device_train_batch_size=2),
                             train_dataset=data)
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    changed = sum(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    checksum = torch.tensor([sum(p.double().sum() for p in model.parameters())])
    gathered = trainer.accelerator.gather(checksum[None])
    agree = bool(torch.allclose(gathered[0], gathered[1], rtol=1e-6, atol=1e-6))  # DDP keeps the ranks identical
    if state.is_main_process:
        Path(out_dir, "report.json").write_text(json.dumps(
            {"num_processes": state.num_processes, "changed_parameters": changed, "ranks_agree": agree}))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])

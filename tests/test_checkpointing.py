"""Checkpoints survive a kill inside a save: the interrupted checkpoint is never chosen, and resuming from the last
whole one ends bit-identical to an uninterrupted run (VGPO with online value updates and ADM, ARDM-DPO, value
training, DiffRO with its Gumbel noise, token-reward training)."""

import json

import pytest
import torch
from conftest import tiny_ardm_config
from datasets import Dataset

from ardm_trl import ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.trainer import (
    ARDMDPOConfig,
    ARDMDPOTrainer,
    DiffROTrainer,
    ValueConfig,
    ValueTrainer,
    VGPOConfig,
    VGPOTrainer,
    build_preference_dataset,
)
from ardm_trl.trainer.checkpointing import COMPLETE_MARKER, last_complete_checkpoint, resolve_resume_checkpoint


class KilledDuringSave(RuntimeError):
    pass


def mean_latent(prompts, completions, **kwargs):
    return [float(c.mean()) for c in completions]


def tiny_policy(seed=0):
    torch.manual_seed(seed)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return policy


def prompts(n=8):
    return Dataset.from_list([{"prompt": f"sentence {i}", "text_input_ids": [1 + i % 5, 2, 3][: 2 + i % 2]}
                              for i in range(n)])  # fmt: skip


def common(tmp_path, **overrides):
    return dict(dict(output_dir=str(tmp_path), max_steps=4, save_strategy="steps", save_steps=1, learning_rate=1e-3,
                     logging_steps=1, use_cpu=True, disable_tqdm=True, report_to="none", seed=3), **overrides)


def make_vgpo(tmp_path, lora: bool = False, **overrides):
    """VGPO with online value update and ADM; with `lora`, LoRA adapters (the reference is the policy with adapters
    off) instead of a frozen copy."""
    from peft import LoraConfig

    policy = tiny_policy()
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.1)
    if lora:
        overrides = dict(learning_rate=1e-2, **overrides)
    args = VGPOConfig(**common(tmp_path, per_device_train_batch_size=2, num_generations=2, max_patches=3,
                               min_patches=3, num_inference_steps=4, online_value_update=True, value_steps=1,
                               use_adm=True, discriminator_steps=1, **overrides))  # fmt: skip
    reference = dict(peft_config=LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])) if lora else \
        dict(ref_model=tiny_policy())  # fmt: skip
    return VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=prompts(), **reference)


def make_vgpo_lora(tmp_path, **overrides):
    return make_vgpo(tmp_path, lora=True, **overrides)


def make_dpo(tmp_path, **overrides):
    policy = tiny_policy()
    data = build_preference_dataset(policy, list(prompts()), mean_latent, num_samples=3, min_patches=2, max_patches=3,
                                    num_inference_steps=4, generator=torch.Generator().manual_seed(0))  # fmt: skip
    args = ARDMDPOConfig(**common(tmp_path, per_device_train_batch_size=4, beta=10.0, **overrides))
    return ARDMDPOTrainer(policy, ref_model=tiny_policy(), args=args, train_dataset=data)


def make_value(tmp_path, **overrides):
    value_model = ARDMValueModel.from_ardm(tiny_policy())
    rows = [{"text_input_ids": [1, 2], "latents": torch.randn(4, 4).tolist(), "reward": float(i % 3)}
            for i in range(16)]  # fmt: skip
    args = ValueConfig(**common(tmp_path, per_device_train_batch_size=4, num_draws=2, **overrides))
    return ValueTrainer(value_model, args, train_dataset=Dataset.from_list(rows))


def make_diffro(tmp_path, **overrides):
    from test_diffro import make_args, prefer_token_3, prompts_dataset, tiny_policy

    args = make_args(tmp_path, **common(tmp_path, learning_rate=3e-3, **overrides))
    return DiffROTrainer(tiny_policy(), prefer_token_3, args, train_dataset=prompts_dataset())


def make_token_reward(tmp_path, **overrides):
    from test_token_reward import synthetic_rows, tiny_config

    from ardm_trl.models.token_reward import TokenRewardModel
    from ardm_trl.trainer import TokenRewardTrainer, TokenRewardTrainingConfig

    torch.manual_seed(0)
    args = TokenRewardTrainingConfig(**common(tmp_path, per_device_train_batch_size=8, **overrides))
    return TokenRewardTrainer(model=TokenRewardModel(tiny_config()), args=args,
                              train_dataset=Dataset.from_list(synthetic_rows(32, seed=0)))  # fmt: skip


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("make", [make_vgpo, make_vgpo_lora, make_dpo, make_value, make_diffro, make_token_reward],
                         ids=["vgpo", "vgpo_lora", "ardm_dpo", "value", "diffro", "token_reward"])
def test_a_save_killed_midway_is_skipped_and_resume_is_exact(tmp_path, make):
    full = make(tmp_path / "full")
    full.train()
    expected = weights(full)

    # the run dies inside the save of checkpoint-3: after the weights and optimiser, before the RNG and trainer state
    killed = make(tmp_path / "run")

    def die(output_dir):
        if killed.state.global_step == 3:
            raise KilledDuringSave
        return type(killed)._save_rng_state(killed, output_dir)

    killed._save_rng_state = die
    with pytest.raises(KilledDuringSave):
        killed.train()
    partial = tmp_path / "run" / "checkpoint-3"
    weights_file = "adapter_model.safetensors" if make is make_vgpo_lora else "model.safetensors"
    assert (partial / weights_file).exists() and not (partial / COMPLETE_MARKER).exists()
    assert last_complete_checkpoint(tmp_path / "run").endswith("checkpoint-2")
    with pytest.raises(ValueError, match="incomplete checkpoint"):
        resolve_resume_checkpoint(str(partial), str(tmp_path / "run"))

    resumed = make(tmp_path / "run")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    got = weights(resumed)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    for name in ("value_model", "discriminator"):  # VGPO's critics resume with the policy
        if getattr(full, name, None) is not None:
            a, b = getattr(full, name).state_dict(), getattr(resumed, name).state_dict()
            assert all(torch.equal(a[k], b[k]) for k in a), name
    # the interrupted folder was written again, whole, by the resumed run
    assert (partial / COMPLETE_MARKER).exists() and (partial / "trainer_state.json").exists()
    assert json.loads((partial / COMPLETE_MARKER).read_text())["global_step"] == 3


def test_resume_without_a_complete_checkpoint_or_without_the_critics_is_refused(tmp_path):
    trainer = make_vgpo(tmp_path / "run")
    with pytest.raises(ValueError, match="no complete checkpoint"):
        trainer.train(resume_from_checkpoint=True)
    make_vgpo(tmp_path / "run", max_steps=1).train()
    (tmp_path / "run" / "checkpoint-1" / "value_model" / "optimizer.pt").unlink()
    trainer = make_vgpo(tmp_path / "run")
    before = weights(trainer)
    with pytest.raises(FileNotFoundError, match="optimizer.pt"):
        trainer.train(resume_from_checkpoint=True)
    assert all(torch.equal(v, before[k]) for k, v in weights(trainer).items())

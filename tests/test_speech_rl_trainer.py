"""The shared RL trainer base: a new method written as a subclass gets the policy, its reference (frozen copy or
adapters off), checked reward functions and metric logging, and trains only the policy."""

import pytest
import torch
from conftest import tiny_ardm_config
from datasets import Dataset

from ardm_trl import ARDMForSpeechSynthesis
from ardm_trl.models.ardm import draw_noisy_tokens
from ardm_trl.trainer import ARDMDPOTrainer, DiffROTrainer, SpeechRLConfig, SpeechRLTrainer, VGPOTrainer
from ardm_trl.trainer.ardm_utils import ardm_kl


def mean_latent(prompts, completions, **kwargs):
    return [float(c.mean()) for c in completions]


class PullTowardsZero(SpeechRLTrainer):
    """A toy method: shrink the policy's noise prediction on random latents, with a KL-like penalty to the
    reference; logs a metric and reads its rewards' names."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        base = self._policy
        text = torch.tensor([row["text_input_ids"] for row in inputs], device=self.accelerator.device)
        latents = torch.randn(len(inputs), 2 * base.config.patch_size, base.config.latent_dim, generator=self._noise)
        patches, patch_mask = base.patchify(latents, None)
        draws = draw_noisy_tokens(base.noise_schedule, patches, patch_mask, 2, generator=self._noise)
        outputs = model(text_input_ids=text, latents=latents, draws=draws)
        with torch.no_grad(), self.reference() as ref:
            reference = ref(text_input_ids=text, latents=latents, draws=draws).head_prediction
        loss = outputs.head_prediction.pow(2).mean() + ardm_kl(outputs.head_prediction, reference)
        self._record_metric("reward_funcs", len(self.reward_names))
        return loss

    def configure_model(self, model, args):
        self._noise = torch.Generator().manual_seed(args.seed)
        return model


def perturbed_policy() -> ARDMForSpeechSynthesis:
    """A tiny ARDM off its zero initialisation (adaLN-zero, zero output layer), so its predictions are non-zero."""
    torch.manual_seed(0)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return policy


def rows(n=4):
    return Dataset.from_list([{"prompt": f"s{i}", "text_input_ids": [1 + i % 3, 2, 3]} for i in range(n)])


def config(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                  logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none")
    values.update(overrides)
    return SpeechRLConfig(**values)


def test_a_subclass_trains_the_policy_against_a_frozen_reference(tmp_path):
    policy = perturbed_policy()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = PullTowardsZero(policy, config(tmp_path), reward_funcs=mean_latent, train_dataset=rows())
    assert trainer.reward_names == ["mean_latent"] and trainer.reward_weights.tolist() == [1.0]
    reference = trainer.ref_model
    assert reference is not policy and not any(p.requires_grad for p in reference.parameters())
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in reference.named_parameters())  # the reference never moves
    assert trainer.state.log_history[0]["reward_funcs"] == 1
    with trainer.reference() as ref:
        assert ref is reference


def test_with_lora_the_reference_is_the_policy_with_adapters_off(tmp_path):
    from peft import LoraConfig

    policy = perturbed_policy()
    trainer = PullTowardsZero(policy, config(tmp_path, peft_modules_to_save=["head"]), train_dataset=rows(),
                              peft_config=LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))  # fmt: skip
    assert trainer.ref_model is None  # no second copy
    trainer.train()
    trained = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or "modules_to_save" in n for n in trained)
    with trainer.reference() as ref:
        assert any(getattr(m, "disable_adapters", False) for m in ref.modules())


def test_bad_reward_functions_and_weights_raise_before_any_set_up(tmp_path):
    policy = ARDMForSpeechSynthesis(tiny_ardm_config())
    with pytest.raises(ValueError, match="callables"):
        PullTowardsZero(policy, config(tmp_path), reward_funcs=[], train_dataset=rows())
    args = config(tmp_path)
    args.reward_weights = [1.0, 2.0]
    with pytest.raises(ValueError, match="reward_weights"):
        PullTowardsZero(policy, args, reward_funcs=mean_latent, train_dataset=rows())


def test_the_project_trainers_share_the_base():
    for trainer in (VGPOTrainer, ARDMDPOTrainer, DiffROTrainer):
        assert issubclass(trainer, SpeechRLTrainer)
        assert "__init__" in vars(trainer) and "_init_metrics" not in vars(trainer)

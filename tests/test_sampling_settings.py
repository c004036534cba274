"""How an ARDM samples is part of the model: settings saved in its generation config, used by `generate` and by the
trainers' rollouts, and written back by VGPO when it saves the policy."""

import pytest
import torch
from conftest import tiny_ardm_config
from datasets import Dataset

from ardm_trl import ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.models.ardm import SAMPLING_DEFAULTS, sampling_settings, set_sampling_settings
from ardm_trl.trainer import VGPOConfig, VGPOTrainer


def test_settings_resolve_from_call_then_generation_config_then_config(tmp_path):
    model = ARDMForSpeechSynthesis(tiny_ardm_config(lm_guidance_scale=3.0, max_patches=5))
    settings = sampling_settings(model)
    assert settings["lm_guidance_scale"] == 3.0 and settings["max_patches"] == 5
    assert settings["temperature"] == SAMPLING_DEFAULTS["temperature"] == 1.0
    set_sampling_settings(model, temperature=0.25, lm_guidance_scale=1.5)
    assert sampling_settings(model)["temperature"] == 0.25
    assert sampling_settings(model, temperature=0.5)["temperature"] == 0.5  # the call wins
    assert sampling_settings(model)["max_patches"] == 5  # unset in the generation config: from the config
    model.save_pretrained(tmp_path)
    reloaded = ARDMForSpeechSynthesis.from_pretrained(tmp_path)
    assert sampling_settings(reloaded) == sampling_settings(model)
    with pytest.raises(ValueError, match="Unknown sampling settings"):
        sampling_settings(model, temprature=0.5)


def test_generate_samples_with_the_saved_settings():
    torch.manual_seed(0)
    model = ARDMForSpeechSynthesis(tiny_ardm_config()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    text = torch.tensor([[1, 2, 3]])

    def sample(**kwargs):
        return model.generate(text, min_patches=3, max_patches=3, generator=torch.Generator().manual_seed(0),
                              **kwargs).latents

    explicit = sample(temperature=0.0, lm_guidance_scale=1.0)
    set_sampling_settings(model, temperature=0.0, lm_guidance_scale=1.0)
    assert torch.equal(sample(), explicit)
    assert not torch.equal(sample(temperature=1.0), explicit)


def test_vgpo_rolls_out_and_saves_with_its_sampling_settings(tmp_path):
    torch.manual_seed(0)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config())
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.1)
    set_sampling_settings(policy, temperature=0.5, lm_guidance_scale=1.5)
    args = VGPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_patches=3, min_patches=3, num_inference_steps=4, temperature=0.25, use_cpu=True,
                      save_strategy="no", report_to="none", disable_tqdm=True)
    data = Dataset.from_list([{"prompt": "a", "text_input_ids": [1, 2]}] * 4)
    trainer = VGPOTrainer(policy, value_model, lambda completions, **kw: [0.0] * len(completions), args,
                          train_dataset=data)
    rollout = trainer._generation_kwargs()
    assert rollout["temperature"] == 0.25  # the config wins over the model's own setting
    assert rollout["lm_guidance_scale"] == 1.5  # unset in the config: the model's
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    saved = sampling_settings(ARDMForSpeechSynthesis.from_pretrained(tmp_path / "final"))
    assert (saved["temperature"], saved["lm_guidance_scale"], saved["num_inference_steps"]) == (0.25, 1.5, 4)

"""Bad inputs through the public API: each gets a clear error that names the cause (and no weight changes), or the
documented behaviour. docs/reliability.md lists them."""

import pytest
import torch
from conftest import tiny_ardm_config
from datasets import Dataset

from ardm_trl import ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.trainer import ARDMDPOConfig, ARDMDPOTrainer, VGPOConfig, VGPOTrainer, build_preference_dataset


def mean_latent(prompts, completions, **kwargs):
    return [float(c.mean()) for c in completions]


def models():
    torch.manual_seed(0)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config())
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.1)
    return policy, value_model


def rows(n=8, **extra):
    return [{"prompt": f"s{i}", "text_input_ids": [1 + i % 5, 2], **extra} for i in range(n)]


def args(tmp_path, **overrides):
    return VGPOConfig(**{**dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                                num_generations=2, max_patches=3, min_patches=3, num_inference_steps=4,
                                learning_rate=1e-3, logging_steps=1, use_cpu=True, disable_tqdm=True,
                                report_to="none", save_strategy="no"), **overrides})  # fmt: skip


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


BAD_REWARDS = [
    (lambda prompts, completions, **kw: torch.zeros(len(completions), 1), r"shape \(4, 1\)"),
    (lambda prompts, completions, **kw: 1.0, "returned float"),
    (lambda prompts, completions, **kw: "good", "returned str"),
    (lambda prompts, completions, **kw: {"reward": 1.0}, "returned dict"),
]


@pytest.mark.parametrize("reward, match", BAD_REWARDS, ids=["tensor_b1", "scalar", "string", "dict"])
def test_reward_outputs_of_the_wrong_shape_or_type_are_named(tmp_path, reward, match):
    policy, value_model = models()
    before = snapshot(policy)
    trainer = VGPOTrainer(policy, value_model, reward, args(tmp_path), train_dataset=rows())
    with pytest.raises(ValueError, match=match):
        trainer.train()
    assert unchanged(policy, before)


def test_text_ids_outside_the_vocabulary_are_named(tmp_path):
    policy, value_model = models()
    before = snapshot(policy)
    bad = [{"prompt": "x", "text_input_ids": [1, 10**6]}] * 4
    trainer = VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), train_dataset=bad)
    with pytest.raises(ValueError, match="Text ids must lie in"):
        trainer.train()
    assert unchanged(policy, before)
    with pytest.raises(ValueError, match="Text ids must lie in"):
        policy.generate(torch.tensor([[1, -1]]), max_patches=1)


@pytest.mark.parametrize("name", ["train_dataset", "eval_dataset"])
def test_an_empty_dataset_is_refused_at_construction(tmp_path, name):
    policy, value_model = models()
    datasets = {"train_dataset": rows(), name: Dataset.from_list([])}
    with pytest.raises(ValueError, match=f"`{name}` is empty"):
        VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), **datasets)


def test_rows_without_text_ids_beside_rows_with_them_are_refused(tmp_path):
    policy, value_model = models()
    mixed = rows(4) + [{"prompt": "no ids"}] * 4
    trainer = VGPOTrainer(policy, value_model, mean_latent, args(tmp_path, per_device_train_batch_size=8),
                          train_dataset=mixed)  # fmt: skip
    with pytest.raises(ValueError, match="have no `text_input_ids` while the others do"):
        trainer.train()


def test_voice_prompts_are_per_row(tmp_path):
    """A batch where only some rows carry a voice prompt: each row keeps its own (the others get none)."""
    from ardm_trl.trainer.rollout import prepare_prompt_batch

    voiced = {"prompt": "a", "text_input_ids": [1, 2], "prompt_latents": torch.ones(6, 4).tolist()}
    plain = {"prompt": "b", "text_input_ids": [1, 2]}
    for order in ([voiced, plain], [plain, voiced]):
        batch = prepare_prompt_batch(order, patch_size=2)
        lengths = batch.prompt_latents_mask.sum(-1).tolist()
        assert lengths == [6 if row is voiced else 0 for row in order]
    policy, value_model = models()
    trainer = VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), train_dataset=[voiced, plain] * 4)
    trainer.train()
    assert trainer.state.global_step == 2


def test_vgpo_evaluates_on_eval_prompts_and_logs_eval_metrics(tmp_path):
    policy, value_model = models()
    config = args(tmp_path, eval_strategy="steps", eval_steps=1, score_logged_steps_only=True)
    trainer = VGPOTrainer(policy, value_model, mean_latent, config, train_dataset=rows(), eval_dataset=rows(4))
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert len(evals) == 2 and all("eval_reward" in h and "eval_kl" in h for h in evals)


def test_ardm_dpo_evaluates_on_eval_pairs(tmp_path):
    policy, _ = models()
    data = build_preference_dataset(policy, rows(), mean_latent, num_samples=3, min_patches=2, max_patches=3,
                                    num_inference_steps=4, generator=torch.Generator().manual_seed(0))  # fmt: skip
    config = ARDMDPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, beta=10.0,
                           eval_strategy="steps", eval_steps=1, logging_steps=1, use_cpu=True, disable_tqdm=True,
                           report_to="none", save_strategy="no")  # fmt: skip
    trainer = ARDMDPOTrainer(policy, args=config, train_dataset=data, eval_dataset=data)
    trainer.train()
    assert any("eval_loss" in h for h in trainer.state.log_history)


def test_diffro_evaluates_on_eval_prompts(tmp_path):
    from test_diffro import make_args, prefer_token_3, prompts_dataset, tiny_policy

    from ardm_trl.trainer import DiffROTrainer

    config = make_args(tmp_path, eval_strategy="steps", eval_steps=1)
    trainer = DiffROTrainer(tiny_policy(), prefer_token_3, config, train_dataset=prompts_dataset(),
                            eval_dataset=prompts_dataset(8))  # fmt: skip
    trainer.train()
    assert any("eval_loss" in h for h in trainer.state.log_history)

"""Behaviour of ValueTrainer / VGPOTrainer on tiny models: updates, LoRA, reward plumbing, errors, resume, 2 processes."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import accelerate_launch, tiny_ardm_config
from datasets import Dataset

from ardm_trl import ARDMDiscriminator, ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.trainer import VGPOConfig, VGPOTrainer, build_value_dataset, value_loss

REPO = Path(__file__).resolve().parents[1]


def mean_latent(prompts, completions, **kwargs):
    return [float(c.mean()) for c in completions]


def make_models(seed=0, **config):
    torch.manual_seed(seed)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config(**config))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.1)
    return policy, value_model


def dataset(n=8):
    return Dataset.from_list([{"prompt": f"sentence {i}", "text_input_ids": [1 + i % 5, 2, 3][: 2 + i % 2],
                               "speaker": f"spk{i % 3}"} for i in range(n)])


def vgpo_args(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, num_generations=2,
                  max_patches=3, min_patches=3, num_inference_steps=4, learning_rate=1e-3, logging_steps=1,
                  save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none")
    values.update(overrides)
    return VGPOConfig(**values)


def test_vgpo_updates_the_policy_and_logs_documented_metrics(tmp_path):
    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    value_before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
    trainer.train()
    changed = [n for n, p in policy.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 2
    # without online value updates the value model is frozen
    assert all(torch.equal(p, value_before[n]) for n, p in value_model.named_parameters())
    logs = trainer.state.log_history[0]
    for key in ("loss", "kl", "loss/kl", "loss/value_guidance", "reward", "reward_std", "rewards/mean_latent/mean",
                "rewards/mean_latent/std", "samples_per_second", "completions/mean_patches"):
        assert key in logs, key
    assert logs["completions/mean_patches"] == 3


def test_score_logged_steps_only_scores_the_first_and_logged_steps_and_trains_the_same_way(tmp_path):
    steps = []

    def counting_reward(prompts, completions, **kwargs):
        steps.append(trainer.state.global_step)
        return mean_latent(prompts, completions)

    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    args = vgpo_args(tmp_path, max_steps=6, logging_steps=3, score_logged_steps_only=True)
    trainer = VGPOTrainer(policy, value_model, counting_reward, args, train_dataset=dataset())
    trainer.train()
    # global_step while step k+1 rolls out is k: step 1 (a bad reward fails before any update), then steps 3 and 6
    assert steps == [0, 2, 5]
    assert [h["step"] for h in trainer.state.log_history if "reward" in h] == [3, 6]
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())
    # the online value update needs every step's rewards: the flag is ignored
    steps.clear()
    policy, value_model = make_models()
    args = vgpo_args(tmp_path, max_steps=3, logging_steps=3, score_logged_steps_only=True, online_value_update=True,
                     value_steps=1)
    trainer = VGPOTrainer(policy, value_model, counting_reward, args, train_dataset=dataset())
    trainer.train()
    assert steps == [0, 1, 2]


def test_online_value_update_and_adm_train_their_models(tmp_path):
    policy, value_model = make_models()
    value_before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    args = vgpo_args(tmp_path, online_value_update=True, value_steps=2, use_adm=True, discriminator_steps=2,
                     group_normalize=True, adm_real_max_patches=2, w_adm=0.5)
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset())
    disc_before = {n: p.detach().clone() for n, p in trainer.discriminator.named_parameters()}
    trainer.train()
    assert any(not torch.equal(p, value_before[n]) for n, p in value_model.named_parameters())
    assert any(not torch.equal(p, disc_before[n]) for n, p in trainer.discriminator.named_parameters())
    logs = trainer.state.log_history[0]
    for key in ("value_loss", "discriminator/loss", "discriminator/real_score", "discriminator/fake_score",
                "loss/adversarial"):
        assert key in logs, key


def test_lora_changes_only_adapters_and_declared_head(tmp_path):
    from peft import LoraConfig

    policy, value_model = make_models()
    args = vgpo_args(tmp_path, peft_modules_to_save=["head"])
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset(),
                          peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert trainer.ref_model is None  # the reference is the policy with adapters disabled, not a copy
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any("lora_" in n for n in changed)
    assert any("modules_to_save" in n for n in changed)
    assert all("lora_" in n or "modules_to_save" in n for n in changed), changed


def test_custom_reward_receives_documented_keyword_arguments(tmp_path):
    seen = {}

    def spy_reward(prompts, completions, **kwargs):
        seen.update(prompts=prompts, completions=completions, kwargs=kwargs)
        return [1.0] * len(completions)

    policy, value_model = make_models()
    args = vgpo_args(tmp_path, max_steps=1)
    VGPOTrainer(policy, value_model, spy_reward, args, train_dataset=dataset()).train()
    assert len(seen["prompts"]) == 4 and seen["prompts"][0] == seen["prompts"][1]  # 2 prompts x 2 generations
    assert all(c.shape == (3 * 2, 4) for c in seen["completions"])  # (frames, latent_dim), trimmed
    assert set(seen["kwargs"]) == {"speaker"}  # extra dataset columns; model columns and `prompt` are consumed
    assert len(seen["kwargs"]["speaker"]) == 4


@pytest.mark.parametrize(
    "reward, match",
    [
        (lambda prompts, completions, **kw: [float("nan")] * len(completions), "non-finite"),
        (lambda prompts, completions, **kw: [float("inf")] * len(completions), "non-finite"),
        (lambda prompts, completions, **kw: [1.0], "returned 1 values"),
        (lambda prompts, completions, **kw: [None] * len(completions), "returned None"),
    ],
)
def test_bad_rewards_raise_before_any_update(tmp_path, reward, match):
    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = VGPOTrainer(policy, value_model, reward, vgpo_args(tmp_path, save_strategy="steps", save_steps=1),
                          train_dataset=dataset())
    with pytest.raises(ValueError, match=match):
        trainer.train()
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())
    assert not any(p.name.startswith("checkpoint-") for p in tmp_path.iterdir())


def test_mismatched_value_model_is_rejected(tmp_path):
    policy, _ = make_models()
    other = ARDMValueModel.from_ardm(ARDMForSpeechSynthesis(tiny_ardm_config(latent_dim=6)))
    with pytest.raises(ValueError, match="value model has latent_dim=6"):
        VGPOTrainer(policy, other, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())


def test_resume_from_checkpoint_reproduces_the_next_losses(tmp_path):
    policy, value_model = make_models()
    args = vgpo_args(tmp_path / "run", max_steps=4, save_strategy="steps", save_steps=2, online_value_update=True,
                     value_steps=1, seed=3)
    full = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset())
    full.train()
    losses = [h["loss"] for h in full.state.log_history if "loss" in h]
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "value_model" / "optimizer.pt").exists()

    policy2, value_model2 = make_models(seed=1)  # different weights: everything must come from the checkpoint
    resumed = VGPOTrainer(policy2, value_model2, mean_latent, args, train_dataset=dataset(),
                          ref_model=make_models()[0])
    resumed.train(resume_from_checkpoint=str(checkpoint))
    resumed_losses = [h["loss"] for h in resumed.state.log_history if "loss" in h]  # includes the restored history
    assert len(losses) == 4 and len(resumed_losses) == 4
    assert resumed_losses[2:] == pytest.approx(losses[2:], rel=1e-4, abs=1e-7)


def test_save_model_writes_policy_value_model_and_card(tmp_path):
    policy, value_model = make_models()
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path, max_steps=1), train_dataset=dataset())
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    trainer.create_model_card()
    assert (tmp_path / "final" / "model.safetensors").exists()
    assert (tmp_path / "final" / "value_model" / "model.safetensors").exists()
    card = (tmp_path / "README.md").read_text()
    assert "VGPO" in card and "mean_latent" in card and "transformers" in card


def test_build_value_dataset_scores_model_samples():
    policy, _ = make_models()
    rows = [{"prompt": "a", "text_input_ids": [1, 2]}, {"prompt": "b", "text_input_ids": [3]}]
    data = build_value_dataset(policy, rows, mean_latent, num_generations=3, min_patches=2, max_patches=2)
    assert len(data) == 6 and data["group_id"] == [0, 0, 0, 1, 1, 1]
    latents = torch.tensor(data[0]["latents"])
    assert latents.shape == (4, 4) and data[0]["reward"] == pytest.approx(float(latents.mean()), abs=1e-6)


def test_exp_mse_value_loss_is_minimised_by_the_soft_value():
    rewards = torch.tensor([0.0, 1.0, 2.0, -1.0])
    soft_value = math.log(torch.exp(rewards).mean())
    value = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([value], lr=0.2)
    for _ in range(400):
        loss = value_loss(value.expand(4)[:, None], rewards, "exp_mse")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert value.item() == pytest.approx(soft_value, abs=1e-3)
    assert value.item() > rewards.mean().item() + 0.3  # the soft value exceeds the mean (Jensen)


def test_two_process_accelerate_launch_trains(tmp_path):
    result = accelerate_launch(REPO / "tests" / "scripts" / "vgpo_two_process.py", tmp_path, port=29517)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["num_processes"] == 2
    assert report["changed_parameters"] > 0
    assert report["ranks_agree"]


def test_non_finite_loss_raises_without_updating(tmp_path):
    policy, value_model = make_models()
    with torch.no_grad():
        value_model.head.output.bias.fill_(float("nan"))  # NaN values -> NaN value gradients
        value_model.head.output.weight.fill_(float("nan"))
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
    with pytest.raises(FloatingPointError, match="not finite"):
        trainer.train()
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())


def value_args(tmp_path, **overrides):
    from ardm_trl.trainer import ValueConfig

    values = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                  num_draws=2, logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none")
    values.update(overrides)
    return ValueConfig(**values)


def test_train_value_model_learns_from_corpus_rewards_or_from_policy_samples(tmp_path):
    from ardm_trl.trainer import build_corpus_value_dataset, train_value_model

    policy, _ = make_models()
    torch.manual_seed(1)
    rows = [{"prompt": f"s{i}", "text_input_ids": [1 + i % 4, 2], "latents": torch.randn(4 + 2 * (i % 2), 4)}
            for i in range(6)]  # fmt: skip

    def reward_but_not_for_s0(prompts, completions, **kwargs):
        return [None if p == "s0" else float(c.mean()) for p, c in zip(prompts, completions)]

    data = build_corpus_value_dataset(rows, reward_but_not_for_s0)
    assert len(data) == 5 and data[0]["reward"] == pytest.approx(float(rows[1]["latents"].mean()))
    initial = ARDMValueModel.from_ardm(policy).state_dict()
    for source, reward, extra in (("corpus", reward_but_not_for_s0, {}),
                                  ("samples", mean_latent, {"min_patches": 2, "max_patches": 2})):  # fmt: skip
        value_model = train_value_model(policy, rows, reward, value_args(tmp_path / source),
                                        source=source, num_generations=2, **extra)  # fmt: skip
        assert not value_model.training
        changed = [k for k, v in value_model.state_dict().items() if not torch.equal(v, initial[k])]
        assert any(k.startswith("head") for k in changed), source
    with pytest.raises(ValueError, match="`source` must be"):
        train_value_model(policy, rows, mean_latent, value_args(tmp_path / "x"), source="policy")
    with pytest.raises(ValueError, match="returned 1 rewards for 6 rows"):
        build_corpus_value_dataset(rows, lambda prompts, completions, **kw: [0.0])


def test_vgpo_refuses_an_untrained_value_model_unless_allowed(tmp_path):
    policy, _ = make_models()
    untrained = ARDMValueModel.from_ardm(policy)
    assert untrained.has_untrained_head()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    with pytest.raises(ValueError, match="zero initialisation"):
        VGPOTrainer(policy, untrained, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())
    args = vgpo_args(tmp_path, allow_untrained_value_model=True, online_value_update=True, value_steps=1)
    trainer = VGPOTrainer(policy, untrained, mean_latent, args, train_dataset=dataset())
    trainer.train()
    assert not untrained.has_untrained_head()  # the online value update trained it


def test_value_rewards_are_normalised_per_group_over_the_whole_dataset():
    from ardm_trl.trainer import prepare_value_rewards

    rows = [{"reward": r, "group_id": g} for r, g in [(1.0, "a"), (5.0, "b"), (3.0, "a"), (7.0, "b"), (2.0, "a")]]
    out = prepare_value_rewards(rows, "reward", "group_id", normalize=True)
    a = torch.tensor([out[i]["reward"] for i in (0, 2, 4)])
    b = torch.tensor([out[i]["reward"] for i in (1, 3)])
    assert torch.allclose(a.mean(), torch.tensor(0.0), atol=1e-6) and torch.allclose(a.std(unbiased=False),
                                                                                     torch.tensor(1.0), atol=1e-4)
    assert torch.allclose(b, torch.tensor([-1.0, 1.0]), atol=1e-4)
    hf = prepare_value_rewards(Dataset.from_list(rows), "reward", "group_id", normalize=True)
    assert torch.allclose(torch.tensor(hf["reward"]), torch.tensor([r["reward"] for r in out]))
    assert prepare_value_rewards(rows, "reward", "group_id", normalize=False) is rows
    with pytest.raises(ValueError, match="no finite `reward`"):
        prepare_value_rewards(rows + [{"reward": float("nan"), "group_id": "c"}], "reward", "group_id", True)
    with pytest.raises(ValueError, match="group_id"):
        prepare_value_rewards([{"reward": 1.0}], "reward", "group_id", True)
    with pytest.raises(ValueError, match="empty"):
        prepare_value_rewards([], "reward", "group_id", False)


def test_value_dataset_rows_keep_their_voice_prompt():
    policy, _ = make_models()
    rows = [{"prompt": "p", "text_input_ids": [1, 2], "prompt_latents": torch.randn(4, 4)}]
    data = build_value_dataset(policy, rows, mean_latent, num_generations=2, max_patches=2, num_inference_steps=2)
    assert len(data) == 2
    assert torch.allclose(torch.tensor(data[0]["prompt_latents"]), rows[0]["prompt_latents"])


def test_rewards_to_go_are_centred_per_position_and_scaled_by_the_group():
    from ardm_trl.trainer import rewards_to_go

    tokens = [[1.0, 2.0, 3.0], [0.0, 1.0], [5.0]]
    raw = rewards_to_go(tokens, [0, 0, 1], normalize=False)
    assert raw == [[6.0, 5.0, 3.0], [1.0, 1.0], [5.0]]
    normed = rewards_to_go(tokens, [0, 0, 1], normalize=True)
    scale = 2.5  # population std of the group's totals (6, 1)
    assert normed[0] == pytest.approx([2.5 / scale, 2.0 / scale, 0.0], rel=1e-5)
    assert normed[1] == pytest.approx([-2.5 / scale, -2.0 / scale], rel=1e-5)
    assert normed[2] == [0.0]  # a group of one carries no information


def test_value_trainer_learns_rewards_to_go_and_vgpo_updates_online_with_them(tmp_path):
    from ardm_trl.trainer import ValueConfig, ValueTrainer

    policy, _ = make_models()
    value_model = ARDMValueModel.from_ardm(policy)
    rows = []
    for i in range(16):
        latents = torch.randn(6, 4)
        tokens = latents.reshape(3, 8).mean(-1)  # per-patch reward: the patch's mean latent
        rows.append({"text_input_ids": [1, 2], "latents": latents, "reward": float(tokens.sum()),
                     "token_rewards": tokens.tolist(), "group_id": i // 4})
    args = ValueConfig(output_dir=str(tmp_path), max_steps=30, per_device_train_batch_size=8, learning_rate=3e-3,
                       value_target="reward_to_go", group_normalize=True, use_cpu=True, save_strategy="no",
                       report_to="none", disable_tqdm=True, logging_steps=10)
    trainer = ValueTrainer(value_model, args, train_dataset=rows)
    batch = trainer.data_collator(trainer.train_dataset[:4])
    assert batch["token_targets"].shape == (4, 3)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="token_rewards"):
        ValueTrainer(value_model, args, train_dataset=[{k: v for k, v in r.items() if k != "token_rewards"}
                                                        for r in rows])


class _IdentityDecoder:
    """Decodes latents to themselves (a stand-in codec with one latent frame per second)."""

    sampling_rate = 1
    frame_rate = 1.0

    def decode_list(self, latents):
        return [x.numpy() for x in latents]


class _PatchMeanReward:
    """The mean latent of each sample, and its per-patch decomposition."""

    __name__ = "patch_mean"

    def __call__(self, prompts, completions, **kwargs):
        return [float(c.mean()) for c in completions]

    def token_rewards(self, prompts=None, audio=None, sampling_rate=None, token_seconds=None, num_tokens=None, **kw):
        out = []
        for wav, count in zip(audio, num_tokens):
            x = torch.as_tensor(wav).flatten()
            per_frame = x.reshape(-1, wav.shape[-1]).sum(-1) / x.numel()
            patch = int(round(token_seconds))
            out.append(torch.stack([per_frame[n * patch:(n + 1) * patch].sum() for n in range(count)]).numpy())
        return out


def test_vgpo_online_value_update_on_rewards_to_go(tmp_path):
    policy, value_model = make_models()
    value_before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    args = vgpo_args(tmp_path, online_value_update=True, value_steps=2, value_target="reward_to_go",
                     group_normalize=True)
    trainer = VGPOTrainer(policy, value_model, _PatchMeanReward(), args, train_dataset=dataset(),
                          audio_decoder=_IdentityDecoder())
    rollouts = trainer._generate_and_score(list(dataset(2)))
    assert [t.numel() for t in rollouts.token_rewards] == [3] * 4  # 3 patches per rollout
    assert torch.allclose(torch.stack([t.sum() for t in rollouts.token_rewards]), rollouts.rewards, atol=1e-5)
    trainer.train()
    assert any(not torch.equal(p, value_before[n]) for n, p in value_model.named_parameters())


@pytest.mark.parametrize("overrides, message", [
    (dict(max_patches=0), "max_patches"), (dict(num_draws=0), "num_draws"), (dict(min_patches=5, max_patches=3),
    "min_patches"), (dict(reward_weights=[float("nan")]), "reward_weights"), (dict(value_steps=0), "value_steps"),
    (dict(num_inference_steps=0), "num_inference_steps"), (dict(temperature=-1.0), "temperature"),
    (dict(value_target="return"), "value_target"), (dict(value_learning_rate=0.0), "value_learning_rate"),
])
def test_vgpo_config_refuses_bad_settings(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        vgpo_args(tmp_path, **overrides)


def test_bad_peft_module_names_and_reward_weights_raise_before_training(tmp_path):
    from peft import LoraConfig

    policy, value_model = make_models()
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    args = vgpo_args(tmp_path, peft_modules_to_save=["haed"])
    with pytest.raises(ValueError, match="haed"):
        VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset(),
                    peft_config=LoraConfig(r=2, target_modules=["q_proj"]))
    from ardm_trl.trainer.ardm_utils import resolve_reward_funcs

    with pytest.raises(ValueError, match="finite"):
        resolve_reward_funcs([mean_latent], [float("inf")])
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())


def test_online_value_steps_are_per_policy_step_under_gradient_accumulation(tmp_path):
    policy, value_model = make_models()
    args = vgpo_args(tmp_path, max_steps=1, online_value_update=True, value_steps=4, gradient_accumulation_steps=2)
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=dataset())
    steps = []
    original = trainer.value_optimizer.step
    trainer.value_optimizer.step = lambda *a, **k: (steps.append(1), original(*a, **k))[1]
    trainer.train()
    assert len(steps) == 4  # value_steps per policy step, shared by its two micro-batches


def test_non_finite_value_losses_raise_with_their_cause(tmp_path):
    from ardm_trl.trainer import ValueConfig, ValueTrainer

    policy, value_model = make_models()
    rows = [{"text_input_ids": [1, 2], "latents": torch.full((4, 4), float("nan")), "reward": 1.0}] * 4
    args = ValueConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
                       save_strategy="no", report_to="none", disable_tqdm=True)
    before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    with pytest.raises(FloatingPointError, match="value loss is not finite.*latents"):
        ValueTrainer(value_model, args, train_dataset=rows).train()
    assert all(torch.equal(p, before[n]) for n, p in value_model.named_parameters())

    def enormous(prompts, completions, **kwargs):
        return [1e30] * len(completions)

    args = vgpo_args(tmp_path, online_value_update=True, value_steps=1, max_steps=1)
    with pytest.raises(FloatingPointError, match="online value loss"):
        VGPOTrainer(policy, value_model, enormous, args, train_dataset=dataset()).train()


def test_discounted_rewards_to_go():
    from ardm_trl.trainer import rewards_to_go

    assert rewards_to_go([[1.0, 2.0, 4.0]], [0], False, discount=0.5) == [[1.0 + 0.5 * 2.0 + 0.25 * 4.0, 4.0, 4.0]]
    assert rewards_to_go([[1.0, 2.0, 4.0]], [0], False, discount=0.0) == [[1.0, 2.0, 4.0]]
    with pytest.raises(ValueError, match="discount"):
        rewards_to_go([[1.0]], [0], False, discount=1.5)


def test_a_policy_passed_in_eval_mode_logs_its_first_rollouts_as_training_metrics(tmp_path):
    """`from_pretrained` returns a model in eval mode; the first step's rollout metrics (reward, lengths) are still
    training metrics, not filed under evaluation and dropped."""
    policy, value_model = make_models()
    policy.eval()
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path, max_steps=1, logging_steps=500),
                          train_dataset=dataset())  # fmt: skip
    trainer.train()
    final = trainer.state.log_history[-1]
    assert "reward" in final and "completions/mean_patches" in final and "kl" in final
    assert not any(key.startswith("eval_") for h in trainer.state.log_history for key in h)


@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_reaches_rollouts_loss_and_critic_updates(tmp_path, bf16):
    """With `bf16=True` the policy's head runs in bfloat16 while rolling out and in the loss, and the online value
    update and the discriminator run in bfloat16 too (CPU autocast); in full precision everything stays float32."""
    policy, value_model = make_models()
    discriminator = ARDMDiscriminator.from_ardm(policy)
    seen: dict[str, set] = {"policy": set(), "value": set(), "discriminator": set()}

    def recorder(name):
        return lambda module, args, output: seen[name].add(output.dtype)

    policy.head.body.input_proj.register_forward_hook(recorder("policy"))
    value_model.head.body.input_proj.register_forward_hook(recorder("value"))
    discriminator.head.body.input_proj.register_forward_hook(recorder("discriminator"))
    completion_dtypes = set()

    def reward(prompts, completions, **kwargs):  # rewards see full-precision samples
        completion_dtypes.update(c.dtype for c in completions)
        return mean_latent(prompts, completions)

    args = vgpo_args(tmp_path, max_steps=1, bf16=bf16, online_value_update=True, use_adm=True)
    trainer = VGPOTrainer(policy, value_model, reward, args, train_dataset=dataset(), discriminator=discriminator)
    trainer.train()
    assert completion_dtypes == {torch.float32}
    expected = {torch.bfloat16} if bf16 else {torch.float32}
    assert seen == {"policy": expected, "value": expected, "discriminator": expected}
    assert all(p.dtype == torch.float32 for p in policy.parameters())  # master weights stay in full precision


def test_sampling_models_without_deepspeed_are_the_trainers_own(tmp_path):
    """Without ZeRO-3 the sampling contexts and `whole_policy` hand out the trainer's models themselves (no copy); with
    LoRA the sampling reference is the policy with its adapters switched off."""
    from peft import LoraConfig

    policy, value_model = make_models()
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path), train_dataset=dataset())
    assert trainer.whole_policy() is policy
    with trainer.sampling_policy() as sampler, trainer.sampling_reference() as reference:
        assert sampler is policy and reference is trainer.ref_model and reference is not policy
    policy, value_model = make_models()
    lora = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path / "lora"), train_dataset=dataset(),
                       peft_config=LoraConfig(r=2, target_modules=["q_proj"]))  # fmt: skip
    lora_layer = next(m for n, m in lora.model.named_modules() if n.endswith("q_proj") and hasattr(m, "disable_adapters"))
    with lora.sampling_reference() as reference:
        assert reference is policy and lora_layer.disable_adapters
    with lora.sampling_policy() as sampler:
        assert sampler is policy and not lora_layer.disable_adapters


def test_lora_with_adm_builds_its_discriminator_from_the_reference_weights(tmp_path):
    """With LoRA the policy's layers hold `base_layer` / `lora_*` weights: the discriminator copies the base weights
    (the reference's), not the adapters."""
    from peft import LoraConfig

    policy, value_model = make_models()
    base = {k: v.clone() for k, v in policy.backbone.state_dict().items()}
    trainer = VGPOTrainer(policy, value_model, mean_latent, vgpo_args(tmp_path, use_adm=True, discriminator_steps=1),
                          train_dataset=dataset(), peft_config=LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    copied = trainer.discriminator.backbone.state_dict()
    assert copied.keys() == base.keys() and all(torch.equal(copied[k], base[k]) for k in base)
    trainer.train()
    assert trainer.state.global_step == 2

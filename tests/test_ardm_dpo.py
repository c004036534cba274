"""ARDM-DPO, Best-of-K and preference data on tiny models: DPO raises the reward of Gaussian AR data and ranks held-out
pairs, the loss matches its formula, LoRA trains only adapters, bad pairs raise, 2 processes train."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import accelerate_launch, tiny_ardm_config
from datasets import load_from_disk
from test_vgpo_theory import N_TOKENS, fit_gaussian_ardm, linear_reward, mean_reward

from ardm_trl import ARDMForSpeechSynthesis
from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer, dpo_loss, draw_pair_noise, example_generator
from ardm_trl.trainer.best_of_k import best_of_k
from ardm_trl.trainer.preference_data import build_preference_dataset, select_pairs

REPO = Path(__file__).resolve().parents[1]
GENERATION = dict(max_patches=3, min_patches=1, num_inference_steps=4)


def mean_latent(prompts, completions, **kwargs):
    return [float(c.mean()) for c in completions]


def make_policy(seed=0, **config):
    torch.manual_seed(seed)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config(**config))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return policy


def prompt_rows(n=8):
    return [{"prompt": f"sentence {i}", "text_input_ids": [1 + i % 5, 2, 3][: 2 + i % 2], "speaker": f"spk{i % 3}"}
            for i in range(n)]


def preference_dataset(policy, n=8, **kwargs):
    kwargs = {"num_samples": 3, "generator": torch.Generator().manual_seed(0), **GENERATION, **kwargs}
    return build_preference_dataset(policy, prompt_rows(n), mean_latent, **kwargs)


def dpo_args(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, beta=10.0,
                  logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none")
    values.update(overrides)
    return ARDMDPOConfig(**values)


# ---------------------------------------------------------------------------------------------------- theory
@pytest.fixture(scope="module")
def gaussian_ardm():
    """A tiny ARDM fitted to Gaussian AR(1) data (as in test_vgpo_theory, shorter), sampled with guidance 1."""
    return fit_gaussian_ardm(steps=300, batch_size=64, learning_rate=3e-3, draws=4)


def test_dpo_raises_the_reward_and_ranks_held_out_pairs(gaussian_ardm, tmp_path):
    model = gaussian_ardm
    generation = dict(min_patches=N_TOKENS, max_patches=N_TOKENS, lm_guidance_scale=1.0, batch_size=64)
    prompts = [{"prompt": "x", "text_input_ids": [1]}]
    train = build_preference_dataset(model, prompts * 256, linear_reward, num_samples=4,
                                     generator=torch.Generator().manual_seed(3), **generation)
    held_out = build_preference_dataset(model, prompts * 128, linear_reward, num_samples=4,
                                        generator=torch.Generator().manual_seed(4), **generation)
    base = mean_reward(model)
    before = copy.deepcopy(model.state_dict())

    policy = copy.deepcopy(model).train()
    args = dpo_args(tmp_path, max_steps=25, per_device_train_batch_size=16, per_device_eval_batch_size=64, beta=1.0,
                    learning_rate=1e-4, lm_guidance_scale=1.0, lr_scheduler_type="constant", logging_steps=10, seed=0)
    trainer = ARDMDPOTrainer(policy, ref_model=model, args=args, train_dataset=train, eval_dataset=held_out)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy = reference: d = 0
    trainer.train()
    metrics = trainer.evaluate()

    shift = mean_reward(policy.eval()) - base
    logged = [h for h in trainer.state.log_history if "eval_rewards/accuracies" in h][-1]
    print(f"reward {base:.3f} -> {base + shift:.3f}; held-out accuracy {logged['eval_rewards/accuracies']:.3f}, "
          f"margin {logged['eval_rewards/margins']:.3f}, kl {logged['eval_kl']:.4f}, loss {metrics['eval_loss']:.3f}")
    # the mean reward rises far beyond the sampling noise (std of the reward ~1.5, 1024 samples: s.e. ~0.05)
    assert shift > 0.5, shift
    # the implicit reward -beta (e_theta - e_ref) ranks unseen pairs of the base model
    assert logged["eval_rewards/accuracies"] > 0.6
    assert logged["eval_rewards/margins"] > 0 and metrics["eval_loss"] < math.log(2)
    assert logged["eval_kl"] > 0
    # the reference is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------------------- the trainer
def test_dpo_updates_the_policy_and_logs_trl_metrics(tmp_path):
    policy = make_policy()
    data = preference_dataset(policy)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path), train_dataset=data)
    trainer.train()
    changed = [n for n, p in policy.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 2
    first = trainer.state.log_history[0]
    for key in ("loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "errors/chosen", "errors/rejected"):
        assert key in first, key
    # at the first step the policy is its reference: d = 0, loss = log 2, implicit rewards 0
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert first["rewards/margins"] == 0 and first["kl"] == 0
    assert trainer.state.log_history[1]["kl"] > 0
    trainer.save_model(str(tmp_path / "final"))
    trainer.create_model_card()
    reloaded = ARDMForSpeechSynthesis.from_pretrained(tmp_path / "final")
    assert all(torch.equal(p, policy.state_dict()[n]) for n, p in reloaded.state_dict().items())
    assert "ARDM-DPO" in (tmp_path / "README.md").read_text()


def test_lora_changes_only_adapters(tmp_path):
    from peft import LoraConfig

    policy = make_policy()
    data = preference_dataset(policy)
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path), train_dataset=data,
                             peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert trainer.ref_model is None  # the reference is the policy with adapters disabled, not a copy
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed), changed
    assert trainer.state.log_history[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_loss_matches_its_formula(loss_type):
    policy_w, policy_l = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0])
    ref_w, ref_l = torch.tensor([1.5, 2.0]), torch.tensor([1.0, 1.5])
    beta = 0.7
    losses, chosen, rejected = dpo_loss(policy_w, policy_l, ref_w, ref_l, beta, loss_type)
    d = (policy_w - ref_w) - (policy_l - ref_l)  # [-1.5, 1.5]
    expected = -torch.nn.functional.logsigmoid(-beta * d) if loss_type == "sigmoid" else (-d - 1 / (2 * beta)) ** 2
    assert torch.allclose(losses, expected)
    assert torch.allclose(chosen - rejected, -beta * d)  # rewards/margins
    assert losses[0] < losses[1]  # the chosen side denoised better than the reference: lower loss


def test_chosen_and_rejected_share_draws_and_fixed_draws_do_not_depend_on_the_batch():
    schedule = make_policy().noise_schedule
    patches = torch.randn(4, 3, 8)  # 2 pairs: chosen 0, 1 then rejected 0, 1
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    draws = draw_pair_noise(schedule, patches, mask, num_draws=5)
    pair, position = draws.sample_index % 2, draws.token_index
    for a in range(len(pair)):
        for b in range(len(pair)):
            if pair[a] == pair[b] and position[a] == position[b]:
                assert torch.equal(draws.timesteps[a], draws.timesteps[b])
                assert torch.equal(draws.noise[a], draws.noise[b])
    assert not torch.equal(draws.noise[0], draws.noise[1])  # positions of one sequence differ

    alone = draw_pair_noise(schedule, patches[[1, 3]], mask[[1, 3]], 5, [example_generator(0, 7)])
    together = draw_pair_noise(schedule, patches, mask, 5, [example_generator(0, 3), example_generator(0, 7)])
    pick = together.sample_index % 2 == 1
    assert torch.equal(alone.noise, together.noise[pick]) and torch.equal(alone.timesteps, together.timesteps[pick])


def test_precomputed_reference_errors_match_the_reference(tmp_path):
    policy = make_policy()
    data = preference_dataset(policy)
    args = dpo_args(tmp_path, precompute_ref_log_probs=True)
    trainer = ARDMDPOTrainer(policy, args=args, train_dataset=data)
    assert {"ref_chosen_error", "ref_rejected_error", "example_index"} <= set(trainer.train_dataset.column_names)
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)  # same fixed draws for policy and reference
    assert "kl" not in first


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda row: row.update(rejected=[[0.0] * 6] * 4), "same latent size"),
        (lambda row: row.update(chosen=[[0.0] * 6] * 4, rejected=[[0.0] * 6] * 4), "latent_dim=4"),
        (lambda row: row.update(chosen_text_input_ids=[1, 2], rejected_text_input_ids=[3, 2]), "same prompt"),
        (lambda row: row.update(chosen_prompt="a", rejected_prompt="b"), "same prompt"),
        (lambda row: row.pop("rejected"), "no `rejected` column"),
        (lambda row: row.update(chosen=[0.0, 1.0]), "shape \\(frames, latent_dim\\)"),
        (lambda row: row.update(rejected=row["chosen"]), "the same sample"),
    ],
)
def test_bad_pairs_raise_a_clear_error(tmp_path, change, match):
    policy = make_policy()
    rows = preference_dataset(policy, n=4).to_list()
    change(rows[1])
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path, max_steps=1), train_dataset=rows)
    with pytest.raises(ValueError, match=match):
        trainer.compute_loss(trainer.model, rows)


def test_per_side_prompts_that_agree_are_accepted(tmp_path):
    policy = make_policy()
    rows = preference_dataset(policy, n=4).to_list()
    for row in rows:
        ids = row.pop("text_input_ids")
        row.update(chosen_text_input_ids=ids, rejected_text_input_ids=list(ids))
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path, max_steps=1), train_dataset=rows)
    assert trainer.compute_loss(trainer.model, rows).item() == pytest.approx(math.log(2), abs=1e-5)


def test_an_empty_sample_is_a_valid_side(tmp_path):
    policy = make_policy()
    rows = preference_dataset(policy, n=4).to_list()
    rows[0]["rejected"] = []  # the model stopped at once: no tokens, no denoising error on that side
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path, max_steps=1), train_dataset=rows)
    loss = trainer.compute_loss(trainer.model, rows)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)
    loss.backward()


# ------------------------------------------------------------------------------------- Best-of-K and the data
def test_best_of_k_returns_k_scores_per_prompt_and_keeps_the_max():
    policy = make_policy().train()
    out = best_of_k(policy, prompt_rows(5), mean_latent, num_samples=6, batch_size=2, return_all_samples=True,
                    generator=torch.Generator().manual_seed(0), **GENERATION)
    assert out.scores.shape == (5, 6) and out.scores_per_func.shape == (5, 6, 1)
    assert torch.equal(out.best_scores, out.scores.max(dim=1).values)
    assert out.prompts == [row["prompt"] for row in prompt_rows(5)]
    for p in range(5):
        assert len(out.samples[p]) == 6
        assert torch.equal(out.latents[p], out.samples[p][int(out.best_index[p])])
        assert float(out.latents[p].mean()) == pytest.approx(float(out.best_scores[p]), abs=1e-6)
        assert out.scores[p].unique().numel() > 1  # K different samples
    assert policy.training  # sampled in eval mode, mode restored


def test_preference_pairs_are_ordered_by_more_than_the_margin(tmp_path):
    policy = make_policy()
    for strategy, margin in (("best_vs_worst", 0.0), ("all_pairs", 0.05)):
        data = preference_dataset(policy, n=6, num_samples=4, pair_strategy=strategy, margin=margin)
        assert all(c > r + margin for c, r in zip(data["chosen_score"], data["rejected_score"]))
        for row in data.select(range(3)):
            assert float(torch.tensor(row["chosen"]).mean()) == pytest.approx(row["chosen_score"], abs=1e-5)
            assert float(torch.tensor(row["rejected"]).mean()) == pytest.approx(row["rejected_score"], abs=1e-5)
        per_group = torch.bincount(torch.tensor(data["group_id"]))
        assert per_group.max() <= (1 if strategy == "best_vs_worst" else 6)
        assert {"prompt", "text_input_ids", "speaker"} <= set(data.column_names)
    data.save_to_disk(str(tmp_path / "pairs"))
    assert load_from_disk(str(tmp_path / "pairs")).to_list() == data.to_list()

    scores = torch.tensor([3.0, 1.0, 2.0, 2.0])
    assert select_pairs(scores, "best_vs_worst") == [(0, 1)]
    assert select_pairs(scores, "all_pairs", margin=0.5) == [(0, 1), (0, 2), (0, 3), (2, 1), (3, 1)]
    assert select_pairs(torch.ones(3), "all_pairs") == [] and select_pairs(torch.ones(3), "best_vs_worst") == []
    with pytest.raises(ValueError, match="pair_strategy"):
        select_pairs(scores, "random")


def test_two_process_accelerate_launch_trains(tmp_path):
    result = accelerate_launch(REPO / "tests" / "scripts" / "ardm_dpo_two_process.py", tmp_path, port=29531)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["num_processes"] == 2
    assert report["changed_parameters"] > 0
    assert report["ranks_agree"]


def test_a_diverging_run_raises_instead_of_logging_healthy_numbers(tmp_path):
    policy = make_policy()
    data = preference_dataset(policy)
    trainer = ARDMDPOTrainer(policy, args=dpo_args(tmp_path, learning_rate=1e12, max_steps=6, max_grad_norm=0.0),
                             train_dataset=data)
    with pytest.raises(FloatingPointError, match="ARDM-DPO loss is not finite.*learning rate"):
        trainer.train()

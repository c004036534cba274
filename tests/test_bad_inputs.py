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


# ---------------------------------------------------------------- configuration: refused at construction, by name
def _config(name, **overrides):
    from ardm_trl.trainer import DiffROConfig, TokenRewardTrainingConfig, ValueConfig

    classes = {"vgpo": VGPOConfig, "dpo": ARDMDPOConfig, "diffro": DiffROConfig, "value": ValueConfig,
               "token_reward": TokenRewardTrainingConfig}  # fmt: skip
    return classes[name](output_dir="unused", use_cpu=True, report_to="none", **overrides)


BAD_CONFIGS = [
    ("diffro", dict(temperature=0.0), "temperature"),
    ("diffro", dict(gumbel_temperature=-1.0), "gumbel_temperature"),
    ("diffro", dict(top_p=0.0), "top_p"),
    ("diffro", dict(top_p=1.5), "top_p"),
    ("diffro", dict(top_k=0), "top_k"),
    ("diffro", dict(beta=-0.1), "beta"),
    ("diffro", dict(max_new_tokens=0), "max_new_tokens"),
    ("diffro", dict(max_new_tokens=4, min_new_tokens=5), "min_new_tokens"),
    ("diffro", dict(min_new_tokens=-1), "min_new_tokens"),
    ("dpo", dict(loss_type="hinge"), "loss_type"),
    ("dpo", dict(beta=0.0), "beta"),
    ("dpo", dict(num_draws=0), "num_draws"),
    ("dpo", dict(lm_guidance_scale=-1.0), "lm_guidance_scale"),
    ("value", dict(loss_type="l1"), "loss_type"),
    ("value", dict(value_target="return"), "value_target"),
    ("value", dict(value_discount=1.5), "value_discount"),
    ("value", dict(num_draws=0), "num_draws"),
    ("token_reward", dict(task_weights={"ctc": -1.0}), "task_weights"),
    ("vgpo", dict(num_generations=0), "num_generations"),
    ("vgpo", dict(num_generations=1, group_normalize=True), "group_normalize"),
    ("vgpo", dict(w_kl=-1.0), "w_kl"),
    ("vgpo", dict(w_adm=-1.0), "w_adm"),
    ("vgpo", dict(value_discount=-0.1), "value_discount"),
    ("vgpo", dict(value_loss_type="huber"), "value_loss_type"),
    ("vgpo", dict(discriminator_learning_rate=0.0), "discriminator_learning_rate"),
    ("vgpo", dict(lm_guidance_scale=-0.5), "lm_guidance_scale"),
]


@pytest.mark.parametrize("name, overrides, match", BAD_CONFIGS,
                         ids=[f"{n}-{next(iter(o))}" for n, o, _ in BAD_CONFIGS])  # fmt: skip
def test_bad_settings_are_refused_at_construction_naming_the_argument(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        _config(name, **overrides)


# ---------------------------------------------------------------- critics that read another model's states
INCOMPATIBLE = [dict(latent_dim=6), dict(patch_size=3), dict(text_vocab_size=20),
                dict(scheduler_config={"beta_schedule": "scaled_linear"})]  # fmt: skip


@pytest.mark.parametrize("role", ["value model", "discriminator"])
@pytest.mark.parametrize("overrides", INCOMPATIBLE, ids=lambda o: next(iter(o)))
def test_critics_of_another_shape_schedule_or_vocabulary_are_refused(tmp_path, role, overrides):
    from ardm_trl import ARDMDiscriminator

    policy, value_model = models()
    before = snapshot(policy)
    other = ARDMForSpeechSynthesis(tiny_ardm_config(**overrides))
    kwargs = {"value_model": value_model, "discriminator": None}
    if role == "value model":
        kwargs["value_model"] = ARDMValueModel.from_ardm(other)
        with torch.no_grad():
            kwargs["value_model"].head.output.weight.normal_(0, 0.1)
        config = args(tmp_path)
    else:
        kwargs["discriminator"] = ARDMDiscriminator.from_ardm(other)
        config = args(tmp_path, use_adm=True)
    with pytest.raises(ValueError, match=f"{role} has {next(iter(overrides))}="):
        VGPOTrainer(policy, kwargs["value_model"], mean_latent, config, train_dataset=rows(),
                    discriminator=kwargs["discriminator"])  # fmt: skip
    assert unchanged(policy, before)


def test_a_discriminator_without_use_adm_is_refused(tmp_path):
    from ardm_trl import ARDMDiscriminator

    policy, value_model = models()
    with pytest.raises(ValueError, match="use_adm=False"):
        VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), train_dataset=rows(),
                    discriminator=ARDMDiscriminator.from_ardm(policy))  # fmt: skip


# ---------------------------------------------------------------- processing_class
def _trainer_with(kind, tmp_path, processing_class, train_rows=None):
    from test_diffro import make_args, prefer_token_3, prompts_dataset, tiny_policy

    from ardm_trl.trainer import DiffROTrainer

    if kind == "diffro":
        policy = tiny_policy()
        data = train_rows or prompts_dataset()
        return policy, lambda: DiffROTrainer(policy, prefer_token_3, make_args(tmp_path, beta=0.0), train_dataset=data,
                                             processing_class=processing_class)  # fmt: skip
    policy, value_model = models()
    if kind == "vgpo":
        return policy, lambda: VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), train_dataset=rows(),
                                           processing_class=processing_class)  # fmt: skip
    data = build_preference_dataset(policy, rows(4), mean_latent, num_samples=2, min_patches=2, max_patches=3,
                                    num_inference_steps=4, generator=torch.Generator().manual_seed(0))  # fmt: skip
    config = ARDMDPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
                           report_to="none", save_strategy="no")  # fmt: skip
    return policy, lambda: ARDMDPOTrainer(policy, args=config, train_dataset=data, processing_class=processing_class)


@pytest.mark.parametrize("kind", ["vgpo", "dpo", "diffro"])
@pytest.mark.parametrize("processing_class", [42, "tokenizer.json"], ids=["int", "path_string"])
def test_a_processing_class_that_cannot_tokenise_is_refused_at_construction(tmp_path, kind, processing_class):
    policy, build = _trainer_with(kind, tmp_path, processing_class)
    before = snapshot(policy)
    with pytest.raises(TypeError, match="processing_class"):
        build()
    assert unchanged(policy, before)


def test_a_plain_function_as_processing_class_tokenises_and_survives_checkpoint_saves(tmp_path):
    """Documented behaviour: a function `text -> ids` is used for rows without ids, and saves write no tokenizer."""
    policy, value_model = models()
    text_rows = [{"prompt": "abc"[: 1 + i % 3]} for i in range(8)]
    config = args(tmp_path, save_strategy="steps", save_steps=1)
    trainer = VGPOTrainer(policy, value_model, mean_latent, config, train_dataset=text_rows,
                          processing_class=lambda text: [1 + ord(c) % 5 for c in text])  # fmt: skip
    trainer.train()
    assert (tmp_path / "checkpoint-2" / "checkpoint_complete.json").exists()


# ---------------------------------------------------------------- DiffRO rewards that cannot train the policy
def _constant(soft_tokens, token_mask, **kw):
    return torch.ones(soft_tokens.shape[0])


def _detached(soft_tokens, token_mask, **kw):
    return soft_tokens[..., 3].detach().mean(-1)


def _from_ids_only(soft_tokens, token_mask, speech_ids, **kw):
    return (speech_ids == 3).float().mean(-1)


def _as_list(soft_tokens, token_mask, **kw):
    return soft_tokens[..., 3].mean(-1).tolist()


def _column(soft_tokens, token_mask, **kw):
    return soft_tokens[..., 3].mean(-1, keepdim=True)


def _overflow(soft_tokens, token_mask, **kw):
    return soft_tokens[..., 3].mean(-1) * float("inf")


DIFFRO_REWARDS = [(_constant, "no gradient"), (_detached, "no gradient"), (_from_ids_only, "no gradient"),
                  (_as_list, "returned list"), (_column, r"shape \(8, 1\)"), (_overflow, "non-finite")]  # fmt: skip


@pytest.mark.parametrize("reward, match", DIFFRO_REWARDS, ids=[r.__name__.strip("_") for r, _ in DIFFRO_REWARDS])
def test_diffro_rewards_without_a_usable_gradient_are_named_before_any_update(tmp_path, reward, match):
    from test_diffro import make_args, prompts_dataset, tiny_policy

    from ardm_trl.trainer import DiffROTrainer

    policy = tiny_policy()
    before = snapshot(policy)
    trainer = DiffROTrainer(policy, reward, make_args(tmp_path, beta=0.01), train_dataset=prompts_dataset())
    with pytest.raises(ValueError, match=match):
        trainer.train()
    assert unchanged(policy, before)


# ---------------------------------------------------------------- finite guards of the other trainers
def test_diffro_and_token_reward_training_refuse_a_non_finite_loss_before_the_update(tmp_path):
    from test_diffro import make_args, prefer_token_3, prompts_dataset, tiny_policy
    from test_token_reward import synthetic_rows, tiny_config

    from ardm_trl import TokenRewardModel
    from ardm_trl.trainer import DiffROTrainer, TokenRewardTrainer, TokenRewardTrainingConfig

    policy = tiny_policy()
    with torch.no_grad():
        next(p for n, p in policy.named_parameters() if "lm_head" in n or "embed" in n).fill_(float("nan"))
    before = snapshot(policy)
    trainer = DiffROTrainer(policy, prefer_token_3, make_args(tmp_path / "d", beta=0.01), train_dataset=prompts_dataset())
    with pytest.raises((FloatingPointError, ValueError), match="not finite|non-finite"):
        trainer.train()
    assert all(torch.equal(v, before[k]) or torch.isnan(v).all() for k, v in policy.state_dict().items())

    model = TokenRewardModel(tiny_config())
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    before = snapshot(model)
    config = TokenRewardTrainingConfig(output_dir=str(tmp_path / "t"), per_device_train_batch_size=8, max_steps=1,
                                       report_to="none", use_cpu=True, save_strategy="no")  # fmt: skip
    trainer = TokenRewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(synthetic_rows(16, 0)))
    with pytest.raises(FloatingPointError, match="loss is not finite"):
        trainer.train()
    assert all(torch.equal(v, before[k]) or torch.isnan(v).all() for k, v in model.state_dict().items())


def test_lm_guidance_on_a_model_trained_without_condition_dropout_warns(caplog):
    import logging

    torch.manual_seed(0)
    policy = ARDMForSpeechSynthesis(tiny_ardm_config(cfg_dropout_prob=0.0))
    with caplog.at_level(logging.WARNING):
        policy.generate(torch.tensor([[1, 2]]), max_patches=1, lm_guidance_scale=2.0)
    assert "cfg_dropout_prob=0" in caplog.text


# ---------------------------------------------------------------- token reward models of another vocabulary
def test_a_token_reward_model_of_another_codebook_or_text_ids_outside_its_units_are_named(tmp_path):
    from test_diffro import CODEBOOK, make_args, prompts_dataset, tiny_policy
    from test_token_reward import NUM_UNITS, tiny_config

    from ardm_trl import TokenRewardModel
    from ardm_trl.models.token_reward import CTCReward
    from ardm_trl.trainer import DiffROTrainer

    other = TokenRewardModel(tiny_config())  # its own codebook
    assert other.config.codebook_size != CODEBOOK
    policy = tiny_policy()
    before = snapshot(policy)
    with pytest.raises(ValueError, match=f"reads {other.config.codebook_size} speech codes but the policy has {CODEBOOK}"):
        DiffROTrainer(policy, CTCReward(other), make_args(tmp_path), train_dataset=prompts_dataset())
    assert unchanged(policy, before)
    with pytest.raises(ValueError, match=r"outside the reward model's CTC units \[0, " + str(NUM_UNITS)):
        other.ctc_log_likelihood(torch.tensor([[0, NUM_UNITS + 3]]), input_ids=torch.tensor([[1, 2, 3]]))


def test_a_diverged_generation_is_named_as_such_not_as_the_reward_functions_fault(tmp_path):
    policy, value_model = models()
    with torch.no_grad():
        policy.head.output.bias.fill_(float("nan"))  # every sampled patch becomes NaN
    before = snapshot(policy)
    trainer = VGPOTrainer(policy, value_model, mean_latent, args(tmp_path), train_dataset=rows())
    with pytest.raises(FloatingPointError, match="generation diverged at its first patch"):
        trainer.train()
    assert all(torch.equal(v, before[k]) or torch.isnan(v).any() for k, v in policy.state_dict().items())

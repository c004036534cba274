"""Tests of the ARDM model family (policy, value model, discriminator)."""

import pytest
import torch
from conftest import tiny_ardm_config
from transformers import AutoConfig, AutoModel

from ardm_trl import ARDMConfig, ARDMDiscriminator, ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.models.ardm import NoiseSchedule, pad_to_patch_multiple


def _batch(config, batch=3, frames=8):
    text = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 9, 10, 0, 0]])[:batch]
    latents = torch.randn(batch, frames, config.latent_dim)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mask[1, 6:] = False
    prompt = torch.randn(batch, 4, config.latent_dim)
    prompt_mask = torch.ones(batch, 4, dtype=torch.bool)
    prompt_mask[2, :2] = False  # a shorter prompt
    return dict(text_input_ids=text, latents=latents, latents_mask=mask, prompt_latents=prompt,
                prompt_latents_mask=prompt_mask)


def _perturb(model, scale=0.05):
    """Move a fresh model off its zero-initialised layers so outputs depend on every input."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def test_overfitting_a_small_batch_drives_the_loss_down(tiny_config):
    model = ARDMForSpeechSynthesis(tiny_config)
    batch = _batch(tiny_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        out = model(**batch, labels=batch["latents"])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_forward_returns_loss_terms_and_stop_logits(tiny_config):
    model = ARDMForSpeechSynthesis(tiny_config)
    batch = _batch(tiny_config)
    out = model(**batch, labels=batch["latents"])
    assert out.loss is not None and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, out.diffusion_loss + tiny_config.stop_loss_weight * out.stop_loss)
    assert out.stop_logits.shape == (3, 4 + 1)
    assert out.hidden_states.shape == (3, 4, 32)
    assert model(**batch).loss is None  # no labels, no loss


def test_sampler_shapes_masks_and_stopping(tiny_config):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    batch = _batch(tiny_config)
    with torch.no_grad():
        model.stop_head.bias.fill_(-20.0)  # never stops: runs to max_patches
    out = model.generate(batch["text_input_ids"], prompt_latents=batch["prompt_latents"],
                         prompt_latents_mask=batch["prompt_latents_mask"], max_patches=5)
    assert out.latents.shape == (3, 5 * tiny_config.patch_size, tiny_config.latent_dim)
    assert out.num_patches.tolist() == [5, 5, 5] and not out.stopped.any()
    assert out.latents_mask.all() and torch.isfinite(out.latents).all()

    with torch.no_grad():
        model.stop_head.bias.fill_(20.0)  # always stops: ends as soon as allowed
        model.stop_head.weight.zero_()
    out = model.generate(batch["text_input_ids"], max_patches=5, min_patches=2)
    assert out.num_patches.tolist() == [2, 2, 2] and out.stopped.all()
    assert out.latents.shape == (3, 4, tiny_config.latent_dim)


def test_per_sample_stopping_masks_the_rest(tiny_config):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    with torch.no_grad():  # stop depends on the text: make sample 0 stop, sample 1 run on
        model.stop_head.weight.zero_()
        model.stop_head.bias.zero_()
    calls = {"n": 0}

    def stop_logits(hidden):
        calls["n"] += 1
        return torch.tensor([10.0, -10.0]) if calls["n"] > 2 else torch.tensor([-10.0, -10.0])

    model.stop_logits = stop_logits
    out = model.generate(text, max_patches=4)
    assert out.num_patches.tolist() == [2, 4]
    assert out.stopped.tolist() == [True, False]
    assert out.latents_mask[0].sum() == 2 * tiny_config.patch_size
    assert (out.latents[0, 2 * tiny_config.patch_size:] == 0).all()


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_kv_cache_matches_full_recompute(tiny_config, guidance):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    batch = _batch(tiny_config)
    kwargs = dict(prompt_latents=batch["prompt_latents"], prompt_latents_mask=batch["prompt_latents_mask"],
                  max_patches=6, min_patches=6, lm_guidance_scale=guidance)
    cached = model.generate(batch["text_input_ids"], generator=torch.Generator().manual_seed(3), **kwargs)
    full = model.generate(batch["text_input_ids"], generator=torch.Generator().manual_seed(3), use_cache=False,
                          **kwargs)
    torch.testing.assert_close(cached.latents, full.latents, atol=1e-4, rtol=1e-4)


def test_teacher_forced_states_match_the_sampler(tiny_config):
    """`compute_lm_states` on a generated trajectory reproduces the sampler's per-patch states (same LM)."""
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    out = model.generate(text, max_patches=4, min_patches=4, lm_guidance_scale=1.0)
    with torch.no_grad():
        states = model.compute_lm_states(text, out.latents, latents_mask=out.latents_mask, unconditional=True)
        stop = model.stop_logits(states.stop_hidden)
    assert states.hidden.shape == (2, 4, 32) and states.unconditional_hidden.shape == (2, 4, 32)
    assert stop.shape == (2, 5)
    torch.testing.assert_close(states.previous_patches[:, 1:], states.patches[:, :-1])


def test_guidance_weight_one_is_exactly_the_conditional_model(tiny_config):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    batch = _batch(tiny_config)
    with torch.no_grad():
        states = model.compute_lm_states(batch["text_input_ids"], batch["latents"], unconditional=True)
        noisy = torch.randn_like(states.patches)
        t = torch.randint(0, 1000, noisy.shape[:2])
        conditional = model.head_prediction(states.hidden, states.previous_patches, noisy, t)
        guided_1 = model.guided_prediction(states.hidden, states.unconditional_hidden, states.previous_patches,
                                           noisy, t, 1.0)
        guided_2 = model.guided_prediction(states.hidden, states.unconditional_hidden, states.previous_patches,
                                           noisy, t, 2.0)
        unconditional = model.head_prediction(states.unconditional_hidden, states.previous_patches, noisy, t)
    assert torch.equal(guided_1, conditional)
    torch.testing.assert_close(guided_2, 2 * conditional - unconditional, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(conditional, unconditional)  # the text matters


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_score_conversions_are_consistent(prediction_type):
    schedule = NoiseSchedule({"_class_name": "DDPMScheduler", "num_train_timesteps": 1000,
                              "prediction_type": prediction_type, "beta_schedule": "linear"})
    clean, noise = torch.randn(64, 6, dtype=torch.float64), torch.randn(64, 6, dtype=torch.float64)
    t = torch.randint(0, 1000, (64,))
    noisy = schedule.add_noise(clean, noise, t)
    target = schedule.target(clean, noise, t)
    # the exact prediction implies the exact noise and the score -eps / sigma
    torch.testing.assert_close(schedule.to_epsilon(target, noisy, t), noise)
    _, sigma = schedule.alpha_sigma(t, noisy)
    torch.testing.assert_close(schedule.to_score(target, noisy, t), -noise / sigma)
    torch.testing.assert_close(schedule.from_score(schedule.to_score(target, noisy, t), noisy, t), target)
    delta = torch.randn_like(noisy)
    shifted = schedule.add_score(target, noisy, t, delta)
    torch.testing.assert_close(schedule.to_score(shifted, noisy, t), -noise / sigma + delta)


def test_fresh_value_model_is_zero_and_its_gradient_needs_no_second_lm_pass(tiny_config):
    config = ARDMConfig(**{**tiny_config.to_dict(), "ctc_loss_weight": 1.0, "guided_attention_weight": 1.0})
    policy = _perturb(ARDMForSpeechSynthesis(config))
    value_model = ARDMValueModel.from_ardm(policy)
    assert value_model.config.model_type == "ardm_value"
    # the policy's pretraining-only losses do not travel to the value model's config
    assert value_model.config.ctc_loss_weight == 0.0 and value_model.config.guided_attention_weight == 0.0
    torch.testing.assert_close(value_model.backbone.lm.layers[0].self_attn.q_proj.weight,
                               policy.backbone.lm.layers[0].self_attn.q_proj.weight)
    batch = _batch(tiny_config)
    rewards = torch.tensor([1.0, -1.0, 0.5])
    out = value_model(batch["text_input_ids"], batch["latents"], latents_mask=batch["latents_mask"], rewards=rewards)
    assert torch.equal(out.value, torch.zeros_like(out.value))

    optimizer = torch.optim.SGD(value_model.parameters(), lr=0.1)
    out.loss.backward()
    optimizer.step()

    lm_calls = []
    value_model.backbone.lm.register_forward_hook(lambda *args: lm_calls.append(1))
    states = value_model.compute_lm_states(batch["text_input_ids"], batch["latents"])
    assert len(lm_calls) == 1
    noisy = torch.randn_like(states.patches)
    t = torch.full(noisy.shape[:2], 500)
    values, grad = value_model.value_and_grad(states.hidden, states.previous_patches, noisy, t)
    assert len(lm_calls) == 1  # the gradient w.r.t. x_n^t flows through the head only
    assert values.shape == noisy.shape[:2] and grad.shape == noisy.shape
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_save_and_auto_reload_reproduce_outputs_exactly(tiny_config, tmp_path):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    model.save_pretrained(tmp_path / "ardm")
    assert (tmp_path / "ardm" / "model.safetensors").exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "ardm"), ARDMConfig)
    reloaded = AutoModel.from_pretrained(tmp_path / "ardm").eval()
    assert isinstance(reloaded, ARDMForSpeechSynthesis)
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    a = model.generate(text, generator=torch.Generator().manual_seed(1), max_patches=4, min_patches=4)
    b = reloaded.generate(text, generator=torch.Generator().manual_seed(1), max_patches=4, min_patches=4)
    assert torch.equal(a.latents, b.latents)

    for cls in (ARDMValueModel, ARDMDiscriminator):
        body = _perturb(cls.from_ardm(model))
        body.save_pretrained(tmp_path / cls.__name__)
        again = AutoModel.from_pretrained(tmp_path / cls.__name__)
        assert type(again) is cls
        states = body.compute_lm_states(text, a.latents)
        noisy, t = torch.randn_like(states.patches), torch.full(states.patches.shape[:2], 10)
        torch.testing.assert_close(
            body.value(states.hidden, states.previous_patches, noisy, t),
            again.value(states.hidden, states.previous_patches, noisy, t), atol=0, rtol=0)


def test_lora_on_the_backbone_trains_only_adapters(tiny_config):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(ARDMForSpeechSynthesis(tiny_config),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = _batch(tiny_config)
    for _ in range(2):
        loss = model(**batch, labels=batch["latents"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_plain_transformers_trainer_pretrains_the_model(tiny_config, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from ardm_trl.data.collators import ARDMDataCollator

    rows = [{"text_input_ids": [1, 2, 3][: 1 + i % 3], "latents": torch.randn(2 * (2 + i % 3), 4).tolist()}
            for i in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, use_cpu=True,
                             report_to=[], learning_rate=1e-3, save_strategy="no", logging_steps=1)
    model = ARDMForSpeechSynthesis(tiny_config)
    before = model.head.output.weight.detach().clone()
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=ARDMDataCollator(patch_size=tiny_config.patch_size))
    result = trainer.train()
    assert result.training_loss > 0
    assert not torch.equal(before, model.head.output.weight)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tiny_ardm_config(scheduler_config={"prediction_type": "flow"}), "Unknown prediction type"),
        (lambda: tiny_ardm_config(lm_guidance_scale=-1.0), "lm_guidance_scale"),
        (lambda: tiny_ardm_config(patch_size=0), "patch_size"),
    ],
)
def test_bad_configurations_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_raise_with_a_fix(tiny_config):
    model = ARDMForSpeechSynthesis(tiny_config)
    text = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="Latent size mismatch"):
        model(text, labels=torch.randn(1, 4, tiny_config.latent_dim + 1))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        model(text, labels=torch.randn(1, 5, tiny_config.latent_dim))
    with pytest.raises(ValueError, match="lm_guidance_scale"):
        model.generate(text, lm_guidance_scale=-0.5)
    padded, mask = pad_to_patch_multiple(torch.randn(1, 5, tiny_config.latent_dim), None, tiny_config.patch_size)
    assert padded.shape[1] == 6 and mask.tolist() == [[True] * 5 + [False]]
    assert model(text, labels=padded, latents_mask=mask).loss is not None


def test_a_diverging_sample_is_ended_not_passed_on_as_nan(tiny_config):
    model = _perturb(ARDMForSpeechSynthesis(tiny_config)).eval()
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    original = model.head_prediction
    calls = {"n": 0}

    def exploding(hidden, previous, noisy, timesteps):  # sample 1 blows up while its 3rd patch is denoised
        calls["n"] += 1
        out = original(hidden, previous, noisy, timesteps)
        if 2 * 16 < calls["n"] <= 3 * 16:
            out = out.clone()
            out[1] = float("nan")
        return out

    model.head_prediction = exploding
    out = model.generate(text, max_patches=5, min_patches=5, lm_guidance_scale=1.0)
    assert torch.isfinite(out.latents).all()
    assert out.num_patches.tolist() == [5, 2]
    assert out.latents_mask[1].sum() == 2 * tiny_config.patch_size


def test_tempered_step_scales_only_the_added_noise(tiny_config):
    from diffusers import DDIMScheduler

    from ardm_trl.models.ardm.diffusion import build_scheduler, tempered_step

    scheduler = build_scheduler(tiny_config.scheduler_config)
    scheduler.set_timesteps(8)
    rows = 20000
    sample = torch.randn(1, 6).expand(rows, -1)  # one state, many noise draws
    prediction = torch.randn(1, 6).expand(rows, -1)
    for t in scheduler.timesteps:
        steps = {T: tempered_step(scheduler, prediction, t, sample, T, torch.Generator().manual_seed(0))
                 for T in (1.0, 0.5, 0.0)}  # fmt: skip
        assert torch.equal(steps[1.0], scheduler.step(prediction, t, sample,
                                                      generator=torch.Generator().manual_seed(0)).prev_sample)
        # T = 0 is the posterior mean: the average of many T = 1 draws
        spread = (steps[1.0] - steps[0.0]).std(0).max().item()
        torch.testing.assert_close(steps[1.0].mean(0), steps[0.0][0], atol=5 * spread / rows**0.5 + 1e-6, rtol=0)
        torch.testing.assert_close(steps[0.5], (steps[1.0] + steps[0.0]) / 2, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="DDPMScheduler"):
        ddim = DDIMScheduler.from_config(scheduler.config)
        ddim.set_timesteps(8)
        tempered_step(ddim, prediction, ddim.timesteps[0], sample, 0.5)


def test_lower_temperature_narrows_the_samples():
    # a small perturbation of a fresh v-prediction model keeps its samples inside the sampler's clipping range
    tiny_config = tiny_ardm_config(scheduler_config={"prediction_type": "v_prediction"})
    model = _perturb(ARDMForSpeechSynthesis(tiny_config), scale=0.01).eval()
    text = torch.tensor([[1, 2, 3, 4]]).expand(256, -1)

    def first_patches(**kwargs):
        out = model.generate(text, max_patches=1, min_patches=1, generator=torch.Generator().manual_seed(0), **kwargs)
        return out.latents[:, : tiny_config.patch_size].flatten(1)

    default, one, cold = first_patches(), first_patches(temperature=1.0), first_patches(temperature=0.3)
    assert torch.equal(default, one)  # temperature 1 is the model's own sampler
    assert (cold.var(0) < 0.5 * one.var(0)).all(), (cold.var(0), one.var(0))


def test_the_head_projects_each_tokens_state_once_across_its_draws(tiny_config):
    """A token's LM state and previous patch, broadcast over its K noise draws (as `NoiseDraws.gather` gives them),
    go through `condition_proj` / `history_proj` once per token, with LM guidance too; predictions and gradients equal
    those of materialised copies."""
    from ardm_trl.models.ardm import draw_noisy_tokens

    model = ARDMForSpeechSynthesis(tiny_config)
    latents = torch.randn(2, 8, tiny_config.latent_dim)
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    patches, mask = model.patchify(latents, torch.ones(2, 8, dtype=torch.bool))
    draws = draw_noisy_tokens(model.noise_schedule, patches, mask, num_draws=4)
    rows = []
    model.head.body.condition_proj.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[:-1].numel()))
    out = model(text_input_ids=text, latents=latents, draws=draws, lm_guidance_scale=2.0).head_prediction
    tokens = draws.timesteps.shape[0]
    assert rows == [2 * tokens]  # conditional and unconditional branch, once per token (not per draw)

    states = model.compute_lm_states(text, latents, unconditional=True)
    hidden, previous = draws.gather(states.hidden), draws.gather(states.previous_patches)
    unconditional = draws.gather(states.unconditional_hidden)
    broadcast = model.guided_prediction(hidden, unconditional, previous, draws.noisy, draws.timesteps, 2.0)
    copies = model.guided_prediction(hidden.contiguous(), unconditional.contiguous(), previous.contiguous(),
                                     draws.noisy, draws.timesteps, 2.0)  # fmt: skip
    torch.testing.assert_close(broadcast, copies)
    torch.testing.assert_close(out, copies)
    grads = [torch.autograd.grad(p.square().sum(), model.head.body.condition_proj.weight)[0] for p in (broadcast, copies)]
    torch.testing.assert_close(grads[0], grads[1])

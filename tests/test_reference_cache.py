"""ADM's reference samples drawn once per prompt and reused (the reference is frozen): the cache's rule, that every
"real" sample is a draw of the reference for the same prompt, and how many reference draws a run makes."""

import pytest
import torch
from test_vgpo import dataset, make_models, mean_latent, vgpo_args

from ardm_trl.trainer import VGPOTrainer
from ardm_trl.trainer import vgpo_trainer as vgpo_module
from ardm_trl.trainer.reference_cache import ReferenceSampleCache


def test_the_cache_fills_each_prompt_to_its_quota_then_reuses_in_turn_within_its_bound():
    cache = ReferenceSampleCache(samples_per_prompt=2, max_samples=4)
    keys = ["a", "a", "a", "b"]
    assert cache.rows_to_draw(keys) == [0, 1, 3]  # 'a' needs two, 'b' one (its quota is 2, one row asks)
    fresh = {0: torch.full((1, 2), 0.0), 1: torch.full((1, 2), 1.0), 3: torch.full((1, 2), 3.0)}
    out = cache.fill(keys, fresh)
    assert [float(x[0, 0]) for x in out] == [0.0, 1.0, 0.0, 3.0] and len(cache) == 3
    assert cache.rows_to_draw(["a", "a", "b"]) == [2]
    assert [float(x[0, 0]) for x in cache.fill(["a", "a"], {})] == [1.0, 0.0]  # in turn
    cache.fill(["c", "c"], {0: torch.zeros(1, 2), 1: torch.zeros(1, 2)})  # 5 samples > 4: the oldest prompt goes
    assert len(cache) <= 4 and cache.rows_to_draw(["b"]) == [0]
    with pytest.raises(ValueError, match="samples_per_prompt"):
        ReferenceSampleCache(samples_per_prompt=0, max_samples=4)


@pytest.mark.parametrize("per_prompt", [0, 2])
def test_real_samples_are_reference_draws_for_their_prompt_and_drawn_only_up_to_the_quota(tmp_path, monkeypatch,
                                                                                          per_prompt):
    drawn = []  # (text ids, latents) of every reference row sampled
    real_rows = []
    original = vgpo_module.generate_rollouts

    def recording(model, batch, **kwargs):
        out = original(model, batch, **kwargs)
        if model is not trainer._policy:  # the reference (frozen copy)
            for i in range(len(out.prompts)):
                drawn.append((tuple(out.text_input_ids[i][out.text_attention_mask[i].bool()].tolist()),
                              out.completions()[i].clone()))  # fmt: skip
        return out

    monkeypatch.setattr(vgpo_module, "generate_rollouts", recording)
    policy, value_model = make_models()
    args = vgpo_args(tmp_path, use_adm=True, discriminator_steps=1, max_steps=8, per_device_train_batch_size=4,
                     num_generations=2, adm_reference_samples_per_prompt=per_prompt)  # fmt: skip
    data = dataset(4)  # 4 distinct prompts, all in every step (x 2 generations): 8 visits of each, 2 rows a visit
    trainer = VGPOTrainer(policy, value_model, mean_latent, args, train_dataset=data)
    reference_rollouts = trainer._reference_rollouts

    def keep(rollouts):
        real = reference_rollouts(rollouts)
        real_rows.extend((tuple(real.text_input_ids[i][real.text_attention_mask[i].bool()].tolist()), c)
                         for i, c in enumerate(real.completions()))  # fmt: skip
        return real

    monkeypatch.setattr(trainer, "_reference_rollouts", keep)
    trainer.train()
    assert len(real_rows) == 8 * 4 * 2
    for text, latents in real_rows:
        assert any(t == text and torch.equal(latents, d) for t, d in drawn), text
    # unique prompts by text ids (dataset(4) has 4 distinct id rows)
    prompts = {text for text, _ in real_rows}
    expected = len(real_rows) if per_prompt == 0 else per_prompt * len(prompts)
    assert len(drawn) == expected
    reuse = [h["adm/reference_reuse"] for h in trainer.state.log_history if "adm/reference_reuse" in h]
    assert (reuse == []) if per_prompt == 0 else (reuse[0] == 0.0 and reuse[-1] == 1.0)

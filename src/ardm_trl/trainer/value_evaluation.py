"""Does a value model guide? Two measurements of a trained [`ARDMValueModel`] on held-out data:

- `value_reward_correlation`: how well its predictions track the rewards of trajectories it was not trained on;
- `measure_guidance_gain`: the reward of value-guided samples (VGPO Alg. 2) against unguided ones from the same
  starting noise, paired per prompt. VGPO's fixed point is the value-guided sampler at scale `1 / w_kl`, so this is the
  cheapest prediction of what VGPO can reach with this value model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.collators import ARDMDataCollator
from ..stats import mean_and_sem, paired_difference
from .ardm_utils import RewardFunc, draw_noisy_tokens, resolve_reward_funcs
from .rollout import AudioDecoder, generate_rollouts, prepare_prompt_batch, score_rollouts


@torch.no_grad()
def value_reward_correlation(
    value_model,
    rows: Sequence[dict[str, Any]],
    reward_column: str = "reward",
    batch_size: int = 16,
    num_draws: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Pearson and Spearman correlation between a value model's mean prediction over each trajectory (all its tokens,
    `num_draws` random diffusion times each, seeded) and the trajectory's reward; for rows with per-token
    `value_targets` (rewards-to-go, [`~ardm_trl.trainer.prepare_value_rewards`]), between each token's mean prediction
    and its target.

    Args:
        value_model ([`ARDMValueModel`]): the value model.
        rows (`Sequence[dict]`): value-dataset rows (`text_input_ids`, `latents`, optional `prompt_latents`, and the
            reward, already normalised if the model was trained on normalised rewards).
        reward_column (`str`, *optional*, defaults to `"reward"`): the reward column.
        batch_size (`int`, *optional*, defaults to `16`), num_draws (`int`, *optional*, defaults to `8`), seed.

    Returns:
        `dict[str, float]`: `pearson`, `spearman` and `n`.
    """
    from scipy import stats

    was_training = value_model.training
    value_model.eval()
    collate = ARDMDataCollator(value_model.config.patch_size, value_model.config.text_pad_token_id)
    generator = torch.Generator(device=value_model.device).manual_seed(seed)
    predictions, rewards = [], []
    for start in range(0, len(rows), batch_size):
        chunk = list(rows[start : start + batch_size])
        batch = collate(chunk)
        batch.pop("labels", None)
        batch = {k: v.to(value_model.device) for k, v in batch.items()}
        patches, patch_mask = value_model.patchify(batch["latents"], batch["latents_mask"])
        draws = draw_noisy_tokens(value_model.noise_schedule, patches, patch_mask, num_draws, generator=generator)
        values = value_model(**batch, draws=draws).value.float().mean(-1).cpu()  # (M,)
        if "value_targets" in chunk[0]:
            predictions.extend(values.tolist())
            rewards.extend(float(chunk[i]["value_targets"][n])
                           for i, n in zip(draws.sample_index.tolist(), draws.token_index.tolist()))  # fmt: skip
            continue
        per_sample = torch.zeros(len(chunk)).index_add_(0, draws.sample_index.cpu(), values)
        counts = torch.zeros(len(chunk)).index_add_(0, draws.sample_index.cpu(), torch.ones_like(values))
        predictions.extend((per_sample / counts.clamp_min(1)).tolist())
        rewards.extend(float(row[reward_column]) for row in chunk)
    value_model.train(was_training)
    return {"pearson": float(stats.pearsonr(predictions, rewards)[0]),
            "spearman": float(stats.spearmanr(predictions, rewards)[0]), "n": len(rewards)}  # fmt: skip


@torch.no_grad()
def measure_guidance_gain(
    policy,
    value_model,
    prompts: Sequence[dict[str, Any]],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    scales: Sequence[float],
    seeds: Sequence[int] = (0, 1, 2),
    reward_weights: Sequence[float] | None = None,
    audio_decoder: AudioDecoder | None = None,
    batch_size: int = 8,
    **sampling: Any,
) -> dict[str, Any]:
    """The reward gain of value-guided sampling (VGPO Alg. 2) over unguided sampling on `prompts`.

    For every seed, each scale samples every prompt from the same generator state, so guided and unguided samples start
    from the same noise; the gain at a scale is the paired change of the reward against scale 0, averaged per prompt
    over the seeds ([`~ardm_trl.stats.paired_difference`]: its standard error is over prompts).

    Args:
        policy ([`ARDMForSpeechSynthesis`]): the model that samples.
        value_model ([`ARDMValueModel`]): the value model whose gradient guides.
        prompts (`Sequence[dict]`): held-out prompt rows (`prompt`, `text_input_ids`, optional `prompt_latents`, and
            the columns the reward functions read).
        reward_funcs (`RewardFunc` or `list[RewardFunc]`): the reward, TRL's calling convention.
        scales (`Sequence[float]`): guidance scales `lambda` to try (0, the unguided baseline, is always added).
        seeds (`Sequence[int]`, *optional*, defaults to `(0, 1, 2)`): sampling seeds.
        reward_weights (`Sequence[float]`, *optional*): weights of several reward functions.
        audio_decoder (*optional*): decodes samples for audio rewards.
        batch_size (`int`, *optional*, defaults to `8`): prompts per `generate` call.
        sampling: sampling settings for `generate` (`temperature`, `lm_guidance_scale`, ...; the policy's own by
            default).

    Returns:
        `dict`: `scales` (with 0 first), `rewards` (per scale: the list of per-sample rewards, samples ordered seed by
        seed, prompt by prompt), `mean` / `sem` per scale, and `gain` per scale (the paired change against scale 0:
        `mean`, `sem`, `t`, `ci95_low`, `ci95_high`, `n`).
    """
    funcs, weights = resolve_reward_funcs(reward_funcs, reward_weights)
    all_scales = [0.0] + [float(s) for s in scales if float(s) != 0.0]
    rows = [{k: v for k, v in row.items() if k != "prompt_audio"} for row in prompts]
    config = policy.config
    rewards: dict[float, list[float]] = {s: [] for s in all_scales}
    prompt_ids: list[int] = []
    for seed in seeds:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            batch = prepare_prompt_batch(chunk, 1, None, config.text_pad_token_id, config.patch_size)
            batch = batch.to(policy.device)
            prompt_ids.extend(range(start, start + len(chunk)))
            for scale in all_scales:
                generator = torch.Generator(device=policy.device).manual_seed(seed * 1_000_003 + start)
                guidance = {"value_model": value_model, "value_guidance_scale": scale} if scale else {}
                rollouts = generate_rollouts(policy, batch, generator=generator, **guidance, **sampling)
                rollouts = score_rollouts(rollouts, funcs, weights, audio_decoder)
                rewards[scale].extend(rollouts.rewards.float().cpu().tolist())
    result: dict[str, Any] = {"scales": all_scales, "rewards": {}, "mean": {}, "sem": {}, "gain": {}}
    for scale in all_scales:
        values = rewards[scale]
        finite = [v for v in values if np.isfinite(v)]
        result["rewards"][scale] = values
        result["mean"][scale], result["sem"][scale] = mean_and_sem(finite)
        result["gain"][scale] = paired_difference(values, rewards[0.0], prompt_ids)
    return result


@dataclass
class GuidanceEvaluation:
    """What [`ValueTrainer`] measures at each evaluation besides its loss: the guidance gain of the value model being
    trained ([`measure_guidance_gain`]) on held-out prompts. Logged as `eval_guidance/<scale>/gain` and `.../sem`.

    Args:
        policy ([`ARDMForSpeechSynthesis`]): the model the value model will guide.
        prompts (`Sequence[dict]`): held-out prompt rows.
        reward_funcs (`RewardFunc` or `list[RewardFunc]`): the reward.
        scales (`Sequence[float]`): guidance scales to measure.
        seeds (`Sequence[int]`, *optional*, defaults to `(0,)`): sampling seeds.
        audio_decoder (*optional*): decodes samples for audio rewards.
        sampling (`dict`, *optional*): sampling settings (the policy's own by default).
    """

    policy: Any
    prompts: Sequence[dict[str, Any]]
    reward_funcs: Any
    scales: Sequence[float]
    seeds: Sequence[int] = (0,)
    audio_decoder: AudioDecoder | None = None
    sampling: dict[str, Any] = field(default_factory=dict)

    def __call__(self, value_model) -> dict[str, float]:
        was_training = value_model.training
        value_model.eval()
        result = measure_guidance_gain(self.policy, value_model, self.prompts, self.reward_funcs, self.scales,
                                       self.seeds, audio_decoder=self.audio_decoder, **self.sampling)  # fmt: skip
        value_model.train(was_training)
        metrics = {"guidance/0/reward": result["mean"][0.0]}
        for scale in result["scales"][1:]:
            metrics[f"guidance/{scale:g}/reward"] = result["mean"][scale]
            metrics[f"guidance/{scale:g}/gain"] = result["gain"][scale]["mean"]
            metrics[f"guidance/{scale:g}/sem"] = result["gain"][scale]["sem"]
        return metrics


__all__ = ["GuidanceEvaluation", "measure_guidance_gain", "value_reward_correlation"]

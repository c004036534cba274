"""Best-of-K sampling: `K` samples per prompt from an ARDM, scored by reward functions, the best one kept (the
"Best-of-16 / Best-of-64" rows of the VGPO paper's Table 1).

The sampling and scoring loop (`iter_scored_groups`) is shared with the preference-data builder of ARDM-DPO.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset

from ..models.ardm import check_ardm
from .ardm_utils import RewardFunc, resolve_reward_funcs
from .rollout import AudioDecoder, Rollouts, generate_rollouts, prepare_prompt_batch, score_rollouts


@dataclass
class BestOfKOutput:
    """Output of [`best_of_k`] for `P` prompts, `K` samples each and `R` reward functions.

    Args:
        prompts (`list[str]`): the `P` prompt texts.
        latents (`list[torch.Tensor]`): the best sample of each prompt, `(F_p, D)` frames trimmed to its length.
        scores (`torch.FloatTensor` of shape `(P, K)`): weighted sum of the rewards of every sample.
        scores_per_func (`torch.FloatTensor` of shape `(P, K, R)`): each reward function's value (NaN where it
            returned `None`).
        best_index (`torch.LongTensor` of shape `(P,)`): which of the `K` samples was kept.
        best_scores (`torch.FloatTensor` of shape `(P,)`): `scores[p, best_index[p]]`, the maximum of each row.
        samples (`list[list[torch.Tensor]]`, *optional*): all `K` samples of each prompt (`return_all_samples=True`).
    """

    prompts: list[str]
    latents: list[torch.Tensor]
    scores: torch.Tensor
    scores_per_func: torch.Tensor
    best_index: torch.Tensor
    best_scores: torch.Tensor
    samples: list[list[torch.Tensor]] | None = None


def iter_scored_groups(
    model,
    prompts: Dataset | Sequence[dict[str, Any]],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    num_samples: int,
    batch_size: int = 4,
    reward_weights: Sequence[float] | None = None,
    processing_class: Any = None,
    audio_decoder: AudioDecoder | None = None,
    **generation_kwargs: Any,
) -> Iterator[tuple[list[dict[str, Any]], Rollouts]]:
    """Sample `num_samples` trajectories for each prompt row and score them, `batch_size` prompts per `generate` call.

    Yields `(rows, rollouts)` per chunk: the chunk's prompt rows and their scored [`Rollouts`], in which the samples
    of row `i` are the consecutive entries `i * num_samples ... (i + 1) * num_samples - 1`.
    """
    check_ardm(model)
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    funcs, weights = resolve_reward_funcs(reward_funcs, reward_weights)
    config = model.config
    rows = list(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = prepare_prompt_batch(chunk, num_samples, processing_class, config.text_pad_token_id,
                                         config.patch_size).to(model.device)
            rollouts = generate_rollouts(model, batch, **generation_kwargs)
            yield chunk, score_rollouts(rollouts, funcs, weights, audio_decoder)
    finally:
        model.train(was_training)


def best_of_k(
    model,
    prompts: Dataset | Sequence[dict[str, Any]],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    num_samples: int = 16,
    batch_size: int = 4,
    reward_weights: Sequence[float] | None = None,
    processing_class: Any = None,
    audio_decoder: AudioDecoder | None = None,
    return_all_samples: bool = False,
    **generation_kwargs: Any,
) -> BestOfKOutput:
    """Best-of-K sampling from an ARDM.

    Args:
        model ([`~models.ardm.ARDMProtocol`]): any ARDM (the base model, a fine-tuned one, ...).
        prompts (`datasets.Dataset` or list of rows): rows with the text in `prompt` (or `text`), `text_input_ids`
            (or a `processing_class`), an optional voice prompt `prompt_latents` `(Fp, D)`, and any columns the
            rewards read (passed as keyword arguments, TRL's convention).
        reward_funcs (callable or list of callables): `f(prompts=, completions=, **columns)` -> one float (or `None`)
            per completion; combined with `reward_weights` (all 1 by default).
        num_samples (`int`, *optional*, defaults to `16`): `K`, the samples per prompt.
        batch_size (`int`, *optional*, defaults to `4`): prompts per `generate` call (each call samples
            `batch_size * num_samples` sequences at once).
        audio_decoder (*optional*): a codec with `decode_list` and `sampling_rate`; samples are decoded once and the
            rewards receive `audio=` and `sampling_rate=`.
        return_all_samples (`bool`, *optional*, defaults to `False`): also return every sample.
        generation_kwargs: passed to `model.generate` (`lm_guidance_scale`, `max_patches`, `min_patches`,
            `num_inference_steps`, `generator`, ...).

    Returns:
        [`BestOfKOutput`]; ties are broken by the lowest sample index.
    """
    best, all_samples, prompt_texts = [], [], []
    scores, per_func = [], []
    for _, rollouts in iter_scored_groups(model, prompts, reward_funcs, num_samples, batch_size, reward_weights,
                                          processing_class, audio_decoder, **generation_kwargs):
        completions = [c.cpu() for c in rollouts.completions()]
        group_scores = rollouts.rewards.float().cpu().view(-1, num_samples)  # (p, K)
        index = group_scores.argmax(dim=1)
        for p in range(group_scores.shape[0]):
            group = completions[p * num_samples:(p + 1) * num_samples]
            best.append(group[int(index[p])])
            prompt_texts.append(rollouts.prompts[p * num_samples])
            if return_all_samples:
                all_samples.append(group)
        scores.append(group_scores)
        per_func.append(rollouts.rewards_per_func.float().cpu().view(group_scores.shape[0], num_samples, -1))
    if not scores:
        raise ValueError("No prompts: pass at least one prompt row.")
    scores_t = torch.cat(scores)
    best_index = scores_t.argmax(dim=1)
    return BestOfKOutput(
        prompts=prompt_texts,
        latents=best,
        scores=scores_t,
        scores_per_func=torch.cat(per_func),
        best_index=best_index,
        best_scores=scores_t.gather(1, best_index[:, None]).squeeze(1),
        samples=all_samples if return_all_samples else None,
    )


__all__ = ["BestOfKOutput", "best_of_k", "iter_scored_groups"]

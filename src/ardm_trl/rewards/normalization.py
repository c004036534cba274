"""Per-prompt group normalisation of rewards (VGPO Sec. 4.3, as in GRPO)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

__all__ = ["group_normalize"]


def group_normalize(
    rewards: torch.Tensor | Sequence[float], group_ids: torch.Tensor | Sequence[Hashable], eps: float = 1e-6
) -> torch.Tensor:
    """Normalise rewards within each group of samples that share a prompt: `r~ = (r - mean) / (std + eps)`.

    `mean` and `std` are taken over the group's finite rewards; `std` is the population standard deviation
    (`correction=0`), so a normalised group of two or more distinct rewards has mean 0 and std `std / (std + eps)`,
    i.e. 1 up to `eps`.

    Edge cases, by design:
    - a group of one sample, and a group whose rewards are all equal (std 0), normalise to 0: the group carries no
      information about which sample is better;
    - NaN entries (e.g. a reward function's `None`, converted) are left out of the statistics and stay NaN.

    Args:
        rewards (`torch.Tensor` or sequence of `float`): shape `(B,)`.
        group_ids (`torch.Tensor` or sequence of hashables): shape `(B,)`, one id per sample (e.g. the prompt index
            or the prompt text itself).
        eps (`float`, *optional*, defaults to `1e-6`): added to the standard deviation.

    Returns:
        `torch.Tensor`: the normalised rewards, shape `(B,)`, dtype of `rewards` (float32 for a list).
    """
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.float32)
    if rewards.ndim != 1:
        raise ValueError(f"`rewards` must be 1-D (one reward per sample), got shape {tuple(rewards.shape)}.")
    if len(group_ids) != rewards.numel():
        raise ValueError(f"`group_ids` has {len(group_ids)} entries but there are {rewards.numel()} rewards.")
    if eps < 0:
        raise ValueError(f"`eps` must be non-negative, got {eps}.")
    if isinstance(group_ids, torch.Tensor):
        _, inverse = torch.unique(group_ids.reshape(-1), return_inverse=True)
    else:
        index: dict[Hashable, int] = {}
        inverse = torch.tensor([index.setdefault(gid, len(index)) for gid in group_ids], dtype=torch.long)
    inverse = inverse.to(rewards.device)
    num_groups = int(inverse.max()) + 1 if inverse.numel() else 0

    x = rewards.to(torch.float64)
    valid = torch.isfinite(x)
    x0 = torch.where(valid, x, torch.zeros_like(x))
    count = torch.zeros(num_groups, dtype=torch.float64, device=x.device).index_add_(0, inverse, valid.double())
    total = torch.zeros_like(count).index_add_(0, inverse, x0)
    mean = total / count.clamp_min(1)  # (G,)
    centred = torch.where(valid, x - mean[inverse], torch.zeros_like(x))
    var = torch.zeros_like(count).index_add_(0, inverse, centred.square()) / count.clamp_min(1)
    std = var.sqrt()  # (G,)
    normalised = centred / (std[inverse] + eps)
    normalised = torch.where(std[inverse] > 0, normalised, torch.zeros_like(x))  # groups of one, constant groups
    normalised = torch.where(valid, normalised, torch.full_like(x, float("nan")))
    return normalised.to(rewards.dtype)

"""Building blocks of DiffRO: straight-through Gumbel-Softmax replay, categorical KL, differentiable reward calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .ardm_utils import reward_func_name

# A differentiable reward: `reward(soft_tokens, token_mask, **columns) -> Tensor (B,)`.
DifferentiableReward = Callable[..., torch.Tensor]

# Keyword arguments DiffRO itself passes to reward functions; dataset columns may not use these names.
RESERVED_REWARD_KWARGS = ("soft_tokens", "token_mask", "speech_ids", "prompts")


def straight_through_gumbel_softmax(
    logits: torch.Tensor, gumbel_noise: torch.Tensor, hard_ids: torch.LongTensor, tau: float = 1.0
) -> torch.Tensor:
    """One-hot of `hard_ids` in the forward pass, gradient of `softmax((logits + gumbel_noise) / tau)` backward.

    With the noise kept from sampling (`hard_ids = argmax(logits + gumbel_noise)`), the soft sample is the
    Gumbel-Softmax relaxation of *the same* draw, so the reward reads exactly the sampled tokens while its gradient
    reaches `logits`.

    Args:
        logits (`torch.Tensor` of shape `(B, T, V)`): processed logits of the policy (with grad).
        gumbel_noise (`torch.Tensor` of shape `(B, T, V)`): the noise used when sampling.
        hard_ids (`torch.LongTensor` of shape `(B, T)`): the sampled classes.
        tau (`float`, *optional*, defaults to 1.0): relaxation temperature (backward only).
    """
    if tau <= 0:
        raise ValueError(f"The Gumbel-Softmax temperature must be > 0, got {tau}.")
    soft = ((logits.float() + gumbel_noise) / tau).softmax(-1)  # (B, T, V)
    hard = F.one_hot(hard_ids, logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def categorical_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact `KL(softmax(logits) || softmax(ref_logits))` over the last dimension, `(...)`; `-inf` entries allowed."""
    log_p = logits.float().log_softmax(-1)
    log_q = ref_logits.float().log_softmax(-1)
    p = log_p.exp()
    # 0 * (-inf - x) is NaN: entries with p == 0 contribute nothing
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of `softmax(logits)` over the last dimension, `(...)`; `-inf` entries allowed."""
    log_p = logits.float().log_softmax(-1)
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(-1)


def call_differentiable_rewards(
    reward_funcs: Sequence[DifferentiableReward],
    soft_tokens: torch.Tensor,
    token_mask: torch.Tensor,
    columns: dict[str, list[Any]],
    **extra: Any,
) -> torch.Tensor:
    """Call each reward as `func(soft_tokens=..., token_mask=..., **extra, **columns)` and stack the results.

    Returns:
        `torch.Tensor` of shape `(B, num_rewards)`, differentiable w.r.t. `soft_tokens`.

    Raises:
        ValueError: a reward returned something other than a tensor of shape `(B,)`, NaN / inf, or (while gradients
            are recorded) a tensor without a gradient to `soft_tokens`. The message names the reward.
    """
    clash = set(columns) & set(RESERVED_REWARD_KWARGS)
    if clash:
        raise ValueError(f"Dataset columns {sorted(clash)} clash with the reward arguments {RESERVED_REWARD_KWARGS}.")
    batch_size = soft_tokens.shape[0]
    values = []
    for func in reward_funcs:
        name = reward_func_name(func)
        out = func(soft_tokens=soft_tokens, token_mask=token_mask, **extra, **columns)
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"Reward function {name!r} returned {type(out).__name__}; a differentiable reward must return a "
                f"tensor of shape ({batch_size},) computed from `soft_tokens`."
            )
        if out.shape != (batch_size,):
            raise ValueError(
                f"Reward function {name!r} returned a tensor of shape {tuple(out.shape)}; expected ({batch_size},), "
                "one value per sample (reduce over the sequence inside the reward)."
            )
        if soft_tokens.requires_grad and torch.is_grad_enabled() and not out.requires_grad:
            raise ValueError(
                f"Reward function {name!r} returned a tensor with no gradient to `soft_tokens` (detached, or computed "
                "from `speech_ids` / the columns only): DiffRO would train on the KL term alone. Compute it from "
                "`soft_tokens` without `.detach()`, `.item()` or `torch.no_grad()`."
            )
        if not torch.isfinite(out).all():
            bad = (~torch.isfinite(out)).nonzero().flatten().tolist()
            raise ValueError(
                f"Reward function {name!r} returned non-finite values for sample(s) {bad}; return a finite value "
                "(e.g. 0 for samples the reward does not apply to)."
            )
        values.append(out.float())
    return torch.stack(values, dim=-1)


__all__ = [
    "RESERVED_REWARD_KWARGS",
    "DifferentiableReward",
    "call_differentiable_rewards",
    "categorical_entropy",
    "categorical_kl",
    "straight_through_gumbel_softmax",
]

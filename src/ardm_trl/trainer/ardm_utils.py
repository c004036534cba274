"""Building blocks shared by the ARDM trainers (value training, VGPO, ARDM-DPO, Best-of-K): noise draws at random
(n, t), the KL estimate to the reference, the value losses, and calling reward functions the TRL way."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..models.ardm.diffusion import NoiseDraws, draw_noisy_tokens
from ..rewards.normalization import group_normalize

RewardFunc = Callable[..., Sequence[float | None] | torch.Tensor]


def ardm_kl(policy_epsilon: torch.Tensor, reference_epsilon: torch.Tensor) -> torch.Tensor:
    """KL estimate to the reference (reported as "KL" in the VGPO tables): the mean squared difference of policy and
    reference predictions in epsilon units, i.e. `sigma_t^2 ||s_theta - s_ref||^2` per dimension, averaged over
    policy samples and random `(n, t)`. One function for every trainer."""
    return (policy_epsilon.float() - reference_epsilon.float()).pow(2).mean()


def value_loss(values: torch.Tensor, rewards: torch.Tensor, loss_type: str = "mse") -> torch.Tensor:
    """Value-model regression loss at `(n, t)` draws: `values` `(M, K)`, `rewards` `(M,)` of their trajectories.

    - `"mse"`: VGPO Eq. 13, `(V - r)^2`; its minimum is the (ordinary) value `E[r]`.
    - `"exp_mse"`: VGPO Eq. 32, `(exp(V - sg V) - exp(r - sg V))^2`, whose minimum is the soft value `log E[exp r]`
      and whose gradient `2 (1 - exp(r - V)) grad V` avoids the exponentials of Eq. 12.
    """
    rewards = rewards.to(values.dtype)[:, None].expand_as(values)
    if loss_type == "mse":
        return F.mse_loss(values.float(), rewards.float())
    if loss_type == "exp_mse":
        anchor = values.detach()
        diff = torch.exp(values - anchor) - torch.exp((rewards - anchor).clamp(max=30.0))
        return diff.float().pow(2).mean()
    raise ValueError(f"Unknown value loss {loss_type!r}; use 'mse' (Eq. 13) or 'exp_mse' (Eq. 32).")


def reward_func_name(func: Any) -> str:
    """Name under which a reward function's metrics are logged: `name`, `__name__`, or the class name."""
    return getattr(func, "name", None) or getattr(func, "__name__", None) or type(func).__name__


def resolve_reward_funcs(
    reward_funcs: RewardFunc | Sequence[RewardFunc], reward_weights: Sequence[float] | None
) -> tuple[list[RewardFunc], torch.Tensor]:
    """TRL's `reward_funcs` argument (one callable or a list) and `args.reward_weights` (all 1 by default), checked."""
    funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    if not funcs or not all(callable(f) for f in funcs):
        raise ValueError("`reward_funcs` must be one callable or a non-empty list of callables.")
    weights = list(reward_weights) if reward_weights is not None else [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise ValueError(f"`reward_weights` has {len(weights)} entries but there are {len(funcs)} reward functions.")
    if not all(math.isfinite(float(w)) for w in weights):
        raise ValueError(f"`reward_weights` must be finite numbers, got {weights}.")
    return funcs, torch.tensor(weights, dtype=torch.float32)


def _reward_values(output: Any, name: str, batch: int) -> list[Any]:
    """A reward function's output as a list, or a `ValueError` that says what it returned instead."""
    shape = getattr(output, "shape", None)
    if shape is not None and len(shape) != 1:
        raise ValueError(
            f"Reward function {name!r} returned an array of shape {tuple(shape)}; it must return one value per "
            f"completion: a list or a 1-D tensor of length {batch} (e.g. `.squeeze(-1)` or `.flatten()`)."
        )
    if isinstance(output, (str, bytes, dict)) or not hasattr(output, "__iter__"):
        raise ValueError(
            f"Reward function {name!r} returned {type(output).__name__} {output!r:.40}; it must return one value (or "
            f"None) per completion, a list of length {batch}."
        )
    return output.tolist() if hasattr(output, "tolist") else list(output)


def call_reward_funcs(
    reward_funcs: Sequence[RewardFunc],
    reward_weights: torch.Tensor,
    prompts: list[str],
    completions: list[torch.Tensor],
    columns: dict[str, list[Any]] | None = None,
    **extra: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call every reward function TRL's way and combine them.

    Each function gets `prompts=`, `completions=` (one `(F_i, D)` latent tensor per sample), the extra dataset
    columns as keyword arguments, and `extra` (e.g. `audio=`, `sampling_rate=`). It returns one value per sample
    (a list or a tensor); `None` means "no reward for this sample" and is skipped in the weighted sum (as in TRL).

    Returns:
        `(total (B,), per_function (B, K))`; `per_function` holds NaN where a function returned `None`.

    Raises:
        ValueError: a function returned the wrong number of values, or NaN / inf, or every function returned `None`
            for some sample. The message names the function. Nothing has been updated when this is raised.
    """
    batch = len(completions)
    columns = columns or {}
    per_function = torch.full((batch, len(reward_funcs)), float("nan"))
    for k, func in enumerate(reward_funcs):
        name = reward_func_name(func)
        output = func(prompts=prompts, completions=completions, **columns, **extra)
        values = _reward_values(output, name, batch)
        if len(values) != batch:
            raise ValueError(
                f"Reward function {name!r} returned {len(values)} values for a batch of {batch} samples; it must "
                "return one value (or None) per completion."
            )
        for i, value in enumerate(values):
            if value is None:
                continue
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(
                    f"Reward function {name!r} returned a non-finite value ({value}) for sample {i} "
                    f"(prompt {prompts[i]!r}); return None for samples without a reward."
                )
            per_function[i, k] = value
    missing = torch.isnan(per_function).all(dim=1)
    if missing.any():
        raise ValueError(
            f"Every reward function returned None for sample(s) {missing.nonzero().flatten().tolist()}; at least "
            "one reward per sample is needed."
        )
    total = (per_function * reward_weights.to(per_function.dtype)[None]).nansum(dim=1)
    return total, per_function


def all_reduce_gradients(module: torch.nn.Module, accelerator) -> None:
    """Average the gradients of a module that is not wrapped by the Trainer (value model, discriminator) over
    processes, so every rank applies the same update."""
    if accelerator is None or accelerator.num_processes == 1:
        return
    import torch.distributed as dist

    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= accelerator.num_processes




@torch.no_grad()
def estimate_kl(
    policy: torch.nn.Module,
    reference: torch.nn.Module | None,
    inputs: dict[str, Any],
    num_draws: int = 4,
    lm_guidance_scale: float = 1.0,
    seed: int = 0,
) -> float:
    """`ardm_kl` of `policy` to the reference on the trajectories in `inputs` (text, latents, masks, prompt), with
    the same random `(n, t, eps)` for both. `reference=None` means the policy with its PEFT adapters disabled."""
    from .base import reference_model_context, unwrap_peft

    base = unwrap_peft(policy)
    patches, patch_mask = base.patchify(inputs["latents"], inputs.get("latents_mask"))
    generator = torch.Generator(device=patches.device).manual_seed(seed)
    draws = draw_noisy_tokens(base.noise_schedule, patches, patch_mask, num_draws, generator=generator)
    schedule = base.noise_schedule

    def epsilon(model: torch.nn.Module) -> torch.Tensor:
        prediction = model(**inputs, draws=draws, lm_guidance_scale=lm_guidance_scale).head_prediction
        return schedule.to_epsilon(prediction, draws.noisy, draws.timesteps)

    policy_epsilon = epsilon(policy)
    with reference_model_context(policy, reference) as ref:
        reference_epsilon = epsilon(ref)
    return float(ardm_kl(policy_epsilon, reference_epsilon))


__all__ = [
    "NoiseDraws",
    "RewardFunc",
    "all_reduce_gradients",
    "ardm_kl",
    "call_reward_funcs",
    "draw_noisy_tokens",
    "estimate_kl",
    "group_normalize",
    "resolve_reward_funcs",
    "reward_func_name",
    "value_loss",
]

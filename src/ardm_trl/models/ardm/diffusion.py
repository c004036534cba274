"""The noise schedule of an ARDM head, read from a diffusers scheduler, and the one place where a head prediction is
converted to a score (and back) for every prediction type; random noisy tokens `x_n^t` at `(n, t)` for the losses.

Notation (VGPO Sec. 2.2): `x^t = alpha_t x + sigma_t eps` with `alpha_t = sqrt(alphas_cumprod[t])`,
`sigma_t = sqrt(1 - alphas_cumprod[t])`, so `alpha_t^2 + sigma_t^2 = 1` (variance preserving). The score of the noisy
marginal is `s(x^t) = -E[eps | x^t] / sigma_t`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import SchedulerMixin


def build_scheduler(scheduler_config: dict[str, Any]) -> SchedulerMixin:
    """Instantiate the diffusers scheduler described by `scheduler_config` (`_class_name` picks the class)."""
    import diffusers  # imported here: `import ardm_trl` stays light
    config = dict(scheduler_config)
    class_name = config.pop("_class_name", "DDPMScheduler")
    scheduler_cls = getattr(diffusers, class_name, None)
    if scheduler_cls is None:
        raise ValueError(f"Unknown diffusers scheduler {class_name!r} in `scheduler_config['_class_name']`.")
    return scheduler_cls.from_config(config)


def tempered_step(
    scheduler: SchedulerMixin,
    prediction: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One reverse step of a DDPM sampler whose added noise is scaled by `temperature` (MAR's sampling temperature):
    `x^{t'} = mu(x^t, x_0_hat) + temperature * sigma_{t -> t'} z`, where `mu` is the posterior mean of `q(x^{t'} | x^t,
    x_0_hat)`. `temperature = 1` is `scheduler.step` itself (the model's distribution); `0` moves to the posterior mean
    at every step, so only the starting noise is random. Other schedulers only take `temperature = 1`.

    Returns:
        `torch.Tensor`: the sample at the previous timestep.
    """
    import diffusers

    out = scheduler.step(prediction, timestep, sample, generator=generator)
    if temperature == 1.0:
        return out.prev_sample
    if not isinstance(scheduler, diffusers.DDPMScheduler):
        raise ValueError(f"`temperature` != 1 needs a DDPMScheduler, got {type(scheduler).__name__}.")
    if temperature < 0:
        raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
    t = int(timestep)
    previous_t = int(scheduler.previous_timestep(t))
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
    alpha_prod_t = alphas_cumprod[t]
    alpha_prod_prev = alphas_cumprod[previous_t] if previous_t >= 0 else scheduler.one.to(torch.float64)
    current_alpha = alpha_prod_t / alpha_prod_prev
    coef_clean = alpha_prod_prev.sqrt() * (1 - current_alpha) / (1 - alpha_prod_t)  # DDPM Eq. 7
    coef_sample = current_alpha.sqrt() * (1 - alpha_prod_prev) / (1 - alpha_prod_t)
    mean = float(coef_clean) * out.pred_original_sample + float(coef_sample) * sample
    return mean + temperature * (out.prev_sample - mean)


class NoiseSchedule:
    """Per-timestep `alpha_t`, `sigma_t` of a variance-preserving diffusers schedule, plus prediction conversions.

    Args:
        scheduler_config (`dict`): a diffusers scheduler config with `prediction_type`.
    """

    def __init__(self, scheduler_config: dict[str, Any]):
        scheduler = build_scheduler(scheduler_config)
        self.prediction_type: str = scheduler.config.prediction_type
        self.num_train_timesteps: int = scheduler.config.num_train_timesteps
        self.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)

    def alpha_sigma(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`alpha_t`, `sigma_t` for integer `timesteps` (any shape), broadcastable against `like` (shape + (D,))."""
        acp = self.alphas_cumprod.to(timesteps.device)[timesteps.long()]
        alpha = acp.sqrt().to(like.dtype)
        sigma = (1.0 - acp).sqrt().to(like.dtype)
        shape = tuple(timesteps.shape) + (1,) * (like.dim() - timesteps.dim())
        return alpha.reshape(shape), sigma.reshape(shape)

    def sample_timesteps(self, shape: tuple[int, ...], device: torch.device, generator=None) -> torch.Tensor:
        """Training timesteps, uniform over `{0, ..., num_train_timesteps - 1}`."""
        return torch.randint(0, self.num_train_timesteps, shape, device=device, generator=generator)

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """`x^t = alpha_t x + sigma_t eps` (the forward process q(x^t | x))."""
        alpha, sigma = self.alpha_sigma(timesteps, clean)
        return alpha * clean + sigma * noise

    def target(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The regression target of the head for its prediction type."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return clean
        alpha, sigma = self.alpha_sigma(timesteps, clean)
        return alpha * noise - sigma * clean  # v_prediction

    def to_epsilon(self, prediction: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The noise estimate `eps_hat` implied by a head prediction at `(x^t, t)`."""
        if self.prediction_type == "epsilon":
            return prediction
        alpha, sigma = self.alpha_sigma(timesteps, noisy)
        if self.prediction_type == "sample":
            return (noisy - alpha * prediction) / sigma
        return sigma * noisy + alpha * prediction  # v = alpha eps - sigma x  =>  eps = sigma x^t + alpha v

    def from_epsilon(self, epsilon: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The head prediction (of this schedule's prediction type) that implies noise estimate `epsilon`."""
        if self.prediction_type == "epsilon":
            return epsilon
        alpha, sigma = self.alpha_sigma(timesteps, noisy)
        if self.prediction_type == "sample":
            return (noisy - sigma * epsilon) / alpha
        return (epsilon - sigma * noisy) / alpha

    def to_sample(self, prediction: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The clean-sample estimate `x_hat = (x^t - sigma_t eps_hat) / alpha_t` implied by a head prediction."""
        if self.prediction_type == "sample":
            return prediction
        alpha, sigma = self.alpha_sigma(timesteps, noisy)
        return (noisy - sigma * self.to_epsilon(prediction, noisy, timesteps)) / alpha

    def to_score(self, prediction: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Score `s(x^t) = -eps_hat / sigma_t` of a head prediction, for every prediction type."""
        _, sigma = self.alpha_sigma(timesteps, noisy)
        return -self.to_epsilon(prediction, noisy, timesteps) / sigma

    def from_score(self, score: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The head prediction whose score is `score` (inverse of `to_score`)."""
        _, sigma = self.alpha_sigma(timesteps, noisy)
        return self.from_epsilon(-sigma * score, noisy, timesteps)

    def add_score(
        self, prediction: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor, score_delta: torch.Tensor
    ) -> torch.Tensor:
        """The prediction whose score is `to_score(prediction) + score_delta` (value guidance, VGPO Eq. 10).

        In epsilon units this is `eps - sigma_t * score_delta`.
        """
        _, sigma = self.alpha_sigma(timesteps, noisy)
        epsilon = self.to_epsilon(prediction, noisy, timesteps) - sigma * score_delta
        return self.from_epsilon(epsilon, noisy, timesteps)


@dataclass
class NoiseDraws:
    """`K` random `(t, eps)` for each of the `M` selected tokens of a batch of trajectories; shapes `(M, K, ...)`.

    `sample_index` `(M,)` maps each token to its trajectory; `token_index` `(M,)` is its position `n`.
    """

    sample_index: torch.Tensor
    token_index: torch.Tensor
    timesteps: torch.Tensor
    noise: torch.Tensor
    clean: torch.Tensor
    noisy: torch.Tensor

    def gather(self, per_token: torch.Tensor) -> torch.Tensor:
        """Pick `(B, N, X)` per-token tensors (LM states, previous patches) at the drawn tokens: `(M, K, X)`."""
        picked = per_token[self.sample_index, self.token_index]  # (M, X)
        return picked[:, None].expand(-1, self.timesteps.shape[1], -1)


def draw_noisy_tokens(
    schedule: NoiseSchedule,
    patches: torch.Tensor,
    patch_mask: torch.Tensor,
    num_draws: int,
    max_tokens: int | None = None,
    generator: torch.Generator | None = None,
) -> NoiseDraws:
    """Noise `num_draws` copies of the valid tokens of `states` at uniform random diffusion times.

    Args:
        schedule (`NoiseSchedule`): the model's noise schedule.
        patches (`torch.Tensor` of shape `(B, N, P*D)`), patch_mask (`(B, N)`): clean trajectories in patches
            (`model.patchify(latents, latents_mask)`).
        num_draws (`int`): draws `(t, eps)` per token.
        max_tokens (`int`, *optional*): if set, a uniform random subset of at most this many tokens (random `n`).
    """
    valid = patch_mask.bool()
    sample_index, token_index = valid.nonzero(as_tuple=True)
    if max_tokens is not None and sample_index.numel() > max_tokens:
        keep = torch.randperm(sample_index.numel(), device=valid.device, generator=generator)[:max_tokens]
        sample_index, token_index = sample_index[keep], token_index[keep]
    clean = patches[sample_index, token_index][:, None].expand(-1, num_draws, -1)  # (M, K, PD)
    timesteps = torch.randint(0, schedule.num_train_timesteps, clean.shape[:2], device=clean.device,
                              generator=generator)
    noise = torch.randn(clean.shape, device=clean.device, dtype=clean.dtype, generator=generator)
    return NoiseDraws(sample_index, token_index, timesteps, noise, clean, schedule.add_noise(clean, noise, timesteps))


__all__ = ["NoiseDraws", "NoiseSchedule", "build_scheduler", "draw_noisy_tokens"]

"""Configuration of the VGPO trainer (VGPO paper, Algorithm 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .speech_rl_config import ARDMRLConfig


@dataclass
class VGPOConfig(ARDMRLConfig):
    r"""
    Configuration of [`VGPOTrainer`]. Optimiser defaults follow the paper's Sec. 4.1 (AdamW, learning rate 1e-6,
    betas (0.9, 0.95), weight decay 0.01). The paper's learning rate is for its 0.4 B-parameter DiTAR trained for
    600-15,000 steps; a small model needs a larger one (the bundled 3.3 M-parameter ARDM: ~1e-4), and a decaying
    schedule (`lr_scheduler_type="cosine"`): at a constant rate the policy ends swinging around the fixed point, and the
    last step's weights are a random draw from that swing. Sampling settings left at `None` are the policy's own
    ([`~ardm_trl.models.ardm.sampling_settings`]).

    `per_device_train_batch_size` counts prompts; each prompt is sampled `num_generations` times per step.

    Parameters (beyond [`ARDMRLConfig`]: `num_draws`, `peft_modules_to_save`, the paper's optimiser defaults):
        > Rollouts

        num_generations (`int`, *optional*, defaults to `4`):
            Trajectories sampled per prompt per step (the group of per-prompt normalisation).
        max_patches (`int`, *optional*, defaults to `64`):
            Maximum patches per rollout.
        min_patches (`int`, *optional*, defaults to `0`):
            The stop head is ignored before this many patches.
        temperature (`float`, *optional*):
            Sampling temperature of rollouts (the noise each DDPM step adds is scaled by it; 1 = the model's own
            distribution, 0 = only the starting noise is random). `None` takes the policy's own setting
            ([`~ardm_trl.models.ardm.sampling_settings`]: its `generation_config`, then its config).
        num_inference_steps (`int`, *optional*):
            Denoising steps per patch in rollouts (`None`: the policy's setting, 16 by default).
        lm_guidance_scale (`float`, *optional*):
            LM guidance weight `w`, in rollouts and in the loss (the paper always enables it with `w = 2`, App. B.2;
            `None`: the policy's setting). The trained policy is saved with these sampling settings in its
            `generation_config`, so it samples by default the way it was trained.

        > Rewards

        reward_weights (`list[float]`, *optional*):
            Weights of the reward functions (all 1 by default).
        group_normalize (`bool`, *optional*, defaults to `False`):
            Per-prompt reward normalisation over the `num_generations` samples (Sec. 4.3), used for the value updates.
        score_logged_steps_only (`bool`, *optional*, defaults to `False`):
            Without online value updates the loss does not use the rewards (only the value model's gradient); `True`
            then scores rollouts only on the steps whose metrics are logged (every `logging_steps`), skipping the
            audio decoding and reward calls of the others. The logged reward is then that of the logged step's
            rollouts. Ignored (every step is scored) with `online_value_update=True`.

        > Loss

        w_kl (`float`, *optional*, defaults to `1.0`):
            Weight of the KL term `||s_theta - s_ref||^2` (Eq. 15). The fixed point is `s_ref + grad V / w_kl`: `w_kl`
            acts as a KL temperature and `w_kl = 1` with the exact soft value is the KL-RFT optimum.
        num_draws (`int`, *optional*, defaults to `4`):
            Random diffusion times `t` per token per step; the reference and value LM passes are done once per
            trajectory and their heads at every draw.
        max_tokens_per_sample (`int`, *optional*):
            If set, at most this many random tokens `n` per trajectory per step (all valid tokens otherwise).

        > Online value update (Alg. 3, lines 4-6)

        online_value_update (`bool`, *optional*, defaults to `False`):
            After each policy step, `value_steps` value-model steps (Alg. 1) on the same rollouts.
        value_steps (`int`, *optional*, defaults to `10`):
            Value steps per policy step (the paper uses 10).
        value_learning_rate (`float`, *optional*, defaults to `1e-5`):
            AdamW learning rate of the value model.
        value_loss_type (`str`, *optional*, defaults to `"mse"`):
            `"mse"` (Eq. 13) or `"exp_mse"` (Eq. 32).
        value_target (`str`, *optional*, defaults to `"reward"`):
            Targets of the online value update: `"reward"` or `"reward_to_go"` (per-token rewards from the reward
            functions' `token_rewards`; see [`ValueConfig`]).
        value_discount (`float`, *optional*, defaults to `1.0`):
            Discount of later tokens in the online update's reward-to-go (see [`ValueConfig`]).

        > Adversarial distribution matching (Sec. 3.4)

        use_adm (`bool`, *optional*, defaults to `False`):
            Train a discriminator (Eq. 17) and add its gradient term (Eq. 18).
        w_adm (`float`, *optional*, defaults to `0.125`):
            Weight `w_A` of the adversarial term (the paper uses 2^-6 and 2^-3).
        discriminator_steps (`int`, *optional*, defaults to `10`):
            Discriminator steps per policy step.
        discriminator_learning_rate (`float`, *optional*, defaults to `1e-5`):
            AdamW learning rate of the discriminator.
        adm_real_max_patches (`int`, *optional*):
            Real (reference-model) samples are cut to their first this-many patches (the paper keeps the first 7 s,
            which drift less).
        adm_reference_samples_per_prompt (`int`, *optional*, defaults to `8`):
            Reference samples drawn per prompt and then reused (the reference is frozen, so each stays an exact draw
            of its distribution): a prompt's rows get fresh reference samples until it holds this many, then reuse
            them in turn ([`ReferenceSampleCache`]). `0` draws new ones at every step.
        adm_reference_cache_size (`int`, *optional*, defaults to `4096`):
            Most reference samples kept in all (per process); the prompts used longest ago are dropped first.
        allow_untrained_value_model (`bool`, *optional*, defaults to `False`):
            Accept a value model whose output layer is still zero (untrained: its gradient is zero). Refused by
            default; useful only with `online_value_update=True`.
    """

    num_generations: int = field(default=4, metadata={"help": "Trajectories per prompt per step."})
    max_patches: int = field(default=64, metadata={"help": "Maximum patches per rollout."})
    min_patches: int = field(default=0, metadata={"help": "Stop head ignored before this many patches."})
    temperature: float | None = field(default=None, metadata={"help": "Rollout temperature (None: the policy's)."})
    num_inference_steps: int | None = field(default=None, metadata={"help": "Denoising steps (None: the policy's)."})
    reward_weights: list[float] | None = field(default=None, metadata={"help": "Weights of the reward functions."})
    group_normalize: bool = field(default=False, metadata={"help": "Per-prompt reward normalisation (Sec. 4.3)."})
    score_logged_steps_only: bool = field(default=False, metadata={"help": "Score rollouts on logged steps only."})
    w_kl: float = field(default=1.0, metadata={"help": "Weight of the KL term (Eq. 15)."})
    max_tokens_per_sample: int | None = field(default=None, metadata={"help": "Random tokens per trajectory."})
    online_value_update: bool = field(default=False, metadata={"help": "Update the value model online (Alg. 3)."})
    value_steps: int = field(default=10, metadata={"help": "Value steps per policy step."})
    value_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the value model."})
    value_loss_type: str = field(default="mse", metadata={"help": "'mse' (Eq. 13) or 'exp_mse' (Eq. 32)."})
    value_target: str = field(default="reward", metadata={"help": "'reward' or 'reward_to_go' (online update)."})
    value_discount: float = field(default=1.0, metadata={"help": "Discount of later tokens in the reward-to-go."})
    use_adm: bool = field(default=False, metadata={"help": "Adversarial distribution matching (Sec. 3.4)."})
    w_adm: float = field(default=0.125, metadata={"help": "Weight w_A of the adversarial term (Eq. 18)."})
    discriminator_steps: int = field(default=10, metadata={"help": "Discriminator steps per policy step."})
    discriminator_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the discriminator."})
    adm_real_max_patches: int | None = field(default=None, metadata={"help": "Cut real samples to this many patches."})
    adm_reference_samples_per_prompt: int = field(default=8, metadata={"help": "Reference samples kept per prompt "
                                                                             "(0: draw new ones every step)."})
    adm_reference_cache_size: int = field(default=4096, metadata={"help": "Most reference samples kept in all."})
    allow_untrained_value_model: bool = field(default=False, metadata={"help": "Accept a zero-initialised value head."})

    def __post_init__(self):
        super().__post_init__()
        if self.num_generations < 1:
            raise ValueError(f"`num_generations` must be >= 1, got {self.num_generations}.")
        if self.group_normalize and self.num_generations < 2:
            raise ValueError("`group_normalize=True` needs `num_generations >= 2` samples per prompt.")
        if self.w_kl < 0 or self.w_adm < 0:
            raise ValueError("`w_kl` and `w_adm` must be >= 0.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature}.")
        if self.value_target not in ("reward", "reward_to_go"):
            raise ValueError(f"`value_target` must be 'reward' or 'reward_to_go', got {self.value_target!r}.")
        if not 0.0 <= self.value_discount <= 1.0:
            raise ValueError(f"`value_discount` must lie in [0, 1], got {self.value_discount}.")
        if self.value_loss_type not in ("mse", "exp_mse"):
            raise ValueError(f"`value_loss_type` must be 'mse' or 'exp_mse', got {self.value_loss_type!r}.")
        positive = {"max_patches": self.max_patches, "value_steps": self.value_steps,
                    "discriminator_steps": self.discriminator_steps, "num_inference_steps": self.num_inference_steps,
                    "max_tokens_per_sample": self.max_tokens_per_sample, "adm_real_max_patches":
                    self.adm_real_max_patches}  # fmt: skip
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}.")
        if self.adm_reference_samples_per_prompt < 0 or (
            self.adm_reference_samples_per_prompt > self.adm_reference_cache_size
        ):
            raise ValueError(
                "Need 0 <= adm_reference_samples_per_prompt <= adm_reference_cache_size, got "
                f"{self.adm_reference_samples_per_prompt} and {self.adm_reference_cache_size}."
            )
        if not 0 <= self.min_patches <= self.max_patches:
            raise ValueError(f"`min_patches` must lie in [0, max_patches={self.max_patches}], got {self.min_patches}.")
        if self.reward_weights is not None and not all(math.isfinite(w) for w in self.reward_weights):
            raise ValueError(f"`reward_weights` must be finite numbers, got {self.reward_weights}.")
        if self.value_learning_rate <= 0 or self.discriminator_learning_rate <= 0:
            raise ValueError("`value_learning_rate` and `discriminator_learning_rate` must be > 0.")


__all__ = ["VGPOConfig"]

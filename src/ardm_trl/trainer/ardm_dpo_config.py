"""Configuration of the ARDM-DPO trainer (Diffusion-DPO per continuous token of an autoregressive diffusion model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .speech_rl_config import ARDMRLConfig

LOSS_TYPES = ("sigmoid", "ipo")


@dataclass
class ARDMDPOConfig(ARDMRLConfig):
    r"""
    Configuration of [`ARDMDPOTrainer`]. The optimiser defaults follow the VGPO paper's Sec. 4.1 (AdamW, learning rate
    1e-6, betas (0.9, 0.95), weight decay 0.01), as for [`VGPOConfig`]. `per_device_train_batch_size` counts pairs.

    Parameters (beyond [`ARDMRLConfig`]: `peft_modules_to_save`, the paper's optimiser defaults):
        > Loss

        beta (`float`, *optional*, defaults to `200.0`):
            Inverse temperature of the DPO loss, applied to the difference `d` of summed per-token denoising errors
            (see `docs/ardm_dpo_trainer.md`). With uniform time weighting `beta` equals TRL's (log-likelihood) beta
            times `T / 2` (`T` = `num_train_timesteps`). The VGPO paper's DPO baseline used 200 (Task A) and 1600
            (Task B) in its own normalisation.
        loss_type (`str`, *optional*, defaults to `"sigmoid"`):
            `"sigmoid"`: `-log sigmoid(-beta * d)` (DPO); `"ipo"`: `(-d - 1 / (2 * beta))^2` (TRL's IPO form with
            logits `-d`).
        num_draws (`int`, *optional*, defaults to `4`):
            Random `(t, eps)` per token per step; the errors are averaged over draws. Policy and reference use the same
            draws; chosen and rejected tokens at the same position `n` share their draws.
        lm_guidance_scale (`float`, *optional*):
            LM guidance weight `w` of the predictions in the loss (`pred_u + w (pred_c - pred_u)`), as in VGPO; `1` is
            the conditional model. `None` takes the policy's sampling setting
            ([`~ardm_trl.models.ardm.sampling_settings`]), the weight its preference pairs were sampled with.

        > Reference

        precompute_ref_log_probs (`bool`, *optional*, defaults to `False`):
            Compute the reference's denoising errors once, before training, at draws fixed per example (seeded by
            `seed` and the example's index), and reuse them every epoch (no reference pass in training). The policy is
            then evaluated at the same fixed draws, so `kl` is not logged.
    """

    beta: float = field(default=200.0, metadata={"help": "Inverse temperature of the DPO loss (on summed errors)."})
    loss_type: str = field(default="sigmoid", metadata={"help": "'sigmoid' (DPO) or 'ipo'."})
    precompute_ref_log_probs: bool = field(
        default=False, metadata={"help": "Reference errors precomputed once at draws fixed per example."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"`loss_type` must be one of {LOSS_TYPES}, got {self.loss_type!r}.")
        if self.beta <= 0:
            raise ValueError(f"`beta` must be > 0, got {self.beta}.")


__all__ = ["ARDMDPOConfig"]

"""The ARDM interface the trainers, value guidance and Best-of-K rely on: what a differently built ARDM (another
LM, another diffusion head) must provide to be trained by VGPO / ARDM-DPO, guided by a value model and ranked by
Best-of-K."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["ARDMProtocol", "check_ardm"]


@runtime_checkable
class ARDMProtocol(Protocol):
    """An autoregressive diffusion model over latent patches.

    - `config`: `latent_dim`, `patch_size`, `patch_dim`, `text_vocab_size`, `text_pad_token_id`, `scheduler_config`
      (the value model and the discriminator are checked against these);
    - `noise_schedule`: a [`~models.ardm.NoiseSchedule`] (`alpha_sigma`, `to_epsilon`, `add_score`, ...);
    - `patchify(latents, latents_mask) -> (patches (B, N, P*D), patch_mask (B, N))`;
    - `compute_lm_states(text_input_ids, latents, ...) -> ARDMStates` (one teacher-forced LM pass);
    - `forward(..., draws=NoiseDraws, lm_guidance_scale=w)` returning `.head_prediction` `(M, K, P*D)`: the (LM-guided)
      head at arbitrary `(n, t, x_n^t)` from one LM pass; the trainers call the model, so DDP / DeepSpeed see a
      forward;
    - `generate(text_input_ids, ..., value_model=, value_guidance_scale=, generator=)` returning `latents`,
      `latents_mask`, `num_patches`, `stopped`, `diverged`.

    [`ARDMForSpeechSynthesis`] implements it; a subclass with another head only replaces `head_prediction`'s module
    (same shapes), see `docs/bring_your_own_model.md`.
    """

    config: Any

    @property
    def noise_schedule(self) -> Any: ...

    def patchify(self, latents: torch.Tensor, latents_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def compute_lm_states(self, text_input_ids: torch.Tensor, latents: torch.Tensor, *args: Any, **kwargs: Any) -> Any: ...

    def generate(self, text_input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


_CONFIG_FIELDS = ("latent_dim", "patch_size", "patch_dim", "text_vocab_size", "text_pad_token_id", "scheduler_config")


def check_ardm(model: Any, role: str = "model") -> None:
    """Raise `TypeError` naming what `model` (PEFT-wrapped or not) lacks of [`ARDMProtocol`]."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    missing = [name for name in ("noise_schedule", "patchify", "compute_lm_states", "generate")
               if not hasattr(base, name)]  # fmt: skip
    config = getattr(base, "config", None)
    missing += [f"config.{name}" for name in _CONFIG_FIELDS if not hasattr(config, name)]
    if missing:
        raise TypeError(
            f"The {role} ({type(base).__name__}) is not an ARDM: it lacks {', '.join(missing)}. The ARDM trainers "
            "need the interface of `ardm_trl.models.ardm.ARDMProtocol` (e.g. an `ARDMForSpeechSynthesis` or a "
            "subclass with its own head); for a codec-token causal LM use `DiffROTrainer`."
        )

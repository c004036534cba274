"""Sampling from an ARDM: incremental LM with KV cache, a diffusers sampler per patch, LM guidance with both branches
batched, optional value guidance (VGPO Alg. 2), stopping by the stop head or a maximum length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers.utils import ModelOutput, logging

from .backbone import IncrementalLM
from .diffusion import build_scheduler, tempered_step

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

    from .modeling_ardm import ARDMValueModel

logger = logging.get_logger(__name__)

SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "lm_guidance_scale": 2.0,
    "num_inference_steps": 16,
    "max_patches": 512,
    "min_patches": 0,
    "stop_threshold": 0.5,
}
"""The settings that say how an ARDM samples, with the defaults used when neither the call, the model's
`generation_config` nor its config sets them."""


def sampling_settings(model: Any, **overrides: Any) -> dict[str, Any]:
    """How `model` samples: every key of `SAMPLING_DEFAULTS`, taken from `overrides` where given (not `None`), else
    from `model.generation_config` (saved with the model as `generation_config.json`), else from `model.config`, else
    the default. Rollouts, value data, preference data, Best-of-K and evaluation all sample through this, so a model
    is trained and evaluated on the distribution it is used with.

    Args:
        model: an ARDM (or a peft model of one).
        overrides: settings that take precedence (keys of `SAMPLING_DEFAULTS`; `None` means "not given").

    Returns:
        `dict[str, Any]`: the resolved settings, ready for `model.generate(**settings)`.
    """
    unknown = set(overrides) - set(SAMPLING_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown sampling settings {sorted(unknown)}; known: {sorted(SAMPLING_DEFAULTS)}.")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    generation_config = getattr(base, "generation_config", None)
    settings = {}
    for key, default in SAMPLING_DEFAULTS.items():
        value = overrides.get(key)
        if value is None and generation_config is not None and not getattr(generation_config, "_from_model_config", False):
            value = getattr(generation_config, key, None)
        if value is None:
            value = getattr(base.config, key, None)
        settings[key] = default if value is None else value
    return settings


def set_sampling_settings(model: Any, **settings: Any) -> None:
    """Record how `model` samples in its `generation_config` (saved with it by `save_pretrained`), so that
    [`sampling_settings`] and `generate` use these settings by default from now on."""
    from transformers import GenerationConfig

    unknown = set(settings) - set(SAMPLING_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown sampling settings {sorted(unknown)}; known: {sorted(SAMPLING_DEFAULTS)}.")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = getattr(base, "generation_config", None)
    kept = {} if current is None or getattr(current, "_from_model_config", False) else current.to_diff_dict()
    kept.pop("transformers_version", None)
    values = {**kept, **{k: v for k, v in settings.items() if v is not None}}
    base.generation_config = GenerationConfig(**{**values, "do_sample": True})


@dataclass
class ARDMGenerationOutput(ModelOutput):
    """Output of [`ARDMGenerationMixin.generate`].

    Args:
        latents (`torch.FloatTensor` of shape `(B, F, D)`): generated frames (`F = num_patches.max() * P`), zeros after
            each sample's end.
        latents_mask (`torch.BoolTensor` of shape `(B, F)`): valid frames.
        num_patches (`torch.LongTensor` of shape `(B,)`): generated patches per sample.
        stopped (`torch.BoolTensor` of shape `(B,)`): True where the sample ended before `max_patches` (the stop
            head, or divergence).
        diverged (`torch.BoolTensor` of shape `(B,)`): True where the sample was ended because its latents became
            non-finite (the patches before are kept).
    """

    latents: torch.FloatTensor | None = None
    latents_mask: torch.BoolTensor | None = None
    num_patches: torch.LongTensor | None = None
    stopped: torch.BoolTensor | None = None
    diverged: torch.BoolTensor | None = None


class ARDMGenerationMixin:
    """Adds `generate` (and the per-patch sampler it runs, `denoise_patches`) to [`ARDMForSpeechSynthesis`]."""

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path,
                             cache_dir=None, force_download=False, proxies=None, local_files_only=False, token=None,
                             revision=None, subfolder="", trust_remote_code=None, **kwargs) -> None:  # fmt: skip
        """Called by `from_pretrained`: load the sampling settings saved beside the weights (`generation_config.json`,
        see [`sampling_settings`]); transformers does this only for `GenerationMixin` models."""
        from transformers import GenerationConfig

        if generation_config is not None:
            self.generation_config = generation_config
            return
        try:
            self.generation_config = GenerationConfig.from_pretrained(
                pretrained_model_name_or_path, cache_dir=cache_dir, force_download=force_download, proxies=proxies,
                local_files_only=local_files_only, token=token, revision=revision, subfolder=subfolder)  # fmt: skip
        except OSError:
            pass  # no generation_config.json: the model's config holds the sampling defaults

    def denoise_patches(
        self,
        hidden: torch.Tensor,
        unconditional_hidden: torch.Tensor | None,
        previous_patches: torch.Tensor,
        noise: torch.Tensor,
        scheduler: SchedulerMixin,
        lm_guidance_scale: float,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        score_correction: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sample one patch per row from the head: the reverse process of `scheduler` (its timesteps already set)
        from the starting `noise` `(M, P*D)`, with LM guidance and the sampling `temperature`
        ([`~models.ardm.diffusion.tempered_step`]). `score_correction(prediction, noisy, timesteps)`, if given, edits
        each prediction before the step (value guidance). Used by `generate` and by the teacher-forced diagnostics of
        `ardm_trl.evaluation`."""
        sample = noise * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            timesteps = torch.full(sample.shape[:1], int(t), device=sample.device, dtype=torch.long)
            model_input = scheduler.scale_model_input(sample, t)
            prediction = self.guided_prediction(hidden, unconditional_hidden, previous_patches, model_input, timesteps,
                                                lm_guidance_scale)  # fmt: skip
            if score_correction is not None:
                prediction = score_correction(prediction, model_input, timesteps)
            sample = tempered_step(scheduler, prediction, t, sample, temperature, generator)
        return sample

    @torch.no_grad()
    def generate(
        self,
        text_input_ids: torch.LongTensor,
        text_attention_mask: torch.Tensor | None = None,
        prompt_latents: torch.FloatTensor | None = None,
        prompt_latents_mask: torch.Tensor | None = None,
        max_patches: int | None = None,
        min_patches: int | None = None,
        num_inference_steps: int | None = None,
        lm_guidance_scale: float | None = None,
        scheduler: SchedulerMixin | None = None,
        value_model: ARDMValueModel | None = None,
        value_guidance_scale: float = 0.0,
        stop_threshold: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        temperature: float | None = None,
    ) -> ARDMGenerationOutput:
        r"""
        Sample latents for a batch of texts (of different lengths) and optional voice prompts.

        Every sampling setting left at `None` comes from [`sampling_settings`]: the model's `generation_config`, then
        its config (the defaults below are those of a model that sets neither).

        Args:
            text_input_ids (`torch.LongTensor` of shape `(B, T)`), text_attention_mask (`(B, T)`, *optional*):
                the texts, padded on either side.
            prompt_latents (`(B, Fp, D)`, *optional*), prompt_latents_mask (`(B, Fp)`, *optional*): voice prompts.
            max_patches (`int`, *optional*, defaults to `512`): length limit.
            min_patches (`int`, *optional*, defaults to `0`): the stop head is ignored before this many patches.
            num_inference_steps (`int`, *optional*, defaults to `16`): denoising steps.
            lm_guidance_scale (`float`, *optional*, defaults to `2`): LM guidance weight `w >= 0`; `w = 1` is exactly
                the conditional model.
            scheduler (`diffusers.SchedulerMixin`, *optional*): the sampler (any diffusers scheduler built for this
                model's noise schedule, e.g. `DDIMScheduler.from_config(model.config.scheduler_config)`); DDPM from
                `config.scheduler_config` by default.
            value_model ([`ARDMValueModel`], *optional*), value_guidance_scale (`float`, defaults to `0`): value-guided
                sampling (VGPO Alg. 2): the score becomes `s_guided + lambda * grad V(x_<n, x_n^t)`.
            stop_threshold (`float`, *optional*, defaults to `0.5`).
            generator (`torch.Generator`, *optional*): makes sampling reproducible.
            use_cache (`bool`, defaults to `True`): KV cache; `False` recomputes the whole prefix at every patch.
            temperature (`float`, *optional*, defaults to `1.0`): scales the noise each denoising step adds (MAR's
                sampling temperature, [`~models.ardm.diffusion.tempered_step`]; DDPM samplers only). `1` samples
                the model's distribution; lower values trade diversity for samples nearer the head's conditional
                mean (see `docs/vgpo_trainer.md` for what fine-tuning means at a temperature below 1).
        """
        config = self.config
        settings = sampling_settings(self, max_patches=max_patches, min_patches=min_patches,
                                     num_inference_steps=num_inference_steps, lm_guidance_scale=lm_guidance_scale,
                                     stop_threshold=stop_threshold, temperature=temperature)  # fmt: skip
        guidance, max_patches = settings["lm_guidance_scale"], settings["max_patches"]
        min_patches, threshold, temperature = settings["min_patches"], settings["stop_threshold"], settings["temperature"]
        num_inference_steps = settings["num_inference_steps"]
        if guidance < 0:
            raise ValueError(f"`lm_guidance_scale` must be >= 0 (1 = conditional model), got {guidance}.")
        if temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
        if guidance != 1.0 and config.cfg_dropout_prob == 0:
            logger.warning_once(
                f"`lm_guidance_scale={guidance}` on a model trained with `cfg_dropout_prob=0`: its unconditional "
                "branch was never trained, so guidance extrapolates towards an untrained prediction. Sample with "
                "`lm_guidance_scale=1` (no guidance), or train with condition dropout."
            )
        use_value = value_model is not None and value_guidance_scale != 0.0
        if use_value and value_model.config.patch_dim != config.patch_dim:
            raise ValueError(
                f"The value model's patches have {value_model.config.patch_dim} numbers but the policy's have "
                f"{config.patch_dim}: build the value model from this policy with `ARDMValueModel.from_ardm(policy)`."
            )
        batch = text_input_ids.shape[0]
        device = text_input_ids.device
        if text_attention_mask is None:
            text_attention_mask = text_input_ids.ne(config.text_pad_token_id)
        prompt_patches = prompt_mask = None
        if prompt_latents is not None:
            prompt_patches, prompt_mask = self.patchify(prompt_latents, prompt_latents_mask)

        # 1. prefill the LM; conditional and unconditional (text -> null embedding) branches batched
        branched = guidance != 1.0
        copies = 2 if branched else 1
        drop_text = torch.zeros(batch * copies, dtype=torch.bool, device=device)
        drop_text[batch:] = True

        def repeat(x):
            return None if x is None else torch.cat([x] * copies)

        prefix, prefix_mask = self.backbone.build_prefix(
            repeat(text_input_ids), repeat(text_attention_mask), repeat(prompt_patches), repeat(prompt_mask), drop_text
        )
        lm = IncrementalLM(self.backbone, prefix, prefix_mask, use_cache)
        value_lm = None
        if use_value:
            value_prefix = value_model.backbone.build_prefix(text_input_ids, text_attention_mask, prompt_patches,
                                                             prompt_mask)
            value_lm = IncrementalLM(value_model.backbone, *value_prefix, use_cache)

        previous = torch.zeros(batch, config.patch_dim, device=device, dtype=prefix.dtype)
        if prompt_patches is not None:
            last = prompt_mask.long().cumsum(-1).argmax(-1)
            picked = prompt_patches[torch.arange(batch, device=device), last]
            previous = torch.where(prompt_mask.any(-1)[:, None], picked, previous)

        scheduler = scheduler if scheduler is not None else build_scheduler(config.scheduler_config)
        scheduler.set_timesteps(num_inference_steps, device=device)
        schedule = self.noise_schedule
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        ended_diverged = torch.zeros(batch, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        patches = []
        for step in range(max_patches):
            hidden = lm.hidden  # (copies * B, H)
            # 2. stop head on the conditional state
            if step >= min_patches:
                stop_prob = torch.sigmoid(self.stop_logits(hidden[:batch]).float())
                finished |= stop_prob > threshold
            if finished.all():
                break
            # 3. denoise the next patch
            noise = torch.randn(batch, config.patch_dim, generator=generator, device=device, dtype=prefix.dtype)
            score_correction = None
            if use_value:

                def score_correction(prediction, model_input, timesteps, previous=previous):
                    # 4. value guidance, VGPO Eq. (10) / Alg. 2: s <- s + lambda * grad V (one head backward)
                    _, value_grad = value_model.value_and_grad(value_lm.hidden, previous, model_input, timesteps)
                    return schedule.add_score(prediction, model_input, timesteps, value_guidance_scale * value_grad)

            sample = self.denoise_patches(hidden[:batch], hidden[batch:] if branched else None, previous, noise,
                                          scheduler, guidance, generator, temperature, score_correction)  # fmt: skip
            # 5. a sample that diverged (non-finite values, e.g. an undertrained model far outside its training
            # distribution) ends here rather than passing NaN to the codec and the reward functions
            diverged = ~torch.isfinite(sample).all(dim=-1) & ~finished
            if diverged.any():
                logger.warning("Generation diverged (non-finite latents) for %d sample(s) at patch %d; ending them.",
                               int(diverged.sum()), step)
                finished |= diverged
                ended_diverged |= diverged
                sample = torch.where(torch.isfinite(sample), sample, torch.zeros_like(sample))
            patches.append(sample)
            lengths += (~finished).long()
            previous = sample
            if step + 1 < max_patches:
                # 6. feed the new patch to the LM(s)
                lm.append(torch.cat([sample] * copies))
                if value_lm is not None:
                    value_lm.append(sample)

        num = len(patches)
        if num:
            stacked = torch.stack(patches, dim=1)  # (B, N, PD)
        else:
            stacked = torch.zeros(batch, 0, config.patch_dim, device=device, dtype=prefix.dtype)
        patch_mask = torch.arange(num, device=device)[None] < lengths[:, None]
        stacked = stacked * patch_mask[..., None]
        latents = stacked.reshape(batch, num * config.patch_size, config.latent_dim)
        return ARDMGenerationOutput(
            latents=latents,
            latents_mask=patch_mask.repeat_interleave(config.patch_size, dim=1),
            num_patches=lengths,
            stopped=finished,
            diverged=ended_diverged,
        )


__all__ = [
    "SAMPLING_DEFAULTS", "ARDMGenerationMixin", "ARDMGenerationOutput", "sampling_settings", "set_sampling_settings",
]

"""Value-Guided Policy Optimisation (VGPO paper, Algorithm 3, Eq. 14-18) for autoregressive diffusion models."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedModel, TrainerCallback
from transformers.utils import logging

from ..data.collators import pad_sequences
from ..models.ardm import (
    ARDMDiscriminator,
    ARDMForSpeechSynthesis,
    ARDMValueModel,
    check_ardm,
    sampling_settings,
    set_sampling_settings,
)
from ..zero3 import zero3_init_disabled
from .ardm_utils import (
    NoiseDraws,
    RewardFunc,
    all_reduce_gradients,
    ardm_kl,
    draw_noisy_tokens,
    group_normalize,
    reward_func_name,
)
from .base import check_finite, unwrap_peft
from .papers import VGPO
from .reference_cache import ReferenceSampleCache, prompt_key
from .rollout import (
    AudioDecoder,
    Rollouts,
    generate_rollouts,
    prepare_prompt_batch,
    score_rollout_tokens,
    score_rollouts,
)
from .speech_rl_trainer import SpeechRLTrainer
from .value_trainer import rewards_to_go, value_training_loss
from .vgpo_config import VGPOConfig

logger = logging.get_logger(__name__)

VALUE_MODEL_NAME = "value_model"
DISCRIMINATOR_NAME = "discriminator"


class VGPOTrainer(SpeechRLTrainer):
    r"""
    Trainer for Value-Guided Policy Optimisation (VGPO), an actor-critic RL fine-tuning method for autoregressive
    diffusion models.

    Each step (Alg. 3): sample `num_generations` trajectories per prompt from the current policy (LM guidance on),
    score them with `reward_funcs`, and at random `(n, t)` minimise, in epsilon units (the score loss times
    `sigma_t^2`),

        w_kl * ||eps_theta - eps_ref||^2 + ||eps_theta - sg(eps_theta) + sigma_t grad V||^2   [+ w_A * (same with grad D)]

    whose fixed point is `s_theta = s_ref + grad V / w_kl`. Optionally the value model is updated online on the same
    rollouts (Alg. 1) and a discriminator is trained against reference-model samples (ADM, Eq. 17-18).

    Args:
        model (`ARDMForSpeechSynthesis` or `str`): the policy (or a path / Hub id for `AutoModel.from_pretrained`).
        value_model (`ARDMValueModel`): a trained value model of the policy's reference (`ARDMValueModel.from_ardm`
            then [`ValueTrainer`]).
        reward_funcs (`RewardFunc` or `list[RewardFunc]`): callables `f(prompts=, completions=, **columns)` returning
            one float (or `None`) per completion; see `docs/custom_rewards.md`.
        args ([`VGPOConfig`], *optional*).
        train_dataset (`datasets.Dataset`): rows with the target text in `prompt` (or `text`), `text_input_ids` (or a
            `processing_class` to make them), optional `prompt_latents` `(Fp, D)`, and any extra columns for rewards.
        eval_dataset (`datasets.Dataset`, *optional*).
        processing_class (*optional*): text tokenizer (callable or with `encode`) if rows lack `text_input_ids`.
        ref_model (`ARDMForSpeechSynthesis`, *optional*): the reference `mu`. Defaults to a frozen copy of the initial
            policy, or, with `peft_config`, the policy with adapters disabled (no second copy).
        discriminator (`ARDMDiscriminator`, *optional*): for ADM; built from the policy when `use_adm` and missing.
        audio_decoder (*optional*): a codec with `decode_list` and `sampling_rate`; rollouts are decoded once and
            reward functions receive `audio=` and `sampling_rate=`.
        peft_config (`peft.PeftConfig`, *optional*): LoRA on the backbone (e.g. `target_modules=["q_proj", "v_proj"]`).
        callbacks, optimizers: as in [`~transformers.Trainer`].
    """

    _trainer_name = "VGPO"
    _paper = VGPO
    _tag_names = ["ardm_trl", "vgpo", "reinforcement-learning", "text-to-speech"]

    def __init__(
        self,
        model: ARDMForSpeechSynthesis | str,
        value_model: ARDMValueModel,
        reward_funcs: RewardFunc | Sequence[RewardFunc],
        args: VGPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: Any = None,
        ref_model: ARDMForSpeechSynthesis | None = None,
        discriminator: ARDMDiscriminator | None = None,
        audio_decoder: AudioDecoder | None = None,
        peft_config: Any = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
    ):
        args = args or VGPOConfig(output_dir="vgpo-model")
        if discriminator is not None and not args.use_adm:
            raise ValueError("A `discriminator` was given but `use_adm=False`: set `use_adm=True` to train with "
                             "adversarial distribution matching, or leave the discriminator out.")  # fmt: skip
        self.value_model = value_model
        self.discriminator = discriminator if args.use_adm else None
        self.audio_decoder = audio_decoder
        super().__init__(model, args, reward_funcs=reward_funcs, ref_model=ref_model, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, peft_config=peft_config,
                         callbacks=callbacks, optimizers=optimizers)  # fmt: skip
        device = self.accelerator.device
        if args.use_adm and self.discriminator is None:
            source = self._policy if self.ref_model is None else self.accelerator.unwrap_model(self.ref_model)
            self.discriminator = ARDMDiscriminator.from_ardm(source)
        self.value_model.to(device)
        self.value_optimizer = None
        if args.online_value_update:
            self.value_model.requires_grad_(True)
            self.value_optimizer = torch.optim.AdamW(self.value_model.parameters(), lr=args.value_learning_rate,
                                                     betas=(args.adam_beta1, args.adam_beta2),
                                                     weight_decay=args.weight_decay)
        else:
            self.value_model.requires_grad_(False)
        self.discriminator_optimizer = None
        if self.discriminator is not None:
            self.discriminator.to(device)
            self.discriminator_optimizer = torch.optim.AdamW(
                self.discriminator.parameters(), lr=args.discriminator_learning_rate,
                betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.weight_decay)
        self.reference_cache = None
        if self.discriminator is not None and args.adm_reference_samples_per_prompt > 0:
            self.reference_cache = ReferenceSampleCache(args.adm_reference_samples_per_prompt,
                                                        args.adm_reference_cache_size)  # fmt: skip

    def configure_model(self, model: ARDMForSpeechSynthesis, args: VGPOConfig) -> ARDMForSpeechSynthesis:
        """Check the value model (and discriminator) against the policy before any set-up."""
        check_ardm(model, "policy")
        self._check_compatible(model, self.value_model, "value model")
        if self.value_model.has_untrained_head() and not args.allow_untrained_value_model:
            raise ValueError(
                "The value model's output layer is still at its zero initialisation (`ARDMValueModel.from_ardm` "
                "without training): its gradient is zero and VGPO would train on the KL term alone. Train it first "
                "(`ValueTrainer` or `train_value_model`, VGPO Alg. 1), or set `allow_untrained_value_model=True` "
                "together with `online_value_update=True` to learn it during the run."
            )
        if self.discriminator is not None:
            self._check_compatible(model, self.discriminator, "discriminator")
        return model

    @staticmethod
    def _check_compatible(policy: PreTrainedModel, other: PreTrainedModel, name: str) -> None:
        policy_config, other_config = unwrap_peft(policy).config, other.config
        # the value gradient is read at the policy's noisy states, timesteps and text ids: all four must agree
        for key in ("latent_dim", "patch_size", "text_vocab_size", "scheduler_config"):
            if getattr(policy_config, key) != getattr(other_config, key):
                raise ValueError(
                    f"The {name} has {key}={getattr(other_config, key)} but the policy has "
                    f"{key}={getattr(policy_config, key)}: build it from the policy with `from_ardm(policy)`."
                )

    # ------------------------------------------------------------------ rollouts
    def _generation_kwargs(self) -> dict[str, Any]:
        """How rollouts are sampled: `args` where set, else the policy's own settings ([`sampling_settings`])."""
        args = self.args
        return sampling_settings(self._policy, max_patches=args.max_patches, min_patches=args.min_patches,
                                 num_inference_steps=args.num_inference_steps, temperature=args.temperature,
                                 lm_guidance_scale=args.lm_guidance_scale)  # fmt: skip

    @property
    def _lm_guidance_scale(self) -> float:
        return self._generation_kwargs()["lm_guidance_scale"]

    def _prepare_inputs(self, inputs: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(inputs, dict) and "rollouts" in inputs:  # already rolled out (see training_step)
            return inputs
        return {"rollouts": self._generate_and_score(inputs)}

    def _generate_and_score(self, rows: list[dict[str, Any]]) -> Rollouts:
        """Sample `num_generations` trajectories per prompt row from the current policy and score them. Raises (before
        any update) if a reward function misbehaves."""
        config = self._policy.config
        batch = prepare_prompt_batch(rows, self.args.num_generations, self.processing_class,
                                     config.text_pad_token_id, config.patch_size).to(self.accelerator.device)
        start = time.perf_counter()
        with self.sampling_policy() as policy:
            was_training = policy.training
            policy.eval()
            with self.accelerator.autocast():  # sample in the run's mixed precision; rewards see full-precision audio
                rollouts = generate_rollouts(policy, batch, **self._generation_kwargs())
            policy.train(was_training)
        generated = time.perf_counter()
        mode = "train" if self.model.training else "eval"
        lengths = rollouts.latents_mask.sum(-1).float() / config.patch_size
        self._record_metric("completions/mean_patches", lengths.mean(), mode)
        self._record_metric("time/rollout", generated - start, mode)
        if not self._scores_this_step():
            return rollouts
        if self.args.online_value_update and self.args.value_target == "reward_to_go":
            rollouts = score_rollout_tokens(rollouts, self.reward_funcs, self.reward_weights, self.audio_decoder,
                                            config.patch_size)  # fmt: skip
        else:
            rollouts = score_rollouts(rollouts, self.reward_funcs, self.reward_weights, self.audio_decoder)
        scored = time.perf_counter()
        for k, func in enumerate(self.reward_funcs):
            column = rollouts.rewards_per_func[:, k]
            column = column[~torch.isnan(column)]
            name = reward_func_name(func)
            self._record_metric(f"rewards/{name}/mean", column.mean() if column.numel() else float("nan"), mode)
            self._record_metric(f"rewards/{name}/std", column.std() if column.numel() > 1 else 0.0, mode)
        self._record_metric("reward", rollouts.rewards.mean(), mode)
        self._record_metric("reward_std", rollouts.rewards.std() if rollouts.rewards.numel() > 1 else 0.0, mode)
        self._record_metric("time/reward", scored - generated, mode)
        self._record_metric("samples_per_second", lengths.numel() / max(scored - start, 1e-9), mode)
        return rollouts

    def _scores_this_step(self) -> bool:
        """Whether this step's rollouts are scored: always when the online value update needs the rewards, else
        every step or, with `score_logged_steps_only`, the first step (a misbehaving reward fails before any update)
        and the steps whose metrics are logged."""
        args = self.args
        if (args.online_value_update or not args.score_logged_steps_only or self.state.global_step == 0
                or not self.model.training):  # evaluation always scores
            return True
        return (self.state.global_step + 1) % max(int(self.state.logging_steps or 1), 1) == 0

    def _value_targets(self, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The online value update's targets: the (group-normalised) rewards, and with `value_target="reward_to_go"`
        the per-token rewards-to-go `(B, N)`."""
        rewards = rollouts.rewards
        if self.args.group_normalize:
            rewards = group_normalize(rewards, rollouts.group_ids)
        if rollouts.token_rewards is None:
            return rewards, None
        targets = rewards_to_go([t.tolist() for t in rollouts.token_rewards], rollouts.group_ids.tolist(),
                                self.args.group_normalize, self.args.value_discount)  # fmt: skip
        padded, _ = pad_sequences([torch.tensor(t, dtype=torch.float32) for t in targets])
        return rewards, padded.to(rewards.device)

    # ------------------------------------------------------------------ loss
    @staticmethod
    def _model_inputs(rollouts: Rollouts) -> dict[str, Any]:
        return dict(rollouts.model_inputs(), latents=rollouts.latents, latents_mask=rollouts.latents_mask)

    @torch.no_grad()
    def _critic_gradient(self, critic: ARDMValueModel, rollouts: Rollouts, draws: NoiseDraws) -> torch.Tensor:
        """`grad_{x_n^t}` of a value model / discriminator at every draw: one LM pass, one head backward (in the run's
        mixed precision, like the policy's forward)."""
        with self.accelerator.autocast():
            states = critic.compute_lm_states(**self._model_inputs(rollouts))
            _, grad = critic.value_and_grad(draws.gather(states.hidden), draws.gather(states.previous_patches),
                                            draws.noisy, draws.timesteps)
        return grad

    def policy_and_reference_epsilon(
        self, model: nn.Module, rollouts: Rollouts, draws: NoiseDraws
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The policy's and the reference's epsilon predictions at `draws` (one LM pass each, LM guidance), and
        `sigma_t` of each draw."""
        schedule, guidance = self._policy.noise_schedule, self._lm_guidance_scale
        model_inputs = self._model_inputs(rollouts)
        prediction = model(**model_inputs, draws=draws, lm_guidance_scale=guidance).head_prediction
        epsilon = schedule.to_epsilon(prediction, draws.noisy, draws.timesteps)
        with torch.no_grad(), self.reference() as ref:
            ref_prediction = ref(**model_inputs, draws=draws, lm_guidance_scale=guidance).head_prediction
        ref_epsilon = schedule.to_epsilon(ref_prediction, draws.noisy, draws.timesteps)
        _, sigma = schedule.alpha_sigma(draws.timesteps, draws.noisy)
        return epsilon, ref_epsilon, sigma

    @staticmethod
    def guidance_loss(epsilon: torch.Tensor, sigma: torch.Tensor, critic_grad: torch.Tensor) -> torch.Tensor:
        """Eq. 16 (and Eq. 18 with the discriminator's gradient), times `sigma_t^2`: its gradient moves `epsilon`
        towards `epsilon - sigma_t grad critic`; its value is `mean (sigma_t grad critic)^2`."""
        return (epsilon - epsilon.detach() + sigma * critic_grad).float().pow(2).mean()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """`w_kl * L_KL + L_VG (+ w_adm * L_G)` on the step's rollouts; the terms are the overridable
        [`policy_and_reference_epsilon`], `ardm_kl`, [`guidance_loss`] and `_critic_gradient`."""
        rollouts: Rollouts = inputs["rollouts"]
        args, policy = self.args, self._policy
        patches, patch_mask = policy.patchify(rollouts.latents, rollouts.latents_mask)
        max_tokens = args.max_tokens_per_sample * patches.shape[0] if args.max_tokens_per_sample else None
        draws = draw_noisy_tokens(policy.noise_schedule, patches, patch_mask, args.num_draws, max_tokens)

        # 1-2. policy and reference predictions, value gradient (one LM pass each, heads at every draw)
        epsilon, ref_epsilon, sigma = self.policy_and_reference_epsilon(model, rollouts, draws)
        value_grad = self._critic_gradient(self.value_model, rollouts, draws)
        # 3. Eq. 15 (KL) and Eq. 16 (value guidance), times sigma_t^2: epsilon units
        kl = ardm_kl(epsilon, ref_epsilon)
        guidance_loss = self.guidance_loss(epsilon, sigma, value_grad)
        loss = args.w_kl * kl + guidance_loss
        if self.discriminator is not None:
            # 4. Eq. 18: the adversarial gradient term, grad D in place of grad V
            adversarial_loss = self.guidance_loss(epsilon, sigma, self._critic_gradient(self.discriminator, rollouts,
                                                                                        draws))  # fmt: skip
            loss = loss + args.w_adm * adversarial_loss
            self._record_metric("loss/adversarial", adversarial_loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"VGPO loss is not finite (kl={kl.item():.3g}, value guidance={guidance_loss.item():.3g}): the "
                "teacher-forced pass over the rollouts overflowed. Rollouts far outside the model's training "
                "distribution (e.g. very long samples of an undertrained model) cause this; lower `max_patches` or "
                "the learning rate. No update was applied."
            )
        self._record_metric("kl", kl)
        self._record_metric("loss/kl", kl)
        self._record_metric("loss/value_guidance", guidance_loss)
        self._record_metric("value_grad_norm", (sigma * value_grad).pow(2).sum(-1).sqrt().mean())
        return (loss, {"epsilon": epsilon}) if return_outputs else loss

    # ------------------------------------------------------------------ critic updates
    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()  # before rolling out: a policy loaded in eval mode would file this step's rollout metrics as eval
        inputs = self._prepare_inputs(inputs)
        loss = super().training_step(model, inputs, num_items_in_batch)
        rollouts = inputs["rollouts"]
        with self.accelerator.autocast():  # `bf16` / `fp16` for the critics' updates too (a no-op in full precision)
            if self.value_optimizer is not None:
                self.update_value_model(rollouts)
            if self.discriminator_optimizer is not None:
                self.update_discriminator(rollouts)
        return loss

    def _critic_steps(self, steps_per_policy_step: int) -> int:
        """Critic steps for one micro-batch: `training_step` runs once per micro-batch, so with gradient accumulation
        the configured steps per policy step are shared among the micro-batches (at least one each)."""
        return max(1, round(steps_per_policy_step / self.args.gradient_accumulation_steps))

    def update_value_model(self, rollouts: Rollouts) -> None:
        """Online value update (Alg. 3 lines 4-6): `value_steps` steps of Alg. 1 per policy step on the policy's own
        rollouts."""
        args, value_model = self.args, self.value_model
        rewards, token_targets = self._value_targets(rollouts)
        value_model.train()
        for _ in range(self._critic_steps(args.value_steps)):
            loss, _ = value_training_loss(value_model, value_model, self._model_inputs(rollouts), rewards,
                                          args.value_loss_type, args.num_draws, token_targets=token_targets)
            check_finite(loss, self.state.global_step, "online value loss", "a reward far outside the rest "
                         "(normalise it, e.g. `group_normalize=True`) or too large a `value_learning_rate`.")
            self.value_optimizer.zero_grad()
            loss.backward()
            all_reduce_gradients(value_model, self.accelerator)
            torch.nn.utils.clip_grad_norm_(value_model.parameters(), args.max_grad_norm)
            self.value_optimizer.step()
            self._record_metric("value_loss", loss)
        value_model.eval()

    def _reference_rollouts(self, rollouts: Rollouts) -> Rollouts:
        """ADM's "real" samples for the prompts of `rollouts`: drawn from the frozen reference, through the
        [`ReferenceSampleCache`] when `adm_reference_samples_per_prompt > 0` (only the rows it lacks are sampled)."""
        kwargs = self._generation_kwargs()
        if self.args.adm_real_max_patches:
            kwargs["max_patches"] = min(kwargs["max_patches"], self.args.adm_real_max_patches)
        cache = self.reference_cache
        if cache is None:
            with self.sampling_reference() as ref:
                return generate_rollouts(ref, rollouts, **kwargs)
        keys = [prompt_key(rollouts, i) for i in range(len(rollouts.prompts))]
        rows = cache.rows_to_draw(keys)
        fresh = {}
        if rows:
            with self.sampling_reference() as ref:
                drawn = generate_rollouts(ref, rollouts.select(rows), **kwargs)
            fresh = dict(zip(rows, drawn.completions()))
        self._record_metric("adm/reference_reuse", 1.0 - len(rows) / len(keys))
        padded, mask = pad_sequences(cache.fill(keys, fresh), self._policy.config.patch_size)
        device = rollouts.text_input_ids.device
        return rollouts.with_latents(padded.to(device), mask.to(device))

    def update_discriminator(self, fake: Rollouts) -> None:
        """ADM (Sec. 3.4): least-squares discriminator (Eq. 17), real = reference-model samples (optionally only their
        first `adm_real_max_patches` patches), fake = policy samples."""
        args, disc = self.args, self.discriminator
        real = self._reference_rollouts(fake)
        disc.train()
        for _ in range(self._critic_steps(args.discriminator_steps)):
            scores = {}
            for name, rollouts, target in (("fake", fake, -1.0), ("real", real, 1.0)):
                out = disc(**self._model_inputs(rollouts), num_draws=args.num_draws)
                scores[name] = (out.value, (out.value - target).float().pow(2).mean())
            loss = scores["fake"][1] + scores["real"][1]
            check_finite(loss, self.state.global_step, "discriminator loss", "too large a "
                         "`discriminator_learning_rate`, or non-finite rollouts.")
            self.discriminator_optimizer.zero_grad()
            loss.backward()
            all_reduce_gradients(disc, self.accelerator)
            torch.nn.utils.clip_grad_norm_(disc.parameters(), args.max_grad_norm)
            self.discriminator_optimizer.step()
            self._record_metric("discriminator/loss", loss)
            self._record_metric("discriminator/real_score", scores["real"][0])
            self._record_metric("discriminator/fake_score", scores["fake"][0])
        disc.eval()

    # ------------------------------------------------------------------ saving and resuming
    def _critics(self) -> list[tuple[str, torch.nn.Module | None, torch.optim.Optimizer | None]]:
        return [(VALUE_MODEL_NAME, self.value_model, self.value_optimizer),
                (DISCRIMINATOR_NAME, self.discriminator, self.discriminator_optimizer)]

    def _save_critics(self, folder: str, with_optimizers: bool) -> None:
        if not self.is_world_process_zero():
            return
        for name, module, optimizer in self._critics():
            if module is None:
                continue
            module.save_pretrained(os.path.join(folder, name))
            if with_optimizers and optimizer is not None:
                torch.save(optimizer.state_dict(), os.path.join(folder, name, "optimizer.pt"))

    def _reference_cache_path(self, folder: str) -> str:
        return os.path.join(folder, f"adm_reference_cache_{self.accelerator.process_index}.pt")

    def _save_extra_checkpoint_state(self, folder: str) -> None:
        """The critics with their optimisers, and each process's ADM reference samples (exact resume)."""
        self._save_critics(folder, with_optimizers=True)
        if self.reference_cache is not None:
            os.makedirs(folder, exist_ok=True)
            torch.save(self.reference_cache.state_dict(), self._reference_cache_path(folder))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # the critics' files are checked before any weight is loaded: a checkpoint without them resumes nothing
        for name, module, optimizer in self._critics():
            path = os.path.join(resume_from_checkpoint, name)
            if module is None:
                continue
            needed = [path] + ([os.path.join(path, "optimizer.pt")] if optimizer is not None else [])
            missing = [p for p in needed if not os.path.exists(p)]
            if missing:
                raise FileNotFoundError(
                    f"Checkpoint {resume_from_checkpoint} lacks {', '.join(missing)}: it was saved by a run without "
                    f"this {name.replace('_', ' ')} (or its online updates), so this run cannot resume from it exactly."
                )
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        for name, module, optimizer in self._critics():
            if module is None:
                continue
            path = os.path.join(resume_from_checkpoint, name)
            with zero3_init_disabled():  # the critics are whole (optimised outside DeepSpeed)
                module.load_state_dict(type(module).from_pretrained(path).state_dict())
            if optimizer is not None:
                optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))
        cache_path = self._reference_cache_path(resume_from_checkpoint)
        if self.reference_cache is not None and os.path.isfile(cache_path):
            self.reference_cache.load_state_dict(torch.load(cache_path, weights_only=True))

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        settings = self._generation_kwargs()
        set_sampling_settings(self._policy, temperature=settings["temperature"],
                              lm_guidance_scale=settings["lm_guidance_scale"],
                              num_inference_steps=settings["num_inference_steps"])  # fmt: skip
        super().save_model(output_dir, _internal_call)
        if not _internal_call:
            self._save_critics(output_dir or self.args.output_dir, with_optimizers=False)

    def push_to_hub(self, *args, **kwargs):
        """`Trainer.push_to_hub`, with the value model (and discriminator) saved in `output_dir` first, so the
        upload carries them as `value_model/` (and `discriminator/`) beside the policy."""
        self._save_critics(self.args.output_dir, with_optimizers=False)
        return super().push_to_hub(*args, **kwargs)

    def _model_card_fields(self) -> dict[str, Any]:
        return {"reward_funcs": [reward_func_name(f) for f in self.reward_funcs]}


__all__ = ["VGPOTrainer"]

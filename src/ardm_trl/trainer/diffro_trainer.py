"""DiffRO: Differentiable Reward Optimization for codec-token TTS language models (arXiv 2507.05911)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging
from trl.trainer.utils import disable_dropout_in_model

from ..models.codec_lm import (
    SpeechSamplingOutput,
    SpeechTokenLayout,
    process_speech_logits,
    sample_speech,
    teacher_forced_speech_logits,
)
from .base import check_finite, unwrap_peft
from .diffro_config import DiffROConfig
from .diffro_utils import (
    DifferentiableReward,
    call_differentiable_rewards,
    categorical_entropy,
    categorical_kl,
    straight_through_gumbel_softmax,
)
from .papers import DIFFRO
from .speech_rl_trainer import SpeechRLTrainer

logger = logging.get_logger(__name__)


@dataclass
class DiffRORollout:
    """Speech sampled from the policy (no gradient), with the Gumbel noise kept, and the rows' dataset columns."""

    sample: SpeechSamplingOutput
    prompts: list[str] | None
    columns: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class DiffROReplay:
    """One teacher-forced pass over a rollout.

    `logits` `(B, L, K + 1)`: processed policy logits at the sampled positions (with gradient);
    `soft_tokens` `(B, L, K + 1)`: straight-through Gumbel-Softmax one-hots (forward = the sampled tokens).
    """

    logits: torch.Tensor
    soft_tokens: torch.Tensor


class DiffROTrainer(SpeechRLTrainer):
    """
    Trainer for Differentiable Reward Optimization (DiffRO) of a codec-token TTS language model.

    Each step: (1) **rollout**: sample speech tokens for the batch's texts with the Gumbel-max trick, keeping the
    noise; (2) **replay**: one teacher-forced pass gives the logits of every sampled position, and the same noise
    gives a straight-through Gumbel-Softmax one-hot (hard forward = the sampled tokens, soft backward); (3)
    **rewards**: differentiable reward functions read the soft tokens; (4) **loss**:
    `-sum_i w_i R_i + beta * KL(pi_theta || pi_ref)`, whose reward gradient reaches the policy's logits.

    Args:
        model (`str` or [`~transformers.PreTrainedModel`]):
            The policy, or its path / Hub id (loaded with `AutoModelForCausalLM`): a [`CodecLMForSpeechSynthesis`], or
            any causal LM whose vocabulary holds a block of speech tokens (e.g. a CosyVoice2-style Qwen2), described
            by `speech_token_layout`.
        reward_funcs (`DifferentiableReward` or `list[DifferentiableReward]`):
            Differentiable rewards `reward(soft_tokens, token_mask, **columns) -> Tensor (B,)`, e.g. the
            [`CTCReward`] / [`AttributeReward`] / [`QualityReward`] of a [`TokenRewardModel`]. See the docs for the
            signature. `nn.Module` rewards are moved to the training device and frozen.
        args ([`DiffROConfig`], *optional*): configuration.
        train_dataset / eval_dataset ([`~datasets.Dataset`], *optional*):
            Rows with `text_ids` (text-unit ids, or a `prompt` string plus `processing_class`) and any extra columns
            the rewards read (e.g. `target_rate_level`).
        processing_class (*optional*):
            Tokenizer mapping a `prompt` string to text-unit ids (a callable or an object with `encode`), used when
            rows have no `args.text_column`.
        ref_model ([`~transformers.PreTrainedModel`], *optional*):
            Reference policy. Defaults to the policy with its adapters disabled (with `peft_config`), or a frozen
            copy of the initial policy; unused when `beta == 0`.
        peft_config (`peft.PeftConfig`, *optional*): LoRA (or other PEFT) configuration for the policy.
        callbacks, optimizers: as in [`~transformers.Trainer`].
        speech_token_layout ([`SpeechTokenLayout`] or `dict`, *optional*): where text and speech live in the
            policy's vocabulary. By default the layout saved in the policy's config (`speech_token_layout`), or that
            of a [`CodecLMConfig`]; a given layout is written into the policy's config, so `save_model` keeps it and
            the saved folder trains again without it.
    """

    _trainer_name = "DiffRO"
    _paper = DIFFRO
    _auto_model_class = AutoModelForCausalLM
    _tag_names = ["ardm_trl", "diffro", "text-to-speech"]

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: DifferentiableReward | Sequence[DifferentiableReward],
        args: DiffROConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        ref_model: PreTrainedModel | None = None,
        peft_config=None,
        callbacks=None,
        optimizers=(None, None),
        speech_token_layout: SpeechTokenLayout | dict[str, Any] | None = None,
    ):
        args = args or DiffROConfig(output_dir="diffro_model")
        self._given_layout = speech_token_layout
        super().__init__(model, args, reward_funcs=reward_funcs, ref_model=ref_model, needs_reference=args.beta > 0,
                         train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=processing_class,
                         peft_config=peft_config, callbacks=callbacks, optimizers=optimizers)  # fmt: skip
        for func in self.reward_funcs:
            if isinstance(func, nn.Module):
                func.to(self.accelerator.device).eval().requires_grad_(False)
        self._generator = torch.Generator(device=self.accelerator.device)
        self._generator.manual_seed(args.seed + self.accelerator.process_index)

    def configure_model(self, model: PreTrainedModel, args: DiffROConfig) -> PreTrainedModel:
        """Resolve the speech-token layout (recorded in the config when given) and disable dropout
        (`args.disable_dropout`), so the replay sees the distribution that was sampled. Refuses DeepSpeed ZeRO-3."""
        from transformers.integrations import is_deepspeed_zero3_enabled

        if is_deepspeed_zero3_enabled():
            # the Gumbel-Softmax rollout multiplies soft tokens by the embedding matrix, read outside forward hooks
            raise ValueError("DiffROTrainer does not support DeepSpeed ZeRO-3 (its differentiable rollout reads the "
                             "embedding weights directly): use ZeRO-2 (`deepspeed_zero2.yaml`) or DDP.")
        self.speech_token_layout = SpeechTokenLayout.from_model(model, self._given_layout)
        if self._given_layout is not None:
            model.config.speech_token_layout = self.speech_token_layout.to_dict()
        for func, name in zip(self.reward_funcs, self.reward_names):
            codebook = getattr(getattr(getattr(func, "model", None), "config", None), "codebook_size", None)
            if codebook is not None and codebook != self.speech_token_layout.codebook_size:
                raise ValueError(
                    f"Reward {name!r} reads {codebook} speech codes but the policy has "
                    f"{self.speech_token_layout.codebook_size}: train a token reward model on the policy's own codes "
                    "(`TokenRewardTrainer`, see the token reward docs)."
                )
        if args.disable_dropout:
            disable_dropout_in_model(model)
        return model

    # ------------------------------------------------------------------ 1. rollout
    def _prompt_text_ids(self, rows: list[dict[str, Any]]) -> list[list[int]]:
        column = self.args.text_column
        if all(column in row for row in rows):
            return [list(row[column]) for row in rows]
        if self.processing_class is None:
            raise ValueError(
                f"Dataset rows need a `{column}` column (text-unit ids), or a `prompt` column and `processing_class=`."
            )
        if isinstance(self.processing_class, PreTrainedTokenizerBase):  # e.g. CodecLMTokenizer: bare text units
            return [self.processing_class.encode(row["prompt"], add_special_tokens=False) for row in rows]
        encode = getattr(self.processing_class, "encode", self.processing_class)
        return [list(encode(row["prompt"])) for row in rows]

    @torch.no_grad()
    def rollout(self, model: nn.Module, rows: list[dict[str, Any]]) -> DiffRORollout:
        """Sample speech tokens for the batch's texts with the Gumbel-max trick, keeping the noise."""
        policy = unwrap_peft(self.accelerator.unwrap_model(model))
        was_training = policy.training
        policy.eval()
        try:
            sample = sample_speech(
                policy,
                self._prompt_text_ids(rows),
                self.speech_token_layout,
                max_new_tokens=self.args.max_new_tokens,
                min_new_tokens=self.args.min_new_tokens,
                temperature=self.args.temperature,
                top_k=self.args.top_k,
                top_p=self.args.top_p,
                generator=self._generator,
            )
        finally:
            policy.train(was_training)
        prompts = [row["prompt"] for row in rows] if all("prompt" in row for row in rows) else None
        columns = {key: [row.get(key) for row in rows] for key in rows[0] if key != "prompt"}
        return DiffRORollout(sample=sample, prompts=prompts, columns=columns)

    # ------------------------------------------------------------------ 2. replay
    def speech_logits(self, model: nn.Module, rollout: DiffRORollout) -> torch.Tensor:
        """Processed logits `(B, L, K + 1)` of `model` at the sampled positions: one teacher-forced pass."""
        sample = rollout.sample
        logits = teacher_forced_speech_logits(model, sample.sequences, sample.attention_mask, sample.prompt_length,
                                              self.speech_token_layout)  # (B, L, K + 1)
        early = torch.arange(logits.shape[1], device=logits.device) < self.args.min_new_tokens  # (L,)
        return process_speech_logits(logits.float(), self.args.temperature, self.args.top_k, forbid_eos=early[None],
                                     top_p=self.args.top_p)  # fmt: skip

    def replay(self, model: nn.Module, rollout: DiffRORollout) -> DiffROReplay:
        """Teacher-forced pass over the sampled sequence and the straight-through Gumbel-Softmax of the same draw."""
        sample = rollout.sample
        logits = self.speech_logits(model, rollout)
        soft_tokens = straight_through_gumbel_softmax(
            logits, sample.gumbel_noise, sample.speech_ids, tau=self.args.gumbel_temperature
        )
        return DiffROReplay(logits=logits, soft_tokens=soft_tokens)

    # ------------------------------------------------------------------ 3. rewards
    def compute_rewards(self, rollout: DiffRORollout, replay: DiffROReplay) -> torch.Tensor:
        """Differentiable rewards `(B, num_rewards)` of the soft tokens (end-of-speech class dropped)."""
        sample = rollout.sample
        codebook_size = replay.soft_tokens.shape[-1] - 1
        soft_codes = replay.soft_tokens[..., :codebook_size]  # (B, L, K)
        speech_ids = sample.speech_ids.masked_fill(~sample.code_mask, 0)
        return call_differentiable_rewards(
            self.reward_funcs,
            soft_tokens=soft_codes,
            token_mask=sample.code_mask.long(),
            columns=rollout.columns,
            speech_ids=speech_ids,
            prompts=rollout.prompts,
        )

    # ------------------------------------------------------------------ 4. loss
    @torch.no_grad()
    def reference_logits(self, model: nn.Module, rollout: DiffRORollout) -> torch.Tensor:
        """Processed logits of the reference policy at the sampled positions."""
        with self.reference() as reference:
            return self.speech_logits(reference, rollout)

    def compute_kl(self, model: nn.Module, rollout: DiffRORollout, logits: torch.Tensor) -> torch.Tensor:
        """`KL(pi_theta || pi_ref)` per sequence `(B,)`: exact per-position KL summed over the sampled positions."""
        mask = rollout.sample.completion_mask
        if self.args.beta == 0:
            return logits.new_zeros(logits.shape[0])
        ref_logits = self.reference_logits(model, rollout)
        return (categorical_kl(logits, ref_logits) * mask).sum(-1)

    def compute_diffro_loss(self, rewards: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """`mean_b [ -sum_i w_i R_i(b) + beta * KL_b ]`."""
        total = (rewards * self.reward_weights.to(rewards.device)).sum(-1)  # (B,)
        return (-total + self.args.beta * kl).mean()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rollout = self.rollout(model, inputs)
        replay = self.replay(model, rollout)
        rewards = self.compute_rewards(rollout, replay)
        kl = self.compute_kl(model, rollout, replay.logits)
        loss = self.compute_diffro_loss(rewards, kl)
        check_finite(loss, self.state.global_step, "DiffRO loss", "non-finite weights (too large a learning rate) "
                     "or a reward that overflows on these soft tokens.")  # fmt: skip
        self._log_step(rollout, replay, rewards, kl)
        return (loss, {"rewards": rewards.detach()}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ logging and saving
    @torch.no_grad()
    def _log_step(self, rollout: DiffRORollout, replay: DiffROReplay, rewards: torch.Tensor, kl: torch.Tensor):
        sample = rollout.sample
        gather = self.accelerator.gather
        total = (rewards * self.reward_weights.to(rewards.device)).sum(-1)
        all_rewards, all_total = gather(rewards.detach()), gather(total.detach())
        for k, name in enumerate(self.reward_names):
            self._record_metric(f"rewards/{name}/mean", all_rewards[:, k].mean())
            self._record_metric(f"rewards/{name}/std", all_rewards[:, k].std() if len(all_rewards) > 1 else 0.0)
        self._record_metric("reward", all_total.mean())
        self._record_metric("reward_std", all_total.std() if len(all_total) > 1 else 0.0)
        mask = sample.completion_mask
        lengths = gather(mask.sum(-1).float())
        if self.args.beta > 0:
            all_kl = gather(kl.detach())
            self._record_metric("kl", all_kl.mean())
            self._record_metric("kl_per_token", all_kl.sum() / lengths.sum().clamp(min=1))
        entropy = (categorical_entropy(replay.logits.detach()) * mask).sum() / mask.sum().clamp(min=1)
        self._record_metric("entropy", gather(entropy[None]).mean())
        stopped = gather(sample.completion_mask.any(-1) & (sample.speech_ids == sample.logits.shape[-1] - 1).any(-1))
        self._record_metric("completions/mean_length", lengths.mean())
        self._record_metric("completions/min_length", lengths.min())
        self._record_metric("completions/max_length", lengths.max())
        self._record_metric("completions/clipped_ratio", 1.0 - stopped.float().mean())
        diff = (replay.logits.detach() - sample.logits).abs().masked_fill(~mask[..., None], 0.0)
        diff = torch.nan_to_num(diff, nan=0.0)  # -inf - -inf (top-k filtered entries)
        self._record_metric("replay/max_abs_logit_diff", gather(diff.amax()[None]).max())

    def _model_card_fields(self) -> dict[str, Any]:
        return {"reward_funcs": self.reward_names}

    def _generator_state_path(self, folder: str) -> str:
        return os.path.join(folder, f"gumbel_generator_{self.accelerator.process_index}.pt")

    def _save_extra_checkpoint_state(self, folder: str) -> None:
        """The model card, and each process's Gumbel noise generator (exact resume: the next rollouts draw the same
        noise as an uninterrupted run)."""
        if self.args.should_save:
            model_name = Path(self.args.output_dir).name if self.args.hub_model_id is None else self.args.hub_model_id
            self.create_model_card(model_name=model_name.split("/")[-1])
        os.makedirs(folder, exist_ok=True)
        torch.save(self._generator.get_state(), self._generator_state_path(folder))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        path = self._generator_state_path(resume_from_checkpoint)
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if os.path.isfile(path):
            self._generator.set_state(torch.load(path, weights_only=True))
        else:
            logger.warning("%s has no Gumbel generator state: the resumed run draws other noise than an uninterrupted "
                           "one would.", resume_from_checkpoint)  # fmt: skip


__all__ = ["DiffROReplay", "DiffRORollout", "DiffROTrainer"]

"""ARDM-DPO: Diffusion-DPO applied per continuous token of an autoregressive diffusion model (Liu et al. 2025,
"Direct preference optimization for speech autoregressive diffusion models"; the DPO baseline of the VGPO paper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import TrainerCallback
from transformers.utils import logging

from ..models.ardm import ARDMForSpeechSynthesis, NoiseSchedule, check_ardm, sampling_settings
from .ardm_dpo_config import ARDMDPOConfig
from .ardm_utils import NoiseDraws, ardm_kl
from .base import check_finite
from .papers import ARDM_DPO
from .preference_data import PreferenceBatch, collate_preference_pairs
from .speech_rl_trainer import SpeechRLTrainer

logger = logging.get_logger(__name__)

REF_CHOSEN_COLUMN = "ref_chosen_error"
REF_REJECTED_COLUMN = "ref_rejected_error"
INDEX_COLUMN = "example_index"


def example_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of the fixed draws of example `index` (used with `precompute_ref_log_probs`)."""
    return torch.Generator().manual_seed((int(seed) << 32) + int(index))


def draw_pair_noise(
    schedule: NoiseSchedule,
    patches: torch.Tensor,
    patch_mask: torch.Tensor,
    num_draws: int,
    generators: Sequence[torch.Generator] | None = None,
) -> NoiseDraws:
    """Noisy tokens for `B` preference pairs stacked as `2B` sequences (`[chosen; rejected]`), with draws shared inside
    each pair: the chosen and the rejected token at the same position `n` get the same `(t, eps)` (common random
    numbers, as Diffusion-DPO shares noise between the two images); a position only one side has uses its own draw.

    Args:
        schedule (`NoiseSchedule`): the policy's noise schedule.
        patches (`torch.Tensor` of shape `(2B, N, P*D)`), patch_mask (`(2B, N)`): chosen sequences, then rejected ones.
        num_draws (`int`): `K`, draws per position.
        generators (list of `B` CPU `torch.Generator`, *optional*): one per pair, making its draws a function of the
            pair alone (independent of the batch it is in); the global RNG (on the patches' device) otherwise.

    Returns:
        [`NoiseDraws`] over every valid token of the `2B` sequences.
    """
    double, num_positions, patch_dim = patches.shape
    batch = double // 2
    device = patches.device
    if generators is None:
        grid_t = torch.randint(0, schedule.num_train_timesteps, (batch, num_positions, num_draws), device=device)
        grid_eps = torch.randn(batch, num_positions, num_draws, patch_dim, device=device, dtype=patches.dtype)
    else:
        if len(generators) != batch:
            raise ValueError(f"{len(generators)} generators for {batch} pairs.")
        grid_t = torch.zeros(batch, num_positions, num_draws, dtype=torch.long)
        grid_eps = torch.zeros(batch, num_positions, num_draws, patch_dim)
        positions = torch.arange(num_positions, device=device)
        for i, generator in enumerate(generators):
            valid = patch_mask[i].bool() | patch_mask[batch + i].bool()
            length = int(positions[valid].max()) + 1 if valid.any() else 0  # a property of the pair alone
            grid_t[i, :length] = torch.randint(0, schedule.num_train_timesteps, (length, num_draws),
                                               generator=generator)
            grid_eps[i, :length] = torch.randn(length, num_draws, patch_dim, generator=generator)
        grid_t, grid_eps = grid_t.to(device), grid_eps.to(device=device, dtype=patches.dtype)
    sample_index, token_index = patch_mask.bool().nonzero(as_tuple=True)
    pair_index = sample_index % batch
    timesteps = grid_t[pair_index, token_index]  # (M, K)
    noise = grid_eps[pair_index, token_index]  # (M, K, PD)
    clean = patches[sample_index, token_index][:, None].expand(-1, num_draws, -1)
    return NoiseDraws(sample_index, token_index, timesteps, noise, clean, schedule.add_noise(clean, noise, timesteps))


def sequence_errors(epsilon: torch.Tensor, draws: NoiseDraws, num_sequences: int) -> torch.Tensor:
    """Per-sequence denoising error `sum_n mean_k ||eps_hat(x_n^{t_k}) - eps_k||^2` (epsilon units), shape `(S,)`."""
    per_token = (epsilon.float() - draws.noise.float()).pow(2).sum(-1).mean(-1)  # (M,)
    return per_token.new_zeros(num_sequences).index_add(0, draws.sample_index, per_token)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Diffusion-DPO on summed per-token denoising errors `(B,)`.

    `d = (e_theta(x^w) - e_ref(x^w)) - (e_theta(x^l) - e_ref(x^l))`;
    `"sigmoid"`: `-log sigmoid(-beta d)`; `"ipo"`: `(-d - 1 / (2 beta))^2`.

    Returns:
        `(losses (B,), chosen_rewards (B,), rejected_rewards (B,))` with implicit rewards `-beta (e_theta - e_ref)`.
    """
    chosen_diff = policy_chosen - ref_chosen
    rejected_diff = policy_rejected - ref_rejected
    d = chosen_diff - rejected_diff
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(-beta * d)
    elif loss_type == "ipo":
        losses = (-d - 1.0 / (2.0 * beta)).pow(2)
    else:
        raise ValueError(f"Unknown `loss_type` {loss_type!r}; use 'sigmoid' or 'ipo'.")
    return losses, -beta * chosen_diff.detach(), -beta * rejected_diff.detach()


class ARDMDPOTrainer(SpeechRLTrainer):
    r"""
    Trainer for ARDM-DPO: Direct Preference Optimization of an autoregressive diffusion model, i.e. Diffusion-DPO
    (Wallace et al. 2024) applied to every continuous token (Liu et al. 2025).

    For a pair `(x^w, x^l)` of continuations of one prompt, at shared random draws `(n, t, eps)` and for the policy
    and the (frozen) reference alike, the denoising error of a token is `e(x_n) = ||eps_hat(x_n^t) - eps||^2` (epsilon
    units, LM guidance `w` applied to `eps_hat`). With

        d = sum_n [e_theta(x^w_n) - e_ref(x^w_n)] - sum_n [e_theta(x^l_n) - e_ref(x^l_n)]   (mean over draws)

    the loss is `-log sigmoid(-beta * d)` (`loss_type="sigmoid"`) or `(-d - 1 / (2 beta))^2` (`"ipo"`).

    Args:
        model (`ARDMForSpeechSynthesis` or `str`): the policy (or a path for `AutoModel.from_pretrained`).
        ref_model (`ARDMForSpeechSynthesis`, *optional*): the reference. Defaults to a frozen copy of the initial
            policy, or, with `peft_config`, the policy with adapters disabled (no second copy).
        args ([`ARDMDPOConfig`], *optional*).
        train_dataset (`datasets.Dataset`): preference rows (`prompt`, `text_input_ids`, optional `prompt_latents`,
            `chosen`, `rejected`); see [`build_preference_dataset`].
        eval_dataset (`datasets.Dataset`, *optional*): held-out pairs; `evaluate()` logs the same metrics with
            `eval_`, e.g. the implicit-reward accuracy `eval_rewards/accuracies`.
        processing_class (*optional*): text tokenizer (callable or with `encode`) if rows lack `text_input_ids`.
        peft_config (`peft.PeftConfig`, *optional*): LoRA on the backbone (e.g. `target_modules=["q_proj", "v_proj"]`).
        callbacks, optimizers: as in [`~transformers.Trainer`].
    """

    _trainer_name = "ARDM-DPO"
    _paper = ARDM_DPO
    _tag_names = ["ardm_trl", "dpo", "ardm-dpo", "text-to-speech"]

    def __init__(
        self,
        model: ARDMForSpeechSynthesis | str,
        ref_model: ARDMForSpeechSynthesis | None = None,
        args: ARDMDPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: Any = None,
        peft_config: Any = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
    ):
        args = args or ARDMDPOConfig(output_dir="ardm-dpo-model")
        super().__init__(model, args, ref_model=ref_model, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, peft_config=peft_config, callbacks=callbacks,
                         optimizers=optimizers)  # fmt: skip
        if args.precompute_ref_log_probs:
            if self.train_dataset is not None:
                self.train_dataset = self.precompute_reference_errors(self.train_dataset)
            if isinstance(self.eval_dataset, dict):
                self.eval_dataset = {k: self.precompute_reference_errors(v) for k, v in self.eval_dataset.items()}
            elif self.eval_dataset is not None:
                self.eval_dataset = self.precompute_reference_errors(self.eval_dataset)

    def configure_model(self, model: nn.Module, args: ARDMDPOConfig) -> nn.Module:
        """Refuse a model that is not an ARDM before any set-up."""
        check_ardm(model, "policy")
        return model

    # ------------------------------------------------------------------ inputs
    def _prepare_inputs(self, inputs: list[dict[str, Any]] | PreferenceBatch) -> PreferenceBatch:
        if isinstance(inputs, PreferenceBatch):
            return inputs
        config = self._policy.config
        batch = collate_preference_pairs(inputs, config.latent_dim, config.patch_size, config.text_pad_token_id,
                                         self.processing_class)
        return batch.to(self.accelerator.device)

    @staticmethod
    def concatenated_inputs(batch: PreferenceBatch) -> dict[str, torch.Tensor | None]:
        """Model inputs of the `2B` sequences `[chosen; rejected]` (one LM pass for both, like TRL's
        `concatenated_forward`)."""
        frames = max(batch.chosen_latents.shape[1], batch.rejected_latents.shape[1])

        def pad(x: torch.Tensor) -> torch.Tensor:
            extra = frames - x.shape[1]
            return F.pad(x, (0, 0, 0, extra)) if x.dim() == 3 else F.pad(x, (0, extra))

        def twice(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else torch.cat([x, x])

        return dict(
            text_input_ids=twice(batch.text_input_ids),
            text_attention_mask=twice(batch.text_attention_mask),
            prompt_latents=twice(batch.prompt_latents),
            prompt_latents_mask=twice(batch.prompt_latents_mask),
            latents=torch.cat([pad(batch.chosen_latents), pad(batch.rejected_latents)]),
            latents_mask=torch.cat([pad(batch.chosen_mask), pad(batch.rejected_mask)]),
        )

    def draw_noise(self, batch: PreferenceBatch, inputs: dict[str, Any], fixed: bool = False) -> NoiseDraws:
        """The shared draws of a batch ([`draw_pair_noise`]); `fixed=True` seeds them by each example's index."""
        policy = self._policy
        patches, patch_mask = policy.patchify(inputs["latents"], inputs["latents_mask"])
        generators = None
        if fixed:
            generators = [example_generator(self.args.seed, row[INDEX_COLUMN]) for row in batch.rows]
        return draw_pair_noise(policy.noise_schedule, patches, patch_mask, self.args.num_draws, generators)

    # ------------------------------------------------------------------ errors
    def _errors(self, model, inputs: dict[str, Any], draws: NoiseDraws) -> tuple[torch.Tensor, torch.Tensor]:
        """`(per-sequence errors (2B,), eps_hat (M, K, PD))` of `model` at `draws` (one LM pass, LM guidance)."""
        schedule = self._policy.noise_schedule
        guidance = sampling_settings(self._policy, lm_guidance_scale=self.args.lm_guidance_scale)["lm_guidance_scale"]
        prediction = model(**inputs, draws=draws, lm_guidance_scale=guidance).head_prediction
        epsilon = schedule.to_epsilon(prediction, draws.noisy, draws.timesteps)
        return sequence_errors(epsilon, draws, inputs["latents"].shape[0]), epsilon

    @torch.no_grad()
    def reference_errors(self, inputs: dict[str, Any], draws: NoiseDraws) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's errors and predictions at `draws` (LoRA: the policy with adapters disabled)."""
        with self.reference() as ref:
            return self._errors(ref, inputs, draws)

    @torch.no_grad()
    def precompute_reference_errors(self, dataset: Dataset | Sequence[dict[str, Any]]) -> Dataset:
        """Add `example_index`, `ref_chosen_error` and `ref_rejected_error` columns: the reference's summed errors at
        the draws fixed for each example (seeded by `args.seed` and the index), reused in every epoch."""
        if not isinstance(dataset, Dataset):
            dataset = Dataset.from_list(list(dataset))
        if INDEX_COLUMN not in dataset.column_names:
            dataset = dataset.add_column(INDEX_COLUMN, list(range(len(dataset))))
        chosen, rejected = [], []
        size = self.args.per_device_eval_batch_size
        for start in range(0, len(dataset), size):
            batch = self._prepare_inputs([dataset[i] for i in range(start, min(start + size, len(dataset)))])
            inputs = self.concatenated_inputs(batch)
            errors, _ = self.reference_errors(inputs, self.draw_noise(batch, inputs, fixed=True))
            half = errors.shape[0] // 2
            chosen += errors[:half].tolist()
            rejected += errors[half:].tolist()
        for column in (REF_CHOSEN_COLUMN, REF_REJECTED_COLUMN):
            if column in dataset.column_names:
                dataset = dataset.remove_columns(column)
        return dataset.add_column(REF_CHOSEN_COLUMN, chosen).add_column(REF_REJECTED_COLUMN, rejected)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = self._prepare_inputs(inputs)
        args = self.args
        model_inputs = self.concatenated_inputs(batch)
        precomputed = args.precompute_ref_log_probs
        draws = self.draw_noise(batch, model_inputs, fixed=precomputed)
        half = batch.text_input_ids.shape[0]

        # 1. policy errors of chosen and rejected (one LM pass over the 2B sequences)
        errors, epsilon = self._errors(model, model_inputs, draws)
        # 2. reference errors at the same draws (or precomputed at the same fixed draws)
        if precomputed:
            ref_errors = torch.tensor([r[REF_CHOSEN_COLUMN] for r in batch.rows]
                                      + [r[REF_REJECTED_COLUMN] for r in batch.rows], device=errors.device)
        else:
            ref_errors, ref_epsilon = self.reference_errors(model_inputs, draws)
            self._record_metric("kl", ardm_kl(epsilon.detach(), ref_epsilon))
        # 3. Diffusion-DPO on the summed errors
        losses, chosen_rewards, rejected_rewards = dpo_loss(errors[:half], errors[half:], ref_errors[:half],
                                                            ref_errors[half:], args.beta, args.loss_type)
        loss = losses.mean()
        check_finite(loss, self.state.global_step, "ARDM-DPO loss", "weights already made non-finite by too large a "
                     "learning rate (lower it), or non-finite latents in the preference pairs.")
        self._record_metric("rewards/chosen", chosen_rewards)
        self._record_metric("rewards/rejected", rejected_rewards)
        self._record_metric("rewards/accuracies", (chosen_rewards > rejected_rewards).float())
        self._record_metric("rewards/margins", chosen_rewards - rejected_rewards)
        self._record_metric("errors/chosen", errors[:half].detach())
        self._record_metric("errors/rejected", errors[half:].detach())
        return (loss, {"chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}) if return_outputs \
            else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _model_card_fields(self) -> dict[str, Any]:
        return {"beta": self.args.beta, "loss_type": self.args.loss_type}


__all__ = ["ARDMDPOTrainer", "dpo_loss", "draw_pair_noise", "example_generator", "sequence_errors"]

"""Value-model training (VGPO Algorithm 1): regress `V(x_<n, x_n^t)` on trajectory rewards at random `(n, t)`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback
from transformers.integrations import is_deepspeed_zero3_enabled

from ..data.collators import ARDMDataCollator, pad_sequences
from ..models.ardm import ARDMValueModel
from ..zero3 import gathered_state_dict
from .ardm_utils import RewardFunc, draw_noisy_tokens, group_normalize, resolve_reward_funcs, value_loss
from .base import MetricsMixin, ModelCardMixin, check_finite
from .checkpointing import AtomicCheckpointMixin
from .papers import VGPO
from .rollout import AudioDecoder, generate_rollouts, prepare_prompt_batch, score_rollout_tokens, score_rollouts
from .value_config import ValueConfig
from .value_evaluation import GuidanceEvaluation, value_reward_correlation


@dataclass
class ValueDataCollator:
    """Batches rows with `text_input_ids`, `latents`, a reward column and optional per-patch `value_targets`."""

    patch_size: int
    reward_column: str = "reward"
    group_column: str = "group_id"
    text_pad_token_id: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = ARDMDataCollator(self.patch_size, self.text_pad_token_id)(features)
        batch.pop("labels", None)
        if self.reward_column not in features[0]:
            raise ValueError(f"Value training rows need a `{self.reward_column}` column with the trajectory reward.")
        batch["rewards"] = torch.tensor([float(f[self.reward_column]) for f in features])
        if "value_targets" in features[0]:
            targets = [torch.as_tensor(f["value_targets"], dtype=torch.float32) for f in features]
            batch["token_targets"], _ = pad_sequences(targets)  # (B, N) one target per patch
        return batch


def value_training_loss(
    model: torch.nn.Module,
    value_model: ARDMValueModel,
    inputs: dict[str, Any],
    rewards: torch.Tensor,
    loss_type: str,
    num_draws: int,
    max_tokens: int | None = None,
    token_targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alg. 1, one step's loss: one LM pass of `model` (the possibly wrapped `value_model`) over the trajectories,
    values at `num_draws` random `t` for each (or `max_tokens` random) token, regression to the rewards (or, given
    `token_targets` `(B, N)`, to each token's own target, e.g. its reward-to-go).

    Returns `(loss, values)`."""
    patches, patch_mask = value_model.patchify(inputs["latents"], inputs.get("latents_mask"))
    draws = draw_noisy_tokens(value_model.noise_schedule, patches, patch_mask, num_draws, max_tokens)
    out = model(**inputs, draws=draws)
    if token_targets is not None:
        targets = token_targets.to(out.value.device)[draws.sample_index, draws.token_index]
    else:
        targets = rewards[draws.sample_index]
    return value_loss(out.value, targets, loss_type), out.value


class ValueTrainer(AtomicCheckpointMixin, MetricsMixin, ModelCardMixin, Trainer):
    """Trains an [`ARDMValueModel`] on trajectories with rewards (VGPO Algorithm 1).

    The dataset holds `text_input_ids`, `latents` `(F, D)`, a reward (`args.reward_column`) and optionally a group
    id (`args.group_column`, for per-prompt normalisation) and `prompt_latents`. Trajectories can come from a corpus
    (Task A: real audio and its reward) or from samples of an ARDM ([`build_value_dataset`], Task B). Non-finite
    rewards are refused; with `args.group_normalize` the rewards are normalised per group once, over the whole
    dataset ([`prepare_value_rewards`]).

    Args:
        model ([`ARDMValueModel`]): the value model (`ARDMValueModel.from_ardm(policy)` to start).
        args ([`ValueConfig`], *optional*), train_dataset, eval_dataset, processing_class, callbacks, optimizers: as
            in [`~transformers.Trainer`].
        guidance_evaluation ([`GuidanceEvaluation`], *optional*): also measure, at every evaluation, the guidance
            gain of the value model on held-out prompts.
    """

    _trainer_name = "ValueTrainer (VGPO Algorithm 1)"
    _paper = VGPO
    _tag_names = ["ardm_trl", "value-model", "vgpo"]

    def __init__(
        self,
        model: ARDMValueModel,
        args: ValueConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: Any = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
        guidance_evaluation: GuidanceEvaluation | None = None,
    ):
        args = args or ValueConfig(output_dir="value-model")
        self.guidance_evaluation = guidance_evaluation
        if train_dataset is not None:
            train_dataset = prepare_value_rewards(train_dataset, args.reward_column, args.group_column,
                                                  args.group_normalize, args.value_target, args.value_discount)
        if eval_dataset is not None:
            eval_dataset = prepare_value_rewards(eval_dataset, args.reward_column, args.group_column,
                                                 args.group_normalize, args.value_target, args.value_discount)
        collator = ValueDataCollator(model.config.patch_size, args.reward_column, args.group_column,
                                     model.config.text_pad_token_id)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=collator, processing_class=processing_class, callbacks=callbacks,
                         optimizers=optimizers)
        self._init_metrics()

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The evaluation loss, plus (recorded into the same log) the correlation of predictions and rewards on the
        evaluation set (`eval_value/pearson`, `eval_value/spearman`: does the value model generalise?) and, with
        `guidance_evaluation`, the guidance gain on held-out prompts (`eval_guidance/<scale>/gain`: does its
        gradient guide?)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        value_model = self.accelerator.unwrap_model(self.model)
        if dataset is not None and len(dataset) > 2:
            correlation = value_reward_correlation(value_model, dataset, self.args.reward_column,
                                                   num_draws=self.args.num_draws)  # fmt: skip
            self._record_metric("value/pearson", correlation["pearson"], "eval")
            self._record_metric("value/spearman", correlation["spearman"], "eval")
        if self.guidance_evaluation is not None:
            for key, value in self.guidance_evaluation(value_model).items():
                self._record_metric(key, value, "eval")
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        rewards = inputs.pop("rewards")  # already normalised per group over the whole dataset (prepare_value_rewards)
        token_targets = inputs.pop("token_targets", None)
        if self.args.value_target == "reward":
            token_targets = None
        loss, values = value_training_loss(
            model, self.accelerator.unwrap_model(model), inputs, rewards, self.args.loss_type, self.args.num_draws,
            self.args.max_tokens_per_sample * rewards.shape[0] if self.args.max_tokens_per_sample else None,
            token_targets,
        )
        check_finite(loss, self.state.global_step, "value loss", "non-finite latents in the value dataset, or "
                     "weights made non-finite by too large a learning rate.")
        self._record_metric("value/mean", values)
        self._record_metric("value/reward_mean", rewards)
        return (loss, {"values": values}) if return_outputs else loss


def discounted_cumsum(rewards: Sequence[float], discount: float = 1.0) -> torch.Tensor:
    """`G_n = sum_{m >= n} discount^(m - n) r_m` for every `n` (float64)."""
    values = torch.as_tensor(list(rewards), dtype=torch.float64)
    out = torch.empty_like(values)
    running = 0.0
    for n in range(values.numel() - 1, -1, -1):
        running = float(values[n]) + discount * running
        out[n] = running
    return out


def rewards_to_go(
    token_rewards: Sequence[Sequence[float]], group_ids: Sequence[Any], normalize: bool, discount: float = 1.0
) -> list[list[float]]:
    """Per-token value targets from per-token rewards: the reward-to-go `G_n = sum_{m >= n} discount^(m - n) r_m`.

    With `discount = 1`, the value of a prefix differs from the value of its reward-to-go by the rewards already
    collected, which do not depend on the current token: both have the same gradient w.r.t. `x_n^t`, the quantity
    guidance and VGPO use, but the reward-to-go leaves out the past tokens' noise. A `discount` below 1 also damps the
    noise of the tokens far ahead, at the price of a bias: the value then sees the current token's effect on the
    next `~1 / (1 - discount)` tokens only (`0`: its own reward). With `normalize` (VGPO Sec. 4.3), each group's
    targets are centred per position (minus the group's mean `G_n` over the samples that have token `n`) and divided
    by the standard deviation of the group's total rewards; at `n = 0` with `discount = 1` this is the usual group
    normalisation.
    """
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"`discount` must lie in [0, 1], got {discount}.")
    sums = [torch.as_tensor(list(r), dtype=torch.float64).sum() for r in token_rewards]
    totals = [discounted_cumsum(r, discount) for r in token_rewards]
    if not normalize:
        return [t.tolist() for t in totals]
    by_group: dict[Any, list[int]] = {}
    for i, group in enumerate(group_ids):
        by_group.setdefault(group, []).append(i)
    out: list[list[float]] = [[] for _ in totals]
    for members in by_group.values():
        longest = max(totals[i].numel() for i in members)
        padded = torch.zeros(len(members), longest, dtype=torch.float64)
        present = torch.zeros(len(members), longest, dtype=torch.bool)
        for row, i in enumerate(members):
            padded[row, : totals[i].numel()] = totals[i]
            present[row, : totals[i].numel()] = True
        baseline = (padded * present).sum(0) / present.sum(0).clamp_min(1)  # (N,) mean G_n per position
        group_sums = torch.stack([sums[i] for i in members])
        scale = group_sums.std(unbiased=False) if len(members) > 1 else torch.tensor(0.0, dtype=torch.float64)
        for row, i in enumerate(members):
            centred = padded[row, : totals[i].numel()] - baseline[: totals[i].numel()]
            out[i] = (centred / (scale + 1e-6) if scale > 0 else torch.zeros_like(centred)).tolist()
    return out


def prepare_value_rewards(
    dataset: Any,
    reward_column: str,
    group_column: str,
    normalize: bool,
    value_target: str = "reward",
    discount: float = 1.0,
) -> Any:
    """Check a value dataset's rewards and, with `normalize`, replace them by their per-group normalisation over *all*
    of each group's rows (VGPO Sec. 4.3: `(r - mean) / std` over the G samples of a prompt; a shuffled batch rarely
    holds a whole group, so normalising per batch would zero most targets).

    Args:
        dataset (`datasets.Dataset` or a sequence of dict rows): the value dataset.
        reward_column (`str`), group_column (`str`): its reward and group-id columns.
        normalize (`bool`): normalise per group.

    With `value_target="reward_to_go"`, rows also need `token_rewards` (per patch, [`build_value_dataset`] with
    `token_rewards=True`) and get `value_targets`, the per-token targets of [`rewards_to_go`].

    Returns:
        The same kind of dataset, rewards normalised if asked.

    Raises:
        `ValueError`: the reward (or, with `normalize`, the group) column is missing, or a reward is not finite
        (`None` or NaN rewards must be dropped or replaced before training: a value model cannot learn them).
    """
    is_hf = isinstance(dataset, Dataset)
    columns = dataset.column_names if is_hf else (list(dataset[0]) if len(dataset) else [])
    if len(dataset) == 0:
        raise ValueError("The value dataset is empty: it needs rows with `text_input_ids`, `latents` and a reward.")
    if reward_column not in columns:
        raise ValueError(f"Value training rows need a `{reward_column}` column with the trajectory reward.")
    rewards = torch.tensor([float("nan") if r is None else float(r)
                            for r in (dataset[reward_column] if is_hf else (row[reward_column] for row in dataset))],
                           dtype=torch.float64)  # fmt: skip
    bad = (~torch.isfinite(rewards)).nonzero().flatten()
    if bad.numel():
        raise ValueError(
            f"{bad.numel()} of {len(rewards)} value-training rows have no finite `{reward_column}` (first at row "
            f"{int(bad[0])}): drop them (e.g. `dataset.filter(lambda row: row['{reward_column}'] is not None and "
            f"math.isfinite(row['{reward_column}']))`) or give them a reward."
        )
    if value_target not in ("reward", "reward_to_go"):
        raise ValueError(f"`value_target` must be 'reward' or 'reward_to_go', got {value_target!r}.")
    if normalize and group_column not in columns:
        raise ValueError(f"`group_normalize=True` needs a `{group_column}` column (the prompt of each sample).")
    groups = (list(dataset[group_column]) if is_hf else [row[group_column] for row in dataset]) if normalize else None
    new_columns: dict[str, list] = {}
    if normalize:
        new_columns[reward_column] = group_normalize(rewards, groups).tolist()
    if value_target == "reward_to_go":
        if "token_rewards" not in columns:
            raise ValueError("`value_target='reward_to_go'` needs a `token_rewards` column (per-patch rewards: "
                             "`build_value_dataset(..., token_rewards=True)`).")  # fmt: skip
        tokens = dataset["token_rewards"] if is_hf else [row["token_rewards"] for row in dataset]
        new_columns["value_targets"] = rewards_to_go(tokens, groups or list(range(len(rewards))), normalize, discount)
    if not new_columns:
        return dataset
    if is_hf:
        for name, values in new_columns.items():
            if name in dataset.column_names:
                dataset = dataset.remove_columns(name)
            dataset = dataset.add_column(name, values)
        return dataset
    return [dict(row, **{name: values[i] for name, values in new_columns.items()}) for i, row in enumerate(dataset)]


@torch.no_grad()
def build_value_dataset(
    model,
    prompts: Dataset | Sequence[dict[str, Any]],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    num_generations: int = 8,
    batch_size: int = 8,
    reward_weights: Sequence[float] | None = None,
    processing_class: Any = None,
    audio_decoder: AudioDecoder | None = None,
    token_rewards: bool = False,
    **generation_kwargs: Any,
) -> Dataset:
    """Sample `num_generations` trajectories per prompt row from an ARDM, score them, and return a dataset for
    [`ValueTrainer`] (Task B style: the value model learns the rewards of the base model's own samples).

    Columns: `text_input_ids`, `latents`, `reward`, `group_id` (the prompt's index), `prompt`, `prompt_latents` (when
    the prompts have voice prompts), the prompt rows' other columns and, with `token_rewards=True`, `token_rewards`
    (the reward spread over the sample's patches, [`score_rollout_tokens`]; `reward` is then their sum), which
    `ValueConfig(value_target="reward_to_go")` trains on.
    """
    funcs, weights = resolve_reward_funcs(reward_funcs, reward_weights)
    rows = list(prompts)
    records: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = prepare_prompt_batch(chunk, num_generations, processing_class, model.config.text_pad_token_id,
                                     model.config.patch_size).to(model.device)
        rollouts = generate_rollouts(model, batch, **generation_kwargs)
        if token_rewards:
            rollouts = score_rollout_tokens(rollouts, funcs, weights, audio_decoder, model.config.patch_size)
        else:
            rollouts = score_rollouts(rollouts, funcs, weights, audio_decoder)
        for i, completion in enumerate(rollouts.completions()):
            record = {key: values[i] for key, values in rollouts.columns.items()}
            record.update(
                prompt=rollouts.prompts[i],
                text_input_ids=rollouts.text_input_ids[i][rollouts.text_attention_mask[i].bool()].tolist(),
                latents=completion.cpu().tolist(),
                reward=float(rollouts.rewards[i]),
                group_id=start + int(rollouts.group_ids[i]),
            )
            if rollouts.token_rewards is not None:
                record["token_rewards"] = rollouts.token_rewards[i].tolist()
            if rollouts.prompt_latents is not None:  # the voice prompt conditions the value model as it did the policy
                record["prompt_latents"] = rollouts.prompt_latents[i][rollouts.prompt_latents_mask[i].bool()].cpu().tolist()
            records.append(record)
    return Dataset.from_list(records)


def build_corpus_value_dataset(rows: Sequence[dict[str, Any]], reward_func: RewardFunc) -> list[dict[str, Any]]:
    """A dataset for [`ValueTrainer`] from reference audio (VGPO Task A: the value model learns the reward of the corpus
    audio): each row's own `latents` scored by `reward_func(prompts=..., completions=latents)`; rows whose reward is
    `None` are dropped. Rows need `text_input_ids`, `latents`, `prompt` and may carry `prompt_latents`."""
    latents = [row["latents"] for row in rows]
    rewards = reward_func(prompts=[row["prompt"] for row in rows], completions=latents)
    if len(rewards) != len(rows):
        raise ValueError(f"The reward function returned {len(rewards)} rewards for {len(rows)} rows.")
    keep = ("text_input_ids", "prompt_latents")
    return [{**{k: row[k] for k in keep if k in row}, "latents": lat, "reward": float(reward)}
            for row, lat, reward in zip(rows, latents, rewards) if reward is not None]  # fmt: skip


def train_value_model(
    policy,
    rows: Sequence[dict[str, Any]],
    reward_func: RewardFunc,
    args: ValueConfig,
    source: str = "corpus",
    num_generations: int = 4,
    **generation_kwargs: Any,
) -> ARDMValueModel:
    """VGPO Algorithm 1 in one call: a value model initialised from the policy ([`ARDMValueModel.from_ardm`]) and
    trained with [`ValueTrainer`] on the rewards of the corpus audio (`source="corpus"`, Task A, rows with `latents`:
    [`build_corpus_value_dataset`]) or of the policy's own samples (`source="samples"`, Task B, `num_generations` per
    row: [`build_value_dataset`]; set `args.group_normalize` for per-prompt normalisation). Returns it in eval mode.

    Args:
        policy ([`ARDMForSpeechSynthesis`]): the ARDM to be fine-tuned; the value model copies its LM.
        rows (`Sequence[dict]`): prompt rows as [`~ardm_trl.data.voice_prompt_rows`] makes them.
        reward_func (`RewardFunc`): a reward callable (TRL keyword signature) on latents.
        args ([`ValueConfig`]): the value training's configuration.
        source (`str`, *optional*, defaults to `"corpus"`): `"corpus"` or `"samples"`.
        num_generations (`int`, *optional*, defaults to `4`): samples per row for `source="samples"`.
        generation_kwargs: passed to the policy's `generate` for `source="samples"` (e.g. `max_patches`).
    """
    if source not in ("corpus", "samples"):
        raise ValueError(f"`source` must be 'corpus' or 'samples', got {source!r}.")
    value_model = ARDMValueModel.from_ardm(policy)  # before any sampling: the value head's initialisation draws first
    if source == "corpus":
        data = build_corpus_value_dataset(rows, reward_func)
    else:
        prompts = [{k: v for k, v in row.items() if k != "latents"} for row in rows]
        data = build_value_dataset(policy, prompts, reward_func, num_generations=num_generations, **generation_kwargs)
    # under ZeRO-3 the trainer shards what it trains: train a copy and gather its weights back into a whole model
    zero3 = is_deepspeed_zero3_enabled()
    trained = copy.deepcopy(value_model) if zero3 else value_model
    trainer = ValueTrainer(trained, args, train_dataset=data)
    trainer.train()
    if zero3:
        value_model.load_state_dict(gathered_state_dict(trained))
    if trainer.is_deepspeed_enabled:
        # accelerate allows one DeepSpeed Accelerator per process state: clear it (the process group stays) so the
        # trainer that uses this value model next can build its own
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    return value_model.eval()


__all__ = [
    "ValueDataCollator",
    "ValueTrainer",
    "build_corpus_value_dataset",
    "build_value_dataset",
    "prepare_value_rewards",
    "discounted_cumsum",
    "rewards_to_go",
    "train_value_model",
    "value_training_loss",
]

"""Rollouts: batching prompt rows, sampling G trajectories per prompt from an ARDM, and scoring them with reward
functions. Shared by the value trainer, VGPO, Best-of-K and the preference-data builder of ARDM-DPO."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..data.collators import pad_sequences
from .ardm_utils import RewardFunc, call_reward_funcs

# Columns a rollout consumes itself; every other dataset column is passed to reward functions as a keyword.
MODEL_COLUMNS = ("text_input_ids", "prompt_latents", "latents")


class AudioDecoder(Protocol):
    """Anything that turns latents into waveforms (e.g. `ardm_trl.audio.SpeechCodecModel`)."""

    sampling_rate: int

    def decode_list(self, latents: list[torch.Tensor]) -> list[Any]: ...


@dataclass
class PromptBatch:
    """Tensors of a batch of prompts (each repeated `num_generations` times) and their dataset columns."""

    text_input_ids: torch.Tensor
    text_attention_mask: torch.Tensor
    prompts: list[str]
    group_ids: torch.Tensor
    columns: dict[str, list[Any]] = field(default_factory=dict)
    prompt_latents: torch.Tensor | None = None
    prompt_latents_mask: torch.Tensor | None = None

    def model_inputs(self) -> dict[str, torch.Tensor | None]:
        return dict(text_input_ids=self.text_input_ids, text_attention_mask=self.text_attention_mask,
                    prompt_latents=self.prompt_latents, prompt_latents_mask=self.prompt_latents_mask)

    def select(self, rows: Sequence[int]) -> PromptBatch:
        """The batch of the given rows (prompt fields only)."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        pick = lambda v: None if v is None else v[index.to(v.device)]  # noqa: E731
        return PromptBatch(text_input_ids=pick(self.text_input_ids), text_attention_mask=pick(self.text_attention_mask),
                           prompts=[self.prompts[i] for i in rows], group_ids=pick(self.group_ids),
                           columns={k: [v[i] for i in rows] for k, v in self.columns.items()},
                           prompt_latents=pick(self.prompt_latents),
                           prompt_latents_mask=pick(self.prompt_latents_mask))  # fmt: skip

    def with_latents(self, latents: torch.Tensor, latents_mask: torch.Tensor) -> Rollouts:
        """These prompts with one trajectory per row: `latents` `(B, F, D)`, `latents_mask` `(B, F)`."""
        fields = {name: getattr(self, name) for name in PromptBatch.__dataclass_fields__}
        return Rollouts(**fields, latents=latents, latents_mask=latents_mask)

    def to(self, device: torch.device) -> PromptBatch:
        move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return type(self)(**move)


@dataclass
class Rollouts(PromptBatch):
    """Sampled trajectories with their rewards. `latents` `(B, F, D)`, `latents_mask` `(B, F)`."""

    latents: torch.Tensor | None = None
    latents_mask: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
    rewards_per_func: torch.Tensor | None = None
    token_rewards: list[torch.Tensor] | None = None

    def completions(self) -> list[torch.Tensor]:
        """One `(F_i, D)` latent tensor per sample, trimmed to its length."""
        return [lat[mask] for lat, mask in zip(self.latents, self.latents_mask.bool())]


def prepare_prompt_batch(
    rows: Sequence[dict[str, Any]],
    num_generations: int = 1,
    processing_class: Any = None,
    text_pad_token_id: int = 0,
    patch_size: int = 1,
) -> PromptBatch:
    """Batch dataset rows into model inputs, each row repeated `num_generations` times (consecutively).

    A row holds the target text under `prompt` (or `text`), and either `text_input_ids` or nothing, in which case
    `processing_class` (a callable text -> ids, or an object with `encode`) tokenises the text. An optional
    `prompt_latents` column `(Fp, D)` is the voice prompt, per row (rows without one get none). Every other column is
    kept for the reward functions.
    """
    if not rows:
        raise ValueError("Empty batch of prompts.")
    rows = [row for row in rows for _ in range(num_generations)]
    prompts = [row.get("prompt", row.get("text")) for row in rows]
    if any(p is None for p in prompts):
        raise ValueError("Each dataset row needs the target text in a `prompt` (or `text`) column.")
    has_ids = [row.get("text_input_ids") is not None for row in rows]
    if all(has_ids):
        ids = [torch.as_tensor(row["text_input_ids"], dtype=torch.long) for row in rows]
    elif any(has_ids):
        raise ValueError(
            f"{has_ids.count(False)} of {len(rows)} rows of the batch have no `text_input_ids` while the others do: "
            "give every row its ids, or none of them (with `processing_class=`)."
        )
    elif processing_class is not None:
        encode = getattr(processing_class, "encode", processing_class)
        ids = [torch.as_tensor(encode(p), dtype=torch.long) for p in prompts]
    else:
        raise ValueError("Rows have no `text_input_ids`: pass `processing_class=` (the text tokenizer).")
    text, text_mask = pad_sequences(ids, padding_value=text_pad_token_id)
    group_ids = torch.arange(len(rows) // num_generations).repeat_interleave(num_generations)
    batch = PromptBatch(text, text_mask.long(), prompts, group_ids)
    voiced = [row.get("prompt_latents") is not None for row in rows]
    if any(voiced):  # per row: a row without a voice prompt gets an empty one (all masked)
        prompt = [torch.as_tensor(row["prompt_latents"], dtype=torch.float32) if has else None
                  for row, has in zip(rows, voiced)]  # fmt: skip
        dim = next(p for p in prompt if p is not None).shape[-1]
        prompt = [p if p is not None else torch.zeros(0, dim) for p in prompt]
        batch.prompt_latents, batch.prompt_latents_mask = pad_sequences(prompt, patch_size)
    skip = set(MODEL_COLUMNS) | {"prompt"}
    batch.columns = {key: [row.get(key) for row in rows] for key in rows[0] if key not in skip}
    return batch


@torch.no_grad()
def generate_rollouts(model, batch: PromptBatch, **generation_kwargs: Any) -> Rollouts:
    """Sample one trajectory per row of `batch` from `model` (an ARDM; pass `lm_guidance_scale`, `max_patches`,
    `value_model`, ... through `generation_kwargs`). A sample that diverges is ended by `generate` (a warning);
    when every sample diverged at its first patch, nothing was generated and `FloatingPointError` says so here,
    before a reward function is handed empty samples."""
    out = model.generate(**batch.model_inputs(), **generation_kwargs)
    if out.diverged is not None and bool(out.diverged.all()) and int(out.num_patches.max()) == 0:
        raise FloatingPointError(
            "Every sample's generation diverged at its first patch (non-finite latents): the model's weights are "
            "likely non-finite (e.g. made so by too large a learning rate) or the value guidance scale is far too "
            "large. No reward was computed."
        )
    return batch.with_latents(out.latents, out.latents_mask)


def score_rollouts(
    rollouts: Rollouts,
    reward_funcs: Sequence[RewardFunc],
    reward_weights: torch.Tensor | None = None,
    audio_decoder: AudioDecoder | None = None,
) -> Rollouts:
    """Fill `rollouts.rewards` / `rewards_per_func` by calling the reward functions (TRL's convention, see
    `call_reward_funcs`). With an `audio_decoder`, the samples are decoded once and passed as `audio=` with
    `sampling_rate=`."""
    if reward_weights is None:
        reward_weights = torch.ones(len(reward_funcs))
    extra: dict[str, Any] = {}
    completions = [c.detach().cpu() for c in rollouts.completions()]
    if audio_decoder is not None:
        extra = {"audio": audio_decoder.decode_list(completions), "sampling_rate": audio_decoder.sampling_rate}
    total, per_func = call_reward_funcs(reward_funcs, reward_weights, rollouts.prompts, completions,
                                        rollouts.columns, **extra)
    device = rollouts.latents.device
    rollouts.rewards, rollouts.rewards_per_func = total.to(device), per_func.to(device)
    return rollouts


def score_rollout_tokens(
    rollouts: Rollouts,
    reward_funcs: Sequence[RewardFunc],
    reward_weights: torch.Tensor | None,
    audio_decoder: AudioDecoder,
    patch_size: int,
) -> Rollouts:
    """Fill `rollouts.token_rewards` (one `(N_i,)` tensor per sample: its weighted reward spread over its `N_i`
    patches, by each function's `token_rewards`, see [`~ardm_trl.rewards.SpeechReward.token_rewards`]) and set
    `rewards` / `rewards_per_func` to their sums. For value models trained on rewards-to-go.

    Raises:
        ValueError: a reward function has no per-token decomposition, or gives no reward for a sample.
    """
    if reward_weights is None:
        reward_weights = torch.ones(len(reward_funcs))
    frame_rate = getattr(audio_decoder, "frame_rate", None)
    if frame_rate is None:
        raise ValueError("Per-token rewards need an `audio_decoder` with a `frame_rate` (latent frames per second).")
    completions = [c.detach().cpu() for c in rollouts.completions()]
    audio = audio_decoder.decode_list(completions)
    num_tokens = [-(-c.shape[0] // patch_size) for c in completions]
    totals = [torch.zeros(n, dtype=torch.float64) for n in num_tokens]
    per_func = torch.zeros(len(completions), len(reward_funcs))
    for k, func in enumerate(reward_funcs):
        if not hasattr(func, "token_rewards"):
            raise ValueError(f"Reward function {func!r} has no `token_rewards`: it cannot give rewards-to-go.")
        values = func.token_rewards(prompts=rollouts.prompts, audio=audio, sampling_rate=audio_decoder.sampling_rate,
                                    token_seconds=patch_size / frame_rate, num_tokens=num_tokens,
                                    **rollouts.columns)  # fmt: skip
        for i, tokens in enumerate(values):
            if tokens is None:
                raise ValueError(f"{func!r} gave no reward for sample {i} (prompt {rollouts.prompts[i]!r}).")
            tokens = torch.as_tensor(tokens, dtype=torch.float64)
            totals[i] += float(reward_weights[k]) * tokens
            per_func[i, k] = float(tokens.sum())
    device = rollouts.latents.device
    rollouts.token_rewards = [t.float() for t in totals]
    rollouts.rewards = torch.stack([t.sum() for t in totals]).float().to(device)
    rollouts.rewards_per_func = per_func.to(device)
    return rollouts


__all__ = [
    "AudioDecoder", "PromptBatch", "Rollouts", "generate_rollouts", "prepare_prompt_batch", "score_rollout_tokens",
    "score_rollouts",
]

"""Preference pairs for ARDM-DPO: building them from scored samples of a base model, and batching them.

A preference row holds one prompt and two continuous-latent continuations of it:

- `prompt` (`str`), `text_input_ids` (`list[int]`), optional `prompt_latents` `(Fp, D)` (the voice prompt);
- `chosen`, `rejected`: latents `(F, D)` (nested lists or tensors; the two lengths may differ);
- `chosen_score`, `rejected_score` (`float`, optional for training): the scores the pair was ranked by;
- any other column of the prompt row (kept, unused by the trainer).

The dataset is a plain `datasets.Dataset`: save it with `save_to_disk` / `push_to_hub`, load it with
`load_from_disk` / `load_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset

from ..data.collators import pad_sequences
from .ardm_utils import RewardFunc
from .best_of_k import iter_scored_groups
from .rollout import AudioDecoder, prepare_prompt_batch

PAIR_STRATEGIES = ("best_vs_worst", "all_pairs")
# Per-side prompt columns: a dataset may name the prompt of each side; both sides must then agree.
PER_SIDE_PROMPT_COLUMNS = ("prompt", "text_input_ids", "prompt_latents")


def select_pairs(scores: torch.Tensor, pair_strategy: str = "best_vs_worst", margin: float = 0.0) -> list[tuple]:
    """Indices `(chosen, rejected)` of the preference pairs among the `K` scored samples of one prompt.

    - `"best_vs_worst"`: at most one pair, the highest-scored sample against the lowest-scored one (the first on
      ties), kept only if `score[chosen] > score[rejected] + margin`.
    - `"all_pairs"`: every pair `(i, j)` with `score[i] > score[j] + margin` (up to `K (K - 1) / 2` pairs, ordered by
      `i` then `j`).

    Ties never form a pair, so every pair is strictly ordered (`margin >= 0`).
    """
    if pair_strategy not in PAIR_STRATEGIES:
        raise ValueError(f"Unknown `pair_strategy` {pair_strategy!r}; use one of {PAIR_STRATEGIES}.")
    if margin < 0:
        raise ValueError(f"`margin` must be >= 0, got {margin}.")
    scores = scores.double()
    if pair_strategy == "best_vs_worst":
        best, worst = int(scores.argmax()), int(scores.argmin())
        return [(best, worst)] if scores[best] > scores[worst] + margin else []
    num = scores.numel()
    return [(i, j) for i in range(num) for j in range(num) if scores[i] > scores[j] + margin]


def pairs_from_groups(
    rows: Sequence[dict[str, Any]],
    pair_strategy: str = "best_vs_worst",
    margin: float = 0.0,
    group_column: str = "group_id",
    reward_column: str = "reward",
) -> Dataset:
    """Preference pairs from samples already drawn and scored, e.g. a value dataset ([`build_value_dataset`]): the
    rows of each group (the samples of one prompt) are paired by [`select_pairs`] on their reward, so ARDM-DPO and the
    value model of VGPO can learn from the same samples.

    Rows need `latents`, the reward and group columns, and the prompt columns (`prompt`, `text_input_ids`, optional
    `prompt_latents`); every other column of the chosen row is kept.
    """
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[group_column], []).append(row)
    records = []
    for members in groups.values():
        scores = torch.tensor([float(m[reward_column]) for m in members])
        for chosen, rejected in select_pairs(scores, pair_strategy, margin):
            record = {k: _plain(v) for k, v in members[chosen].items()
                      if k not in ("latents", reward_column, "token_rewards", "value_targets")}  # fmt: skip
            record.update(chosen=_plain(members[chosen]["latents"]), rejected=_plain(members[rejected]["latents"]),
                          chosen_score=float(scores[chosen]), rejected_score=float(scores[rejected]))
            records.append(record)
    if not records:
        raise ValueError("No preference pairs: every group's samples tie (or differ by less than `margin`).")
    return Dataset.from_list(records)


def _plain(value: Any) -> Any:
    """Tensors become nested lists, so `Dataset.from_list` stores them like any other column."""
    return value.tolist() if isinstance(value, torch.Tensor) else value


@torch.no_grad()
def build_preference_dataset(
    model,
    prompts: Dataset | Sequence[dict[str, Any]],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    num_samples: int = 4,
    pair_strategy: str = "best_vs_worst",
    margin: float = 0.0,
    batch_size: int = 4,
    reward_weights: Sequence[float] | None = None,
    processing_class: Any = None,
    audio_decoder: AudioDecoder | None = None,
    **generation_kwargs: Any,
) -> Dataset:
    """Sample `num_samples` trajectories per prompt from a (base) ARDM, score them with `reward_funcs`, and pair them
    ([`select_pairs`]) into a preference dataset for [`ARDMDPOTrainer`].

    Args:
        model ([`ARDMForSpeechSynthesis`]): the model whose samples are ranked (on-policy data for DPO).
        prompts (`datasets.Dataset` or list of rows): as for [`best_of_k`].
        reward_funcs, reward_weights, audio_decoder, processing_class: as for [`best_of_k`].
        num_samples (`int`, *optional*, defaults to `4`): `K`, samples per prompt (`>= 2`).
        pair_strategy (`str`, *optional*, defaults to `"best_vs_worst"`): `"best_vs_worst"` or `"all_pairs"`.
        margin (`float`, *optional*, defaults to `0.0`): a pair needs `chosen_score > rejected_score + margin`.
        batch_size (`int`, *optional*, defaults to `4`): prompts per `generate` call.
        generation_kwargs: passed to `model.generate` (`lm_guidance_scale`, `max_patches`, `generator`, ...).

    Returns:
        `datasets.Dataset` with columns `prompt`, `text_input_ids`, [`prompt_latents`], `chosen`, `rejected`,
        `chosen_score`, `rejected_score`, `group_id` (the prompt's index) and the prompt rows' other columns. Prompts
        whose samples yield no pair (e.g. all within `margin`) contribute no row.
    """
    if num_samples < 2:
        raise ValueError(f"A preference pair needs `num_samples >= 2` samples per prompt, got {num_samples}.")
    select_pairs(torch.zeros(1), pair_strategy, margin)  # validate the arguments before sampling
    records: list[dict[str, Any]] = []
    offset = 0
    for rows, rollouts in iter_scored_groups(model, prompts, reward_funcs, num_samples, batch_size, reward_weights,
                                             processing_class, audio_decoder, **generation_kwargs):
        completions = [c.cpu() for c in rollouts.completions()]
        scores = rollouts.rewards.float().cpu().view(len(rows), num_samples)
        for p, row in enumerate(rows):
            first = p * num_samples
            text_ids = rollouts.text_input_ids[first][rollouts.text_attention_mask[first].bool()].tolist()
            for i, j in select_pairs(scores[p], pair_strategy, margin):
                record = {key: _plain(value) for key, value in row.items() if key not in ("chosen", "rejected")}
                record.update(
                    prompt=rollouts.prompts[first],
                    text_input_ids=text_ids,
                    chosen=completions[first + i].tolist(),
                    rejected=completions[first + j].tolist(),
                    chosen_score=float(scores[p, i]),
                    rejected_score=float(scores[p, j]),
                    group_id=offset + p,
                )
                records.append(record)
        offset += len(rows)
    if not records:
        raise ValueError(
            "No preference pair was formed: every prompt's samples scored within `margin` of each other. Lower "
            "`margin`, raise `num_samples`, or check that the reward varies across samples."
        )
    return Dataset.from_list(records)


@dataclass
class PreferenceBatch:
    """A batch of `B` preference pairs as tensors.

    Args:
        text_input_ids (`(B, T)`), text_attention_mask (`(B, T)`): the shared text of each pair.
        prompt_latents (`(B, Fp, D)`, *optional*), prompt_latents_mask (`(B, Fp)`, *optional*): the voice prompts.
        chosen_latents (`(B, Fc, D)`), chosen_mask (`(B, Fc)`): preferred continuations, padded to a patch multiple.
        rejected_latents (`(B, Fr, D)`), rejected_mask (`(B, Fr)`): rejected continuations.
        prompts (`list[str]`): the prompt texts.
        rows (`list[dict]`): the raw rows (for precomputed columns such as `ref_chosen_error`).
    """

    text_input_ids: torch.Tensor
    text_attention_mask: torch.Tensor
    chosen_latents: torch.Tensor
    chosen_mask: torch.Tensor
    rejected_latents: torch.Tensor
    rejected_mask: torch.Tensor
    prompts: list[str]
    rows: list[dict[str, Any]]
    prompt_latents: torch.Tensor | None = None
    prompt_latents_mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> PreferenceBatch:
        move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return type(self)(**move)


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and bool(torch.equal(a.float(), b.float()))


def _resolve_shared_prompt(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Merge per-side prompt columns (`chosen_prompt` / `rejected_prompt`, ...) into the shared ones, checking that
    both sides of the pair continue the same prompt."""
    row = dict(row)
    for name in PER_SIDE_PROMPT_COLUMNS:
        chosen_key, rejected_key = f"chosen_{name}", f"rejected_{name}"
        if chosen_key not in row and rejected_key not in row:
            continue
        chosen, rejected = row.pop(chosen_key, None), row.pop(rejected_key, None)
        if not _equal(chosen, rejected):
            raise ValueError(
                f"Preference row {index}: `{chosen_key}` and `{rejected_key}` differ. DPO compares two continuations "
                "of the same prompt; pair only samples of one prompt (same text and voice prompt)."
            )
        if name in row and row[name] is not None and not _equal(row[name], chosen):
            raise ValueError(f"Preference row {index}: `{name}` differs from `{chosen_key}` / `{rejected_key}`.")
        row[name] = chosen
    return row


def _latents(row: dict[str, Any], key: str, index: int, latent_dim: int) -> torch.Tensor:
    if row.get(key) is None:
        raise ValueError(
            f"Preference row {index} has no `{key}` column. Rows need `prompt`, `text_input_ids`, `chosen` and "
            "`rejected` latents `(frames, latent_dim)` (see `build_preference_dataset`)."
        )
    latents = torch.as_tensor(row[key], dtype=torch.float32)
    if latents.numel() == 0:  # an empty sample (the model stopped at once): no tokens, no denoising error
        return latents.new_zeros(0, latent_dim)
    if latents.dim() != 2:
        raise ValueError(
            f"Preference row {index}: `{key}` must be a latent sequence of shape (frames, latent_dim), got shape "
            f"{tuple(latents.shape)}."
        )
    return latents


def collate_preference_pairs(
    rows: Sequence[dict[str, Any]],
    latent_dim: int,
    patch_size: int = 1,
    text_pad_token_id: int = 0,
    processing_class: Any = None,
) -> PreferenceBatch:
    """Validate and batch preference rows.

    Raises:
        ValueError: a row lacks `chosen` / `rejected`; the two sides have different latent sizes or not the model's
            `latent_dim`; or per-side prompt columns (`chosen_prompt` vs `rejected_prompt`, `chosen_text_input_ids` vs
            `rejected_text_input_ids`, `chosen_prompt_latents` vs `rejected_prompt_latents`) disagree; or a pair's two
            sides are the same sample.
    """
    rows = [_resolve_shared_prompt(row, i) for i, row in enumerate(rows)]
    chosen, rejected = [], []
    for i, row in enumerate(rows):
        c, r = _latents(row, "chosen", i, latent_dim), _latents(row, "rejected", i, latent_dim)
        if c.shape[1] != r.shape[1]:
            raise ValueError(
                f"Preference row {i}: `chosen` latents have shape {tuple(c.shape)} but `rejected` latents have shape "
                f"{tuple(r.shape)}; both sides must have the same latent size (frames may differ)."
            )
        if c.shape[1] != latent_dim:
            raise ValueError(
                f"Preference row {i}: the latents have {c.shape[1]} channels but the model expects "
                f"latent_dim={latent_dim}. Build the pairs with samples of this model (or its codec)."
            )
        if c.shape == r.shape and torch.equal(c, r):
            raise ValueError(
                f"Preference row {i}: `chosen` and `rejected` are the same sample, a pair that carries no preference "
                "(its DPO gradient is zero). Drop it, or pair different samples (e.g. `margin > 0` in "
                "`build_preference_dataset`)."
            )
        chosen.append(c)
        rejected.append(r)
    prompt_batch = prepare_prompt_batch(rows, 1, processing_class, text_pad_token_id, patch_size)
    chosen_latents, chosen_mask = pad_sequences(chosen, patch_size)
    rejected_latents, rejected_mask = pad_sequences(rejected, patch_size)
    return PreferenceBatch(
        text_input_ids=prompt_batch.text_input_ids,
        text_attention_mask=prompt_batch.text_attention_mask,
        chosen_latents=chosen_latents,
        chosen_mask=chosen_mask,
        rejected_latents=rejected_latents,
        rejected_mask=rejected_mask,
        prompts=prompt_batch.prompts,
        rows=list(rows),
        prompt_latents=prompt_batch.prompt_latents,
        prompt_latents_mask=prompt_batch.prompt_latents_mask,
    )


__all__ = [
    "pairs_from_groups",
    "PAIR_STRATEGIES",
    "PreferenceBatch",
    "build_preference_dataset",
    "collate_preference_pairs",
    "select_pairs",
]

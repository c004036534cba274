"""The statistics every table and evaluation of ardm_trl reports: means with standard errors, and paired differences
between two methods evaluated on the same prompts (scipy.stats underneath)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy import stats


def mean_and_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean of `values` and its standard error (sample std / sqrt(n)): the sampling noise of one evaluation. The mean
    is NaN for no values, the standard error for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if values.size else float("nan")
    sem = float(stats.sem(values)) if values.size > 1 else float("nan")
    return mean, sem


def per_prompt_means(values: Sequence[float | None], prompt_ids: Sequence[Hashable]) -> dict[Hashable, float]:
    """The mean of each prompt's finite values (several sampling seeds of one prompt become one number); prompts whose
    values are all missing are left out."""
    sums: dict[Hashable, list[float]] = {}
    for value, prompt in zip(values, prompt_ids):
        if value is not None and np.isfinite(value):
            sums.setdefault(prompt, []).append(float(value))
    return {prompt: float(np.mean(v)) for prompt, v in sums.items()}


def paired_difference(
    values: Sequence[float | None],
    reference: Sequence[float | None],
    prompt_ids: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """The change `values - reference` of two evaluations on the same samples' prompts, paired.

    With `prompt_ids`, each prompt's values are first averaged over its samples (e.g. sampling seeds), so the
    standard error is taken over prompts, the units that were drawn at random; otherwise samples are paired one to
    one. Pairs with a missing (`None` or NaN) side are dropped.

    Args:
        values (`Sequence[float | None]`): the method's per-sample metric.
        reference (`Sequence[float | None]`): the reference's (e.g. Base) metric on the same prompts and seeds.
        prompt_ids (`Sequence[Hashable]`, *optional*): the prompt of each sample.

    Returns:
        `dict`: `mean` (the mean change), `sem` (its standard error), `t` (`mean / sem`), `ci95_low` / `ci95_high`
        (Student-t 95% interval) and `n` (the number of pairs).
    """
    if len(values) != len(reference):
        raise ValueError(f"`values` has {len(values)} entries but `reference` has {len(reference)}.")
    if prompt_ids is None:
        prompt_ids = list(range(len(values)))
    elif len(prompt_ids) != len(values):
        raise ValueError(f"`prompt_ids` has {len(prompt_ids)} entries but `values` has {len(values)}.")
    keep = [i for i, (a, b) in enumerate(zip(values, reference))
            if a is not None and b is not None and np.isfinite(a) and np.isfinite(b)]  # fmt: skip
    ids = [prompt_ids[i] for i in keep]
    mine = per_prompt_means([values[i] for i in keep], ids)
    theirs = per_prompt_means([reference[i] for i in keep], ids)
    diffs = np.array([mine[p] - theirs[p] for p in mine], dtype=np.float64)
    mean, sem = mean_and_sem(diffs)
    result = {"mean": mean, "sem": sem, "n": int(diffs.size)}
    if diffs.size > 1 and sem > 0:
        low, high = stats.t.interval(0.95, diffs.size - 1, loc=mean, scale=sem)
        result.update(t=mean / sem, ci95_low=float(low), ci95_high=float(high))
    else:
        result.update(t=float("nan"), ci95_low=float("nan"), ci95_high=float("nan"))
    return result


__all__ = ["mean_and_sem", "paired_difference", "per_prompt_means"]

"""A bounded cache of reference-model samples per prompt, for the "real" side of adversarial distribution matching:
the reference is frozen, so a sample drawn from it once stays an exact draw of its distribution and can be reused."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import torch

from .rollout import PromptBatch


def prompt_key(batch: PromptBatch, row: int) -> str:
    """A key for row `row` of `batch` that is equal exactly when the model inputs are: the unpadded text ids and the
    unpadded voice prompt (by content)."""
    digest = hashlib.sha1()
    ids = batch.text_input_ids[row][batch.text_attention_mask[row].bool()]
    digest.update(ids.cpu().numpy().tobytes())
    if batch.prompt_latents is not None:
        voice = batch.prompt_latents[row][batch.prompt_latents_mask[row].bool()]
        digest.update(voice.float().cpu().numpy().tobytes())
    return digest.hexdigest()


class ReferenceSampleCache:
    """Up to `samples_per_prompt` reference samples for each prompt, and at most `max_samples` in all (the prompts
    used longest ago are dropped first).

    The rule: a prompt's rows get fresh samples (drawn by the caller and added here) until the prompt holds
    `samples_per_prompt` of them; after that its rows reuse the stored ones in turn. Every stored sample is an exact
    draw from the frozen reference, so the discriminator's "real" data has the same distribution as without the
    cache; it becomes a fixed set of `samples_per_prompt` draws per prompt, like a GAN's training set.

    Args:
        samples_per_prompt (`int`): distinct reference samples kept per prompt (>= 1).
        max_samples (`int`): bound on the samples kept in all (>= `samples_per_prompt`).
    """

    def __init__(self, samples_per_prompt: int, max_samples: int):
        if samples_per_prompt < 1 or max_samples < samples_per_prompt:
            raise ValueError(
                f"Need 1 <= samples_per_prompt <= max_samples, got samples_per_prompt={samples_per_prompt}, "
                f"max_samples={max_samples}."
            )
        self.samples_per_prompt = samples_per_prompt
        self.max_samples = max_samples
        self._samples: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
        self._next: dict[str, int] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._samples.values())

    def rows_to_draw(self, keys: list[str]) -> list[int]:
        """Indices of the rows that need a fresh sample: those whose prompt (counting the earlier rows of this call)
        holds fewer than `samples_per_prompt` samples."""
        counts: dict[str, int] = {}
        rows = []
        for i, key in enumerate(keys):
            have = len(self._samples.get(key, ())) + counts.get(key, 0)
            if have < self.samples_per_prompt:
                rows.append(i)
                counts[key] = counts.get(key, 0) + 1
        return rows

    def add(self, key: str, sample: torch.Tensor) -> None:
        """Store one reference sample `(F, D)` (kept on the CPU) of prompt `key`."""
        self._samples.setdefault(key, []).append(sample.detach().cpu())
        self._samples.move_to_end(key)
        while len(self) > self.max_samples:
            old, _ = self._samples.popitem(last=False)
            self._next.pop(old, None)

    def take(self, key: str) -> torch.Tensor:
        """The next stored sample of prompt `key` (in turn)."""
        samples = self._samples[key]
        position = self._next.get(key, 0)
        self._next[key] = (position + 1) % len(samples)
        self._samples.move_to_end(key)
        return samples[position % len(samples)]

    def fill(self, keys: list[str], fresh: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """One sample per row: the fresh one where the row got one (it is also stored), else a stored one."""
        out = []
        for i, key in enumerate(keys):
            if i in fresh:
                self.add(key, fresh[i])
                out.append(fresh[i])
                self.misses += 1
            else:
                out.append(self.take(key))
                self.hits += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"samples": list(self._samples.items()), "next": dict(self._next), "hits": self.hits,
                "misses": self.misses}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._samples = OrderedDict(state["samples"])
        self._next = dict(state["next"])
        self.hits, self.misses = state["hits"], state["misses"]


__all__ = ["ReferenceSampleCache", "prompt_key"]

"""Guided attention (Tachibana et al., 2018, "Efficiently trainable text-to-speech system based on deep convolutional
networks with guided attention"): an auxiliary training loss that pulls chosen attention heads of a TTS model onto a
near-diagonal text-speech alignment.

A small speech LM trained only on its generation loss can predict the next speech frame from the previous ones and
ignore the text (`docs/models.md`, "Pretraining aids"). Speech is read left to right at a roughly steady rate, so
speech position `j` of `N` attends text position `i` of `T` near `i / T = j / N`. The loss rewards attention mass inside a Gaussian window around that line:

    loss = mean over heads, valid queries j of  1 - sum_i A[j, i] * exp(-((i + 1/2) / T - (j + 1/2) / N)^2 / (2 g^2))

It is 0 when every guided head attends only the diagonal and 1 when it attends no text at all. Both the ARDM and the
codec LM use it; it only shapes training, sampling is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from transformers import PreTrainedModel


@contextmanager
def eager_attention(model: PreTrainedModel) -> Iterator[None]:
    """Run `model` with eager attention inside the block (SDPA does not return attention probabilities), then restore
    its own implementation."""
    implementation = model.config._attn_implementation
    if implementation == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(implementation)


def diagonal_prior(
    query_lengths: torch.Tensor, key_lengths: torch.Tensor, num_queries: int, num_keys: int, sigma: float
) -> torch.Tensor:
    """Gaussian window `(B, Q, K)` around the diagonal `i / T_b = j / N_b`, zero outside each sample's lengths."""
    device = query_lengths.device
    queries = (torch.arange(num_queries, device=device)[None] + 0.5) / query_lengths.clamp(min=1)[:, None]  # (B, Q)
    keys = (torch.arange(num_keys, device=device)[None] + 0.5) / key_lengths.clamp(min=1)[:, None]  # (B, K)
    prior = torch.exp(-((keys[:, None, :] - queries[:, :, None]) ** 2) / (2.0 * sigma**2))  # (B, Q, K)
    query_valid = torch.arange(num_queries, device=device)[None] < query_lengths[:, None]
    key_valid = torch.arange(num_keys, device=device)[None] < key_lengths[:, None]
    return prior * query_valid[:, :, None] * key_valid[:, None, :]


def guided_attention_loss(
    attentions: Sequence[torch.Tensor],
    query_columns: torch.Tensor,
    query_lengths: torch.Tensor,
    key_columns: torch.Tensor,
    key_lengths: torch.Tensor,
    sigma: float = 0.2,
    num_heads: int | None = None,
) -> torch.Tensor:
    """Guided-attention loss of the first `num_heads` heads of every layer (see the module docstring).

    Args:
        attentions (sequence of `torch.Tensor` of shape `(B, H, L, L)`): attention probabilities of each layer.
        query_columns (`torch.LongTensor` of shape `(B, Q)`): sequence column of speech position `j` of each sample
            (any value past `query_lengths`).
        query_lengths (`torch.LongTensor` of shape `(B,)`): speech positions `N_b` per sample (0 = the sample does
            not count).
        key_columns (`torch.LongTensor` of shape `(B, K)`): sequence column of text token `i` of each sample.
        key_lengths (`torch.LongTensor` of shape `(B,)`): text tokens `T_b` per sample.
        sigma (`float`, defaults to `0.2`): width `g` of the window, as a fraction of the text (DC-TTS's value).
        num_heads (`int`, *optional*): heads guided per layer (the first ones); default: half of them (at least 1),
            so the others stay free to attend the speech context.

    Returns:
        `torch.FloatTensor` of shape `()`: the mean over the counted queries (0 when none counts).
    """
    if not attentions:
        raise ValueError("guided_attention_loss needs the attention maps of at least one layer (output_attentions).")
    prior = diagonal_prior(query_lengths, key_lengths, query_columns.shape[1], key_columns.shape[1], sigma)
    losses = []
    for attention in attentions:
        heads = num_heads or max(1, attention.shape[1] // 2)
        attention = attention[:, :heads].float()  # (B, h, L, L)
        length = attention.shape[-1]
        rows = query_columns.clamp(0, length - 1)[:, None, :, None].expand(-1, heads, -1, length)
        picked = attention.gather(2, rows)  # (B, h, Q, L)
        cols = key_columns.clamp(0, length - 1)[:, None, None, :].expand(-1, heads, picked.shape[2], -1)
        picked = picked.gather(3, cols)  # (B, h, Q, K)
        on_diagonal = (picked * prior[:, None]).sum(-1)  # (B, h, Q)
        losses.append(1.0 - on_diagonal)
    valid = (torch.arange(query_columns.shape[1], device=query_columns.device)[None] < query_lengths[:, None])
    per_query = torch.stack(losses).mean(dim=(0, 2))  # (B, Q)
    if not valid.any():  # no sample with a guided query (e.g. every text dropped): nothing to guide
        return per_query.sum() * 0.0
    return per_query[valid].mean()


__all__ = ["diagonal_prior", "eager_attention", "guided_attention_loss"]

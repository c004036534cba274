"""The causal LM of an ARDM: text and patch embeddings, sequence assembly, and the KV-cached incremental run used by
the sampler.

Sequence layout, per sample (left padded to a common prefix length `Lp` so every target patch sits in the same
column across the batch, in training and in generation):

    [pad ... pad][text_1 .. text_T][<speech>][prompt patch_1 .. prompt patch_M][patch_1 .. patch_N]

The LM state at column `Lp - 1 + j` predicts target patch `j` (0-based) and the stop flag "no patch `j`". A patch
enters the LM through a linear projection of its flattened frames (DiTAR's aggregation encoder, in its simplest form).
The unconditional branch of LM guidance replaces every text embedding by one learned null embedding.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, DynamicCache

from ..guided_attention import eager_attention
from .configuration_ardm import ARDMConfig


class ARDMBackbone(nn.Module):
    """Embeddings plus a transformers decoder (`AutoModel.from_config(config.backbone_config)`)."""

    def __init__(self, config: ARDMConfig):
        super().__init__()
        hidden = config.backbone_config.hidden_size
        self.text_embedding = nn.Embedding(config.text_vocab_size, hidden, padding_idx=config.text_pad_token_id)
        self.patch_embedding = nn.Linear(config.patch_dim, hidden)
        self.speech_start = nn.Parameter(torch.zeros(hidden))
        self.null_text = nn.Parameter(torch.zeros(hidden))
        self.lm = AutoModel.from_config(config.backbone_config)

    @property
    def hidden_size(self) -> int:
        return self.speech_start.shape[0]

    def build_prefix(
        self,
        text_input_ids: torch.Tensor,
        text_attention_mask: torch.Tensor,
        prompt_patches: torch.Tensor | None,
        prompt_patch_mask: torch.Tensor | None,
        drop_text: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prefix embeddings `(B, Lp, H)` and mask `(B, Lp)` of `[text][<speech>][prompt]`.

        `drop_text` (B,) bool replaces the text by the null embedding (unconditional branch of LM guidance).
        """
        batch = text_input_ids.shape[0]
        if text_input_ids.numel() and not torch.compiler.is_compiling():
            low, high = int(text_input_ids.min()), int(text_input_ids.max())
            if low < 0 or high >= self.text_embedding.num_embeddings:
                raise ValueError(
                    f"Text ids must lie in [0, {self.text_embedding.num_embeddings}) (the model's `text_vocab_size`), "
                    f"got ids from {low} to {high}: encode the text with the model's own tokenizer "
                    "(`ARDMTextTokenizer.from_pretrained(<model folder>)`)."
                )
        text = self.text_embedding(text_input_ids)  # (B, T, H)
        if drop_text is not None:
            text = torch.where(drop_text[:, None, None], self.null_text.to(text.dtype).expand_as(text), text)
        prompt = self.patch_embedding(prompt_patches) if prompt_patches is not None else None  # (B, M, H)
        pieces = []
        for i in range(batch):
            parts = [text[i][text_attention_mask[i].bool()], self.speech_start[None].to(text.dtype)]
            if prompt is not None:
                parts.append(prompt[i][prompt_patch_mask[i].bool()])
            pieces.append(torch.cat(parts, dim=0))
        prefix_len = max(p.shape[0] for p in pieces)
        embeds = text.new_zeros(batch, prefix_len, self.hidden_size)
        mask = torch.zeros(batch, prefix_len, dtype=torch.long, device=text.device)
        for i, piece in enumerate(pieces):
            embeds[i, prefix_len - piece.shape[0]:] = piece
            mask[i, prefix_len - piece.shape[0]:] = 1
        return embeds, mask

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        past_key_values: DynamicCache | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, DynamicCache | None]:
        """Run the decoder; `attention_mask` covers the cached and the new columns. Returns `(hidden, cache)`."""
        if position_ids is None:
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            position_ids = positions[:, -inputs_embeds.shape[1]:]
        out = self.lm(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        return out.last_hidden_state, (out.past_key_values if use_cache else None)

    def forward_with_attentions(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """A full (uncached) run that also returns every layer's attention probabilities `(B, heads, L, L)` (eager
        attention for this call; the guided-attention loss of pretraining reads them)."""
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with eager_attention(self.lm):
            out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=positions,
                          output_attentions=True)
        return out.last_hidden_state, tuple(out.attentions)


class IncrementalLM:
    """An LM run that grows one patch at a time, with a KV cache (`use_cache=True`) or by recomputing the whole
    sequence at every step (`use_cache=False`, the reference the cache is tested against).

    `hidden` is the last LM state `(B, H)`: the state that predicts the next patch.
    """

    def __init__(self, backbone: ARDMBackbone, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor, use_cache: bool):
        self.backbone = backbone
        self.use_cache = use_cache
        self.embeds = prefix_embeds
        self.mask = prefix_mask
        self.cache = DynamicCache() if use_cache else None
        hidden, _ = backbone(prefix_embeds, prefix_mask, past_key_values=self.cache, use_cache=use_cache)
        self.hidden = hidden[:, -1]

    def append(self, patch: torch.Tensor) -> torch.Tensor:
        """Feed one patch `(B, P*D)`; returns (and stores) the new last state `(B, H)`."""
        new = self.backbone.patch_embedding(patch)[:, None]  # (B, 1, H)
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        if self.use_cache:
            hidden, _ = self.backbone(new, self.mask, past_key_values=self.cache, use_cache=True)
        else:
            self.embeds = torch.cat([self.embeds, new], dim=1)
            hidden, _ = self.backbone(self.embeds, self.mask)
        self.hidden = hidden[:, -1]
        return self.hidden


__all__ = ["ARDMBackbone", "IncrementalLM"]

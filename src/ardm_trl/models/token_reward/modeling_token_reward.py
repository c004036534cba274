"""Multi-task token reward model (MTR): CTC text head, attribute classifiers and a quality regressor over codec tokens.

The model reads hard token ids or soft one-hot vectors through the same table: `soft_tokens @ embedding.weight`,
so a straight-through Gumbel-Softmax sample of a TTS language model carries the reward gradient back to its logits
(DiffRO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from .configuration_token_reward import TokenRewardConfig


@dataclass
class TokenRewardOutput(ModelOutput):
    """
    Output of [`TokenRewardModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): unweighted sum of `task_losses`, when targets are given.
        task_losses (`dict[str, torch.FloatTensor]`, *optional*): `"ctc"`, each attribute task name and `"quality"`
            (only the tasks whose targets were given).
        ctc_log_probs (`torch.FloatTensor` of shape `(batch_size, num_frames, num_text_units + 1)`): CTC
            log-probabilities, `num_frames = ctc_upsample * seq_len`.
        ctc_lengths (`torch.LongTensor` of shape `(batch_size,)`): number of valid CTC frames per row.
        attribute_logits (`dict[str, torch.FloatTensor]`): task name -> logits `(batch_size, num_classes)`.
        quality (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): predicted quality score.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`): encoder output.
    """

    loss: torch.FloatTensor | None = None
    task_losses: dict[str, torch.FloatTensor] | None = None
    ctc_log_probs: torch.FloatTensor | None = None
    ctc_lengths: torch.LongTensor | None = None
    attribute_logits: dict[str, torch.FloatTensor] | None = None
    quality: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


def ctc_log_likelihood(
    log_probs: torch.Tensor,
    frame_lengths: torch.Tensor,
    text_ids: torch.Tensor,
    blank: int,
    reduction: str = "mean",
) -> torch.Tensor:
    """Differentiable `log P(text | frames)` per row, `(B,)`.

    Args:
        log_probs (`torch.Tensor` of shape `(B, T, C)`): CTC log-probabilities.
        frame_lengths (`torch.Tensor` of shape `(B,)`): valid frames per row.
        text_ids (`torch.Tensor` of shape `(B, L)`): target units, padded with `-100` (any negative value).
        blank (`int`): index of the blank class.
        reduction (`str`, *optional*, defaults to `"mean"`): `"mean"` divides by the text length (per-unit
            log-likelihood, comparable across sentences), `"sum"` returns the sequence log-likelihood.

    Rows whose text cannot be aligned (fewer frames than units plus repeated neighbours) get the constant
    `-L * log(C)` (chance level, no gradient) instead of `-inf`.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}.")
    valid = text_ids >= 0
    target_lengths = valid.sum(-1)
    targets = text_ids.clamp(min=0)
    nll = F.ctc_loss(
        log_probs.float().transpose(0, 1),  # (T, B, C)
        targets,
        frame_lengths,
        target_lengths,
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )
    repeats = ((text_ids[:, 1:] == text_ids[:, :-1]) & valid[:, 1:]).sum(-1)
    feasible = frame_lengths >= target_lengths + repeats
    chance = target_lengths.float() * math.log(log_probs.shape[-1])
    log_likelihood = torch.where(feasible, -nll, -chance)
    if reduction == "mean":
        log_likelihood = log_likelihood / target_lengths.clamp(min=1)
    return log_likelihood


class TokenRewardPreTrainedModel(PreTrainedModel):
    config_class = TokenRewardConfig
    config: TokenRewardConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BertLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        # Normal(0, initializer_range) for linear layers and embeddings, ones/zeros for layer norms.
        super()._init_weights(module)


class TokenRewardModel(TokenRewardPreTrainedModel):
    """
    Multi-task reward model over speech-tokenizer codes (DiffRO's MTR).

    Input: `input_ids` `(B, T)` codes, or `soft_tokens` `(B, T, codebook_size)` probabilities / (straight-through)
    one-hots; both go through `token_embedding` (`soft_tokens @ token_embedding.weight`). A bidirectional BERT
    encoder (fed with `inputs_embeds`) then feeds the heads: CTC over text units, one classifier per attribute task
    (on the masked mean of the encoder states) and a quality regressor.

    Pass `text_ids` / `attribute_labels` / `quality_labels` to get the per-task losses and their sum, so a plain
    `Trainer` can train it; [`TokenRewardTrainer`] adds per-task weights and metrics.
    """

    def __init__(self, config: TokenRewardConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.token_embedding = nn.Embedding(config.codebook_size, hidden)
        self.encoder = BertModel(config.encoder_config, add_pooling_layer=False)
        # BERT's own word table is never used (inputs come as `inputs_embeds`); freezing it keeps DDP happy.
        self.encoder.embeddings.word_embeddings.requires_grad_(False)
        self.ctc_head = nn.Linear(hidden, config.ctc_upsample * (config.num_text_units + 1))
        self.attribute_heads = nn.ModuleDict(
            {task: nn.Linear(hidden, len(names)) for task, names in config.attribute_labels.items()}
        )
        self.quality_head = nn.Linear(hidden, 1) if config.use_quality_head else None
        self.post_init()

    def embed(
        self, input_ids: torch.LongTensor | None = None, soft_tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token embeddings `(B, T, D)` of hard codes or of soft one-hots (`soft_tokens @ token_embedding.weight`)."""
        if (input_ids is None) == (soft_tokens is None):
            raise ValueError("Pass exactly one of `input_ids` (codes) or `soft_tokens` (one-hots / probabilities).")
        if input_ids is not None:
            return self.token_embedding(input_ids)
        if soft_tokens.dim() != 3 or soft_tokens.shape[-1] != self.config.codebook_size:
            raise ValueError(
                f"`soft_tokens` must have shape (batch, seq_len, codebook_size={self.config.codebook_size}), got "
                f"{tuple(soft_tokens.shape)}. Drop any end-of-speech class before calling the reward model."
            )
        return soft_tokens.to(self.token_embedding.weight.dtype) @ self.token_embedding.weight

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        soft_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_ids: torch.LongTensor | None = None,
        attribute_labels: dict[str, torch.LongTensor] | None = None,
        quality_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenRewardOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, T)`, *optional*): speech codes.
            soft_tokens (`torch.Tensor` of shape `(B, T, codebook_size)`, *optional*): soft one-hots (instead of
                `input_ids`).
            attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*): 1 on tokens, 0 on padding.
            text_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): CTC targets padded with `-100`; rows that
                are all `-100` have no text and are left out of the CTC loss.
            attribute_labels (`dict[str, torch.LongTensor]`, *optional*): task -> class index `(B,)`, `-100` where
                unknown.
            quality_labels (`torch.Tensor` of shape `(B,)`, *optional*): quality targets, NaN where unknown.
        """
        embeds = self.embed(input_ids, soft_tokens)  # (B, T, D)
        batch_size, seq_len = embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long, device=embeds.device)
        hidden = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state  # (B, T, D)

        # CTC head: each token emits `ctc_upsample` frames
        r, num_classes = self.config.ctc_upsample, self.config.num_text_units + 1
        ctc_logits = self.ctc_head(hidden).view(batch_size, seq_len * r, num_classes)  # (B, T * r, U + 1)
        ctc_log_probs = ctc_logits.float().log_softmax(-1)
        ctc_lengths = attention_mask.sum(-1).long() * r

        # utterance-level heads on the masked mean of the encoder states
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        attribute_logits = {task: head(pooled) for task, head in self.attribute_heads.items()}
        quality = self.quality_head(pooled).squeeze(-1) if self.quality_head is not None else None

        task_losses = {}
        has_text = (text_ids >= 0).any(-1) if text_ids is not None else None  # rows without text: no CTC loss
        if has_text is not None and has_text.any():
            log_likelihood = ctc_log_likelihood(
                ctc_log_probs[has_text], ctc_lengths[has_text], text_ids[has_text], self.config.ctc_blank_id
            )
            task_losses["ctc"] = -log_likelihood.mean()
        for task, labels in (attribute_labels or {}).items():
            if task not in attribute_logits:
                raise ValueError(f"Unknown attribute task '{task}'; this model has {sorted(attribute_logits)}.")
            if (labels != -100).any():
                task_losses[task] = F.cross_entropy(attribute_logits[task].float(), labels, ignore_index=-100)
        if quality_labels is not None and quality is not None:
            known = torch.isfinite(quality_labels)
            if known.any():
                task_losses["quality"] = F.mse_loss(quality[known].float(), quality_labels[known].float())
        loss = sum(task_losses.values()) if task_losses else None
        return TokenRewardOutput(
            loss=loss,
            task_losses=task_losses or None,
            ctc_log_probs=ctc_log_probs,
            ctc_lengths=ctc_lengths,
            attribute_logits=attribute_logits,
            quality=quality,
            last_hidden_state=hidden,
        )

    # ------------------------------------------------------------------ reward read-outs
    def ctc_log_likelihood(
        self,
        text_ids: torch.LongTensor,
        input_ids: torch.LongTensor | None = None,
        soft_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """`log P(text | tokens)` per row `(B,)`, differentiable w.r.t. `soft_tokens` (see [`ctc_log_likelihood`]).
        Raises `ValueError` when a text id (negative = padding) is not one of the model's `num_text_units` units."""
        units = self.config.num_text_units
        outside = (text_ids >= units).any(-1)
        if bool(outside.any()):
            rows = outside.nonzero().flatten().tolist()
            raise ValueError(
                f"Text ids of row(s) {rows} lie outside the reward model's CTC units [0, {units}): score the text in "
                "the units it was trained on (e.g. the codec LM's text ids only when both use the same tokenizer)."
            )
        out = self(input_ids=input_ids, soft_tokens=soft_tokens, attention_mask=attention_mask)
        return ctc_log_likelihood(out.ctc_log_probs, out.ctc_lengths, text_ids, self.config.ctc_blank_id, reduction)

    def attribute_log_probs(
        self,
        task: str,
        input_ids: torch.LongTensor | None = None,
        soft_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class log-probabilities `(B, num_classes)` of the attribute `task`."""
        if task not in self.attribute_heads:
            raise ValueError(f"Unknown attribute task '{task}'; this model has {sorted(self.attribute_heads)}.")
        out = self(input_ids=input_ids, soft_tokens=soft_tokens, attention_mask=attention_mask)
        return out.attribute_logits[task].float().log_softmax(-1)

    def predict_quality(
        self,
        input_ids: torch.LongTensor | None = None,
        soft_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted quality score `(B,)`."""
        if self.quality_head is None:
            raise ValueError("This model has no quality head (`use_quality_head=False`).")
        return self(input_ids=input_ids, soft_tokens=soft_tokens, attention_mask=attention_mask).quality


__all__ = ["TokenRewardModel", "TokenRewardOutput", "TokenRewardPreTrainedModel", "ctc_log_likelihood"]

"""Configuration of DiffRO (Differentiable Reward Optimization for codec-token TTS language models)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .speech_rl_config import SpeechRLConfig


@dataclass
class DiffROConfig(SpeechRLConfig):
    r"""
    Configuration class for the [`DiffROTrainer`].

    Only the parameters specific to DiffRO are listed here; see [`SpeechRLConfig`] (`peft_modules_to_save`) and
    [`~transformers.TrainingArguments`] for the others.
    Defaults may differ from those of [`~transformers.TrainingArguments`].

    Parameters:
        > Parameters that control the rollout

        max_new_tokens (`int`, *optional*, defaults to `256`):
            Maximum number of sampled speech tokens (end-of-speech included) per prompt.
        min_new_tokens (`int`, *optional*, defaults to `0`):
            End-of-speech is forbidden before this many tokens.
        temperature (`float`, *optional*, defaults to `1.0`):
            Sampling temperature of the policy; the replay, the KL and the entropy use the same tempered logits.
        top_k (`int`, *optional*):
            Sample among the `top_k` most likely tokens only (the replay applies the same filter).
        top_p (`float`, *optional*):
            Nucleus sampling: sample among the smallest set of most likely tokens whose probability reaches `top_p`
            (after `top_k`; the replay applies the same filter).

        > Parameters that control the loss

        gumbel_temperature (`float`, *optional*, defaults to `1.0`):
            Temperature `tau` of the Gumbel-Softmax relaxation used in the backward pass (the forward pass always
            reads the sampled one-hot). The DiffRO authors use 1.0.
        beta (`float`, *optional*, defaults to `0.01`):
            Weight of `KL(pi_theta || pi_ref)`, summed over the positions of each sequence. `0.0` removes the
            reference model.
        reward_weights (`list[float]`, *optional*):
            Weight `w_i` of each reward function; all `1.0` by default.
        text_column (`str`, *optional*, defaults to `"text_ids"`):
            Dataset column with the text-unit ids of the prompt. Without it, `processing_class` tokenises the
            `prompt` column.
        disable_dropout (`bool`, *optional*, defaults to `True`):
            Set every dropout probability of the policy to 0, so the replay sees the distribution that was sampled.

        > Parameters whose defaults differ from [`~transformers.TrainingArguments`]

        learning_rate (`float`, *optional*, defaults to `1e-5`):
            Initial learning rate of AdamW.
        logging_steps (`float`, *optional*, defaults to `10`):
            Log every `logging_steps` steps.
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            Keep every dataset column: each is passed to the reward functions.
    """

    max_new_tokens: int = field(default=256, metadata={"help": "Maximum number of sampled speech tokens per prompt."})
    min_new_tokens: int = field(default=0, metadata={"help": "End-of-speech is forbidden before this many tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the policy."})
    top_k: int | None = field(default=None, metadata={"help": "Sample among the top-k tokens only."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling threshold (after top-k)."})
    gumbel_temperature: float = field(
        default=1.0, metadata={"help": "Temperature of the Gumbel-Softmax relaxation (backward pass)."}
    )
    beta: float = field(default=0.01, metadata={"help": "Weight of the KL to the reference policy (sequence sum)."})
    reward_weights: list[float] | None = field(
        default=None, metadata={"help": "Weight of each reward function (all 1.0 by default)."}
    )
    text_column: str = field(default="text_ids", metadata={"help": "Dataset column with the text-unit ids."})
    disable_dropout: bool = field(default=True, metadata={"help": "Disable dropout in the policy."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Initial learning rate of AdamW."})

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}.")
        if self.gumbel_temperature <= 0:
            raise ValueError(f"`gumbel_temperature` must be > 0, got {self.gumbel_temperature}.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1], got {self.top_p}.")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"`top_k` must be >= 1 (or None for no top-k filtering), got {self.top_k}.")
        if self.beta < 0:
            raise ValueError(f"`beta` must be >= 0, got {self.beta}.")
        if self.min_new_tokens < 0:
            raise ValueError(f"`min_new_tokens` must be >= 0, got {self.min_new_tokens}.")
        if self.max_new_tokens < 1 or self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"Need 1 <= max_new_tokens and min_new_tokens <= max_new_tokens, got max_new_tokens="
                f"{self.max_new_tokens}, min_new_tokens={self.min_new_tokens}."
            )
        super().__post_init__()


__all__ = ["DiffROConfig"]

"""Configuration shared by the project's RL trainers, and by its ARDM trainers in particular."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class SpeechRLConfig(TrainingArguments):
    r"""
    Base configuration of [`SpeechRLTrainer`] (the parent of [`VGPOConfig`], [`ARDMDPOConfig`] and [`DiffROConfig`]).

    Parameters (beyond [`~transformers.TrainingArguments`]):
        peft_modules_to_save (`list[str]`, *optional*):
            With `peft_config`, sub-modules that stay fully trainable besides the adapters (e.g. `["head"]`); they are
            saved with the adapters as PEFT's `modules_to_save`.

        > Parameters whose defaults differ from [`~transformers.TrainingArguments`]

        logging_steps (`float`, *optional*, defaults to `10`):
            Log every `logging_steps` steps.
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            Keep every dataset column: the trainers read raw rows and pass extra columns to reward functions.
    """

    peft_modules_to_save: list[str] | None = field(default=None, metadata={"help": "Fully trainable modules with PEFT."})
    logging_steps: float = field(default=10, metadata={"help": "Log every this many steps."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: the trainers read raw rows."})


@dataclass
class ARDMRLConfig(SpeechRLConfig):
    r"""
    Configuration shared by the trainers of autoregressive diffusion models ([`VGPOConfig`], [`ARDMDPOConfig`]). The
    optimiser defaults follow the VGPO paper's Sec. 4.1 (AdamW, learning rate 1e-6, betas (0.9, 0.95), weight decay
    0.01), set for its 0.4 B-parameter model; a small model needs a larger learning rate (see the trainers' docs).

    Parameters (beyond [`SpeechRLConfig`]):
        num_draws (`int`, *optional*, defaults to `4`):
            Random diffusion times `(t, eps)` per token per step.
        lm_guidance_scale (`float`, *optional*):
            LM guidance weight `w` of the predictions in the loss (`pred_u + w (pred_c - pred_u)`; `1` is the
            conditional model). `None` takes the policy's sampling setting
            ([`~ardm_trl.models.ardm.sampling_settings`]).
        learning_rate (`float`, *optional*, defaults to `1e-6`), adam_beta2 (`float`, *optional*, defaults to `0.95`),
        weight_decay (`float`, *optional*, defaults to `0.01`):
            The paper's AdamW settings.
    """

    num_draws: int = field(default=4, metadata={"help": "Random diffusion times per token per step."})
    lm_guidance_scale: float | None = field(default=None, metadata={"help": "LM guidance w (None: the policy's)."})
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate (VGPO paper: 1e-6)."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (VGPO paper: 0.95)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (VGPO paper: 0.01)."})

    def __post_init__(self):
        super().__post_init__()
        if self.num_draws < 1:
            raise ValueError(f"`num_draws` must be >= 1, got {self.num_draws}.")
        if self.lm_guidance_scale is not None and self.lm_guidance_scale < 0:
            raise ValueError(f"`lm_guidance_scale` must be >= 0, got {self.lm_guidance_scale}.")


__all__ = ["ARDMRLConfig", "SpeechRLConfig"]

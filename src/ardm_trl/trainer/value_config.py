"""Configuration of the value-model trainer (VGPO Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class ValueConfig(TrainingArguments):
    r"""
    Configuration of [`ValueTrainer`], which regresses an [`ARDMValueModel`] on trajectories with rewards.

    Parameters (beyond [`~transformers.TrainingArguments`]):
        loss_type (`str`, *optional*, defaults to `"mse"`):
            `"mse"`: Eq. 13, learns the value `E[r]`. `"exp_mse"`: the stabilised Exp-MSE of Eq. 32, learns the soft
            value `log E[exp r]`.
        num_draws (`int`, *optional*, defaults to `8`):
            Random diffusion times per token per LM pass (several `(n, t)` pairs per trajectory for one LM pass).
        max_tokens_per_sample (`int`, *optional*):
            If set, at most this many random tokens `n` per batch sample are used (all valid tokens otherwise).
        group_normalize (`bool`, *optional*, defaults to `False`):
            Per-prompt normalisation of the rewards (VGPO Sec. 4.3), over all of a group's rows in the dataset, done
            once when the trainer is built; groups are given by the `group_column` column.
        reward_column (`str`, *optional*, defaults to `"reward"`):
            Dataset column holding each trajectory's reward.
        group_column (`str`, *optional*, defaults to `"group_id"`):
            Dataset column identifying samples of the same prompt (for `group_normalize`).
        value_target (`str`, *optional*, defaults to `"reward"`):
            What `V(x_<n, x_n^t)` regresses on: `"reward"`, the trajectory's reward (Eq. 13, as in the paper), or
            `"reward_to_go"`, the rewards of tokens `n` onwards (rows need per-patch `token_rewards`); both have the
            same gradient w.r.t. `x_n^t` when the reward is a sum over tokens, and the reward-to-go leaves out the
            noise of the tokens already generated (see `docs/vgpo_trainer.md`).
        value_discount (`float`, *optional*, defaults to `1.0`):
            With `value_target="reward_to_go"`, the discount of later tokens' rewards (`1`: the plain reward-to-go;
            below 1, less noise from far tokens and a bias towards the current token's near effect).
    """

    loss_type: str = field(default="mse", metadata={"help": "'mse' (Eq. 13) or 'exp_mse' (Eq. 32, soft value)."})
    num_draws: int = field(default=8, metadata={"help": "Random diffusion times per token per LM pass."})
    max_tokens_per_sample: int | None = field(default=None, metadata={"help": "Random tokens n per sample (all if None)."})
    group_normalize: bool = field(default=False, metadata={"help": "Per-prompt reward normalisation (Sec. 4.3)."})
    reward_column: str = field(default="reward", metadata={"help": "Dataset column with the trajectory reward."})
    group_column: str = field(default="group_id", metadata={"help": "Dataset column with the prompt/group id."})
    value_target: str = field(default="reward", metadata={"help": "'reward' (Eq. 13) or 'reward_to_go'."})
    value_discount: float = field(default=1.0, metadata={"help": "Discount of later tokens in the reward-to-go."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: the trainer reads raw rows."})

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in ("mse", "exp_mse"):
            raise ValueError(f"`loss_type` must be 'mse' or 'exp_mse', got {self.loss_type!r}.")
        if self.value_target not in ("reward", "reward_to_go"):
            raise ValueError(f"`value_target` must be 'reward' or 'reward_to_go', got {self.value_target!r}.")
        if not 0.0 <= self.value_discount <= 1.0:
            raise ValueError(f"`value_discount` must lie in [0, 1], got {self.value_discount}.")
        if self.num_draws < 1:
            raise ValueError(f"`num_draws` must be >= 1, got {self.num_draws}.")


__all__ = ["ValueConfig"]

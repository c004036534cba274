"""DeepSpeed ZeRO-3 and the models a run keeps whole.

Under ZeRO-3, transformers builds every `from_pretrained` model sharded (`deepspeed.zero.Init`) once a DeepSpeed
configuration is active, which a `TrainingArguments` with DeepSpeed activates. Only the trained policy belongs
there: the codec, reward models and critics are run (or optimised) outside the DeepSpeed engine, and sampling reads
weights directly. [`zero3_init_disabled`] builds models whole; [`gathered_state_dict`] copies a sharded model's
weights back into a whole one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def zero3_init_disabled() -> Iterator[None]:
    """Models built inside this context are not sharded by ZeRO-3 (a no-op without an active DeepSpeed
    configuration); the configuration is active again on exit. Like accelerate's
    `DeepSpeedPlugin.zero3_init_context_manager(enable=False)`, but also for the configuration a `TrainingArguments`
    activates, which that context does not switch off."""
    from transformers.integrations import deepspeed as hf_deepspeed

    # transformers keeps the active configuration behind a weak reference, with no public getter for the object
    reference = hf_deepspeed._hf_deepspeed_config_weak_ref
    active = reference() if reference is not None else None
    if active is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(active)


def is_zero3_sharded(model: nn.Module) -> bool:
    """Whether any parameter of `model` is a ZeRO-3 shard (DeepSpeed marks them with `ds_id`)."""
    return any(hasattr(parameter, "ds_id") for parameter in model.parameters())


def gathered_state_dict(model: nn.Module) -> dict:
    """A whole copy of `model`'s parameters and buffers, gathered from their ZeRO-3 shards on every rank when they are
    sharded (`deepspeed.zero.GatheredParameters`)."""
    if not is_zero3_sharded(model):
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


__all__ = ["gathered_state_dict", "is_zero3_sharded", "zero3_init_disabled"]

"""The base class of the project's RL trainers: model and PEFT set-up, the reference, reward resolution, metrics and
model cards, so that each trainer holds only its method."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoModel, Trainer, TrainerCallback

from ..zero3 import gathered_state_dict, zero3_init_disabled
from .ardm_utils import RewardFunc, resolve_reward_funcs, reward_func_name
from .base import (
    MetricsMixin,
    ModelCardMixin,
    check_processing_class,
    identity_collator,
    is_peft_model,
    prepare_policy_and_reference,
    reference_model_context,
    unwrap_peft,
)
from .checkpointing import AtomicCheckpointMixin
from .speech_rl_config import SpeechRLConfig


class SpeechRLTrainer(AtomicCheckpointMixin, MetricsMixin, ModelCardMixin, Trainer):
    r"""
    Base of [`VGPOTrainer`], [`ARDMDPOTrainer`] and [`DiffROTrainer`] (TRL's `_BaseTrainer` plays this role there).

    It owns what every RL trainer of the project does the same way:

    - the policy: loaded with `_auto_model_class.from_pretrained` when given as a path or Hub id, passed to the
      [`configure_model`] hook (compatibility checks, dropout), then wrapped with PEFT when `peft_config` is given
      (`args.peft_modules_to_save` stay fully trainable);
    - the reference: `ref_model` if given, else the policy with its adapters disabled (PEFT: no second copy), else a
      frozen copy of the initial policy; prepared for the distributed set-up like TRL's (DeepSpeed, FSDP, or
      `accelerator.prepare_model(..., evaluation_mode=True)`) and entered with [`reference`];
    - reward functions in TRL's convention (`reward_funcs`, `args.reward_weights`), checked once: `reward_funcs`,
      `reward_weights` (a tensor) and `reward_names` (empty without `reward_funcs`);
    - raw rows as batches (`identity_collator`: subclasses batch them in `_prepare_inputs`), TRL-style metric buffering
      (`_record_metric`, flushed in `log`) and model cards from `hub_cards/`;
    - checkpoints that survive a kill ([`AtomicCheckpointMixin`]): a checkpoint is marked whole after its last file,
      and `resume_from_checkpoint=True` resumes from the last whole one. Extra state goes in
      `_save_extra_checkpoint_state`.

    Args:
        model (`PreTrainedModel` or `str`): the policy, or a path / Hub id.
        args ([`SpeechRLConfig`]): the configuration.
        reward_funcs (`RewardFunc` or `list[RewardFunc]`, *optional*): reward callables, for trainers that score
            samples.
        ref_model (`PreTrainedModel`, *optional*): the reference (see above).
        needs_reference (`bool`, *optional*, defaults to `True`): `False` when the method has no reference term
            (e.g. DiffRO with `beta=0`): no frozen copy is made.
        train_dataset, eval_dataset, processing_class, callbacks, optimizers: as in [`~transformers.Trainer`].
        peft_config (`peft.PeftConfig`, *optional*): adapters to train instead of the full policy.
    """

    _auto_model_class: ClassVar[type] = AutoModel

    def __init__(
        self,
        model: nn.Module | str,
        args: SpeechRLConfig,
        reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
        ref_model: nn.Module | None = None,
        needs_reference: bool = True,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        peft_config: Any = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
    ):
        for name, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
                raise ValueError(f"`{name}` is empty: give it at least one row (or leave it out).")
        processing_class = check_processing_class(processing_class)
        model = self.load_model(model)
        self.reward_funcs, self.reward_weights, self.reward_names = [], torch.zeros(0), []
        if reward_funcs is not None:
            self.reward_funcs, self.reward_weights = resolve_reward_funcs(reward_funcs, getattr(args, "reward_weights",
                                                                                                None))  # fmt: skip
            self.reward_names = [reward_func_name(f) for f in self.reward_funcs]
        model = self.configure_model(model, args)
        model, ref_model = prepare_policy_and_reference(model, ref_model, peft_config, args.peft_modules_to_save,
                                                        needs_reference=needs_reference)  # fmt: skip
        self.ref_model = ref_model
        super().__init__(model=model, args=args, data_collator=identity_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, callbacks=callbacks,
                         optimizers=optimizers)  # fmt: skip
        self.model_accepts_loss_kwargs = False
        self._init_metrics()
        if self.ref_model is not None:
            self.ref_model = self.prepare_frozen_model(self.ref_model)

    def prediction_step(
        self, model: nn.Module, inputs: Any, prediction_loss_only: bool, ignore_keys: list[str] | None = None
    ) -> tuple[torch.Tensor, None, None]:
        """Evaluation on `eval_dataset`: the method's loss on the eval rows (rollouts of the eval prompts for VGPO
        and DiffRO), under `torch.no_grad()`; the metrics it records are logged with the `eval_` prefix."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    @classmethod
    def load_model(cls, model: nn.Module | str) -> nn.Module:
        """`model` itself, or `_auto_model_class.from_pretrained(model)` for a path or Hub id."""
        if not isinstance(model, str):
            return model
        with zero3_init_disabled():  # whole until DeepSpeed prepares it (the reference copies it)
            return cls._auto_model_class.from_pretrained(model)

    def configure_model(self, model: nn.Module, args: SpeechRLConfig) -> nn.Module:
        """Hook run on the loaded policy before PEFT wrapping and before `Trainer.__init__` (checks, dropout); returns
        the policy. Raising here leaves every model untouched."""
        return model

    def prepare_frozen_model(self, module: nn.Module) -> nn.Module:
        """Place a frozen model (the reference) for the distributed set-up, as TRL does: a DeepSpeed inference engine
        (ZeRO-2), an FSDP wrap, or `accelerator.prepare_model(..., evaluation_mode=True)` (device placement, no DDP
        wrap). Under ZeRO-3 it stays whole on every rank: the samplers and the evaluation run it on one process, where
        a sharded model's forward hooks would wait for the other ranks. The caller's module is put in eval mode but
        its `requires_grad` flags are left as they are (it is only ever run under `torch.no_grad()`), so it can seed
        another run's policy."""
        module.eval()
        if self._zero3:
            return module.to(self.accelerator.device)
        if self.is_deepspeed_enabled:
            from trl.models import prepare_deepspeed

            return prepare_deepspeed(module, self.accelerator)
        if self.is_fsdp_enabled:
            from trl.models import prepare_fsdp

            return prepare_fsdp(module, self.accelerator)
        return self.accelerator.prepare_model(module, evaluation_mode=True)

    @property
    def _policy(self) -> nn.Module:
        """The policy's `PreTrainedModel` (no DDP / DeepSpeed / PEFT wrapper)."""
        return unwrap_peft(self.accelerator.unwrap_model(self.model))

    @contextlib.contextmanager
    def reference(self) -> Iterator[nn.Module]:
        """The reference model: `ref_model`, or the policy with its PEFT adapters disabled."""
        with reference_model_context(self.accelerator.unwrap_model(self.model), self.ref_model) as ref:
            yield ref

    @property
    def _zero3(self) -> bool:
        plugin = self.accelerator.state.deepspeed_plugin if self.is_deepspeed_enabled else None
        return plugin is not None and plugin.zero_stage == 3

    @contextlib.contextmanager
    def _gathered(self, module: nn.Module) -> Iterator[nn.Module]:
        """`module` unwrapped from its DDP / DeepSpeed wrapper; under DeepSpeed ZeRO-3 its sharded parameters are
        gathered on every rank for the duration (TRL's `unwrap_model_for_generation`): samplers read weights
        directly, outside the forward hooks that gather them otherwise."""
        if not self._zero3:
            yield self.accelerator.unwrap_model(module)
            return
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(module, self.accelerator) as unwrapped:
            yield unwrapped

    def whole_policy(self) -> nn.Module:
        """The trained policy as one whole model on this process, to evaluate or sample after training: the policy
        itself, or under DeepSpeed ZeRO-3 a copy built from the weights gathered from every rank (call it on every
        process; the copy keeps PEFT adapters as adapters)."""
        model = self.accelerator.unwrap_model(self.model)
        if not self._zero3:
            return model
        state = gathered_state_dict(model)
        base = unwrap_peft(model)
        with zero3_init_disabled():
            whole = type(base)(base.config)
        if getattr(base, "generation_config", None) is not None:  # the sampling settings saved with the model
            whole.generation_config = copy.deepcopy(base.generation_config)
        if is_peft_model(model):
            from peft import get_peft_model

            whole = get_peft_model(whole, model.peft_config[model.active_adapter])
        whole.load_state_dict(state)
        return whole.to(self.accelerator.device).eval()

    @contextlib.contextmanager
    def sampling_policy(self) -> Iterator[nn.Module]:
        """The policy's `PreTrainedModel` to sample from (PEFT adapters active), whole on every rank under ZeRO-3."""
        with self._gathered(self.model_wrapped) as model:
            yield unwrap_peft(model)

    @contextlib.contextmanager
    def sampling_reference(self) -> Iterator[nn.Module]:
        """The reference's `PreTrainedModel` to sample from ([`reference`]), whole on every rank under ZeRO-3."""
        if self.ref_model is not None:  # never sharded (see `prepare_frozen_model`)
            yield unwrap_peft(self.accelerator.unwrap_model(self.ref_model))
            return
        with self._gathered(self.model_wrapped) as model, reference_model_context(model) as ref:
            yield unwrap_peft(ref)


__all__ = ["SpeechRLTrainer"]

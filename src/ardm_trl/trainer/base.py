"""Pieces shared by every ardm_trl trainer: metric buffering/logging, model cards, PEFT and reference handling."""

from __future__ import annotations

import contextlib
import copy
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.utils import is_peft_available, logging

from .papers import Paper

logger = logging.get_logger(__name__)

if is_peft_available():
    from peft import PeftConfig, PeftModel, get_peft_model


def _hub_cards_dir() -> Path:
    """The folder holding the model-card templates (`hub_cards/` of the repository, shipped in the package)."""
    packaged = Path(__file__).resolve().parent.parent / "hub_cards"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "hub_cards"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def render_model_card(template: str, **fields: Any) -> str:
    """Fill the model-card template `hub_cards/<template>` with `fields` and the framework versions.

    Placeholders are written `{{ name }}`; the versions of ardm_trl, transformers, trl, torch, peft, accelerate and
    diffusers are always available as `ardm_trl_version`, `transformers_version`, ... Unknown placeholders are left
    as `unknown`.
    """
    text = (_hub_cards_dir() / template).read_text()
    packages = ("ardm_trl", "transformers", "trl", "torch", "peft", "accelerate", "diffusers", "datasets")
    values = {f"{pkg}_version": _package_version(pkg) for pkg in packages}
    values.update(fields)

    def substitute(match: re.Match) -> str:
        value = values.get(match.group(1), "unknown")
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) if value else "none"
        return "unknown" if value is None else str(value)

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", substitute, text)


class MetricsMixin:
    """TRL-style metric buffering: values recorded during steps are averaged and flushed in `log()`.

    Mix in before `transformers.Trainer`; call `self._record_metric(key, value)` anywhere in a step.
    """

    def _init_metrics(self) -> None:
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def _record_metric(self, key: str, value: float | torch.Tensor, mode: str | None = None) -> None:
        if mode is None:
            mode = "train" if self.model.training else "eval"
        if isinstance(value, torch.Tensor):
            value = value.detach().float().mean().item()
        self._metrics[mode][key].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {key: sum(val) / len(val) for key, val in self._metrics[mode].items() if val}
        if mode == "eval":
            metrics = {f"eval_{key}": val for key, val in metrics.items()}
        logs = {**logs, **metrics}
        super().log(logs, start_time)
        self._metrics[mode].clear()


class ModelCardMixin:
    """Writes `README.md` beside a saved model from a template in `hub_cards/` (TRL's `create_model_card`): at every
    `save_model` and before `push_to_hub` uploads. The card names the method's paper (with BibTeX), the base model
    (as `base_model:` metadata when it is a Hub id) and the reward functions."""

    _card_template: str = "trainer_output.md"
    _trainer_name: str = "Trainer"
    _paper: Paper | None = None
    _tag_names: list[str] = ["ardm_trl"]

    def _model_card_fields(self) -> dict[str, Any]:
        """Extra template fields of the concrete trainer (reward functions, hyper-parameters, ...)."""
        return {}

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, output_dir: str | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if not self.is_world_process_zero():
            return
        folder = Path(output_dir or self.args.output_dir)
        base = base_model_name(self.model)
        hub_id = base if base is not None and is_hub_id(base) else None
        model_id = self.args.hub_model_id or f"path/to/{model_name or folder.name}"
        has_tokenizer = isinstance(self.processing_class, PreTrainedTokenizerBase)  # saved with the model
        card = render_model_card(
            self._card_template,
            model_name=model_name or folder.name,
            model_id=model_id,
            base_model=base or "none recorded",
            base_model_metadata=f"base_model: {hub_id}\n" if hub_id else "",
            dataset_name=dataset_name or "not recorded",
            trainer_name=self._trainer_name,
            paper_title=self._paper.title if self._paper else "none",
            paper_url=self._paper.url if self._paper else "none",
            citation=self._paper.citation if self._paper else "",
            tags=self._tag_names,
            tags_metadata="".join(f"- {tag}\n" for tag in self._tag_names),
            tokenizer_import=", AutoTokenizer" if has_tokenizer else "",
            tokenizer_usage=f'tokenizer = AutoTokenizer.from_pretrained("{model_id}")\n' if has_tokenizer else "",
            **self._model_card_fields(),
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README.md").write_text(card)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if not _internal_call and self.args.should_save:
            self.create_model_card(output_dir=output_dir)


def base_model_name(model: nn.Module) -> str | None:
    """Where `model` was loaded from (its config's `_name_or_path`): a Hub id as it is, a local folder by its name
    only (an absolute path of the machine a run happened on means nothing to a reader); `None` when not recorded."""
    model = unwrap_peft(getattr(model, "module", model))
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    if name is None or is_hub_id(name):
        return name
    return f"{Path(name).name} (a local folder)"


def is_hub_id(name: str) -> bool:
    """`namespace/name` that is not a local path."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def prepare_peft_model(model: nn.Module, peft_config: PeftConfig | None, trainable_modules: list[str] | None = None):
    """Wrap `model` with LoRA (or any PEFT method) and optionally mark whole sub-modules as trainable.

    Args:
        model (`nn.Module`): the policy.
        peft_config (`peft.PeftConfig` or `None`): the adapter configuration; `None` returns `model` unchanged.
        trainable_modules (`list[str]`, *optional*): names of sub-modules (e.g. `["head"]`) that stay fully
            trainable next to the adapters; with PEFT they are saved as `modules_to_save`.
    """
    if peft_config is None:
        return model
    if not is_peft_available():
        raise ImportError("`peft_config` was given but peft is not installed: `pip install peft`.")
    if trainable_modules:
        names = {name.split(".")[-1] for name, _ in model.named_modules()} | {n for n, _ in model.named_modules()}
        unknown = [m for m in trainable_modules if m not in names]
        if unknown:
            top = sorted(name for name, _ in model.named_children())
            raise ValueError(f"`peft_modules_to_save` names modules the model does not have: {unknown}; its top-level "
                             f"modules are {top}.")  # fmt: skip
        existing = list(getattr(peft_config, "modules_to_save", None) or [])
        peft_config.modules_to_save = sorted(set(existing) | set(trainable_modules))
    model = get_peft_model(model, peft_config)
    return model


def check_finite(loss: torch.Tensor, step: int, term: str, cause: str) -> None:
    """Raise `FloatingPointError` (before the optimiser step that would write it into the weights) when a loss is NaN
    or infinite, naming the training step, the loss term and its likely cause. transformers' logging filters
    non-finite losses (`logging_nan_inf_filter`), so without this a diverged run logs healthy-looking numbers."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise FloatingPointError(
            f"Step {step}: the {term} is not finite ({float(loss.detach().float().mean())}). Likely cause: {cause} "
            "No update was applied by this step."
        )


class CallableTextEncoder:
    """A `processing_class` given as a plain function `text -> list[int]`: usable like a tokenizer (`encode`, call)
    and saved as nothing (`save_pretrained` writes no file), so a checkpoint save does not fail on it. Pass the same
    function again when resuming or reloading."""

    def __init__(self, encode: Callable[[str], list[int]]):
        self._encode = encode

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return self._encode(text)

    __call__ = encode

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> tuple[str, ...]:
        return ()


def check_processing_class(processing_class: Any) -> Any:
    """`processing_class` ready for `Trainer`: a tokenizer / processor as it is, a plain function wrapped in
    [`CallableTextEncoder`]; anything else raises `TypeError` at construction (not at the first save or batch)."""
    if isinstance(processing_class, (str, bytes, Path)):  # a str has `.encode` too: it would "tokenise" to bytes
        raise TypeError(
            f"`processing_class` is a path or name ({processing_class!r}), not a tokenizer: load it first, e.g. "
            "`ARDMTextTokenizer.from_pretrained(path)` or `AutoTokenizer.from_pretrained(path)`."
        )
    if processing_class is None or hasattr(processing_class, "save_pretrained"):
        return processing_class
    if callable(getattr(processing_class, "encode", None)) or callable(processing_class):
        return CallableTextEncoder(getattr(processing_class, "encode", processing_class))
    raise TypeError(
        f"`processing_class` must be a tokenizer (with `encode`) or a function `text -> list[int]`, got "
        f"{type(processing_class).__name__}."
    )


def identity_collator(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the raw rows: the RL trainers batch them themselves (rollouts, preference pairs) in `_prepare_inputs`."""
    return features


def prepare_policy_and_reference(
    model: nn.Module,
    ref_model: nn.Module | None,
    peft_config: PeftConfig | None,
    trainable_modules: list[str] | None = None,
    needs_reference: bool = True,
) -> tuple[nn.Module, nn.Module | None]:
    """The policy (wrapped with PEFT if configured; [`SpeechRLTrainer.load_model`] loads it from a path first) and its
    reference.

    The reference is `ref_model` if given; else, with `peft_config`, `None` (the policy with adapters disabled, see
    `reference_model_context`: no second copy in memory); else a frozen copy of the initial policy. A reference is
    only ever run under `torch.no_grad()`, in eval mode.
    """
    if peft_config is not None:
        model = prepare_peft_model(model, peft_config, trainable_modules)
    elif ref_model is None and needs_reference:
        ref_model = copy.deepcopy(model).requires_grad_(False)
    if ref_model is not None:
        ref_model.eval()
    return model, ref_model


def is_peft_model(model: nn.Module) -> bool:
    return is_peft_available() and isinstance(model, PeftModel)


@contextlib.contextmanager
def reference_model_context(model: nn.Module, ref_model: nn.Module | None = None) -> Iterator[nn.Module]:
    """Yield the reference model: `ref_model` if given, else `model` with its PEFT adapters disabled.

    With LoRA the reference is the same network with adapters (and `modules_to_save` copies) switched off, so no
    second copy of the weights is held in memory.
    """
    if ref_model is not None:
        yield ref_model
        return
    if is_peft_model(model):
        with model.disable_adapter():
            yield model
        return
    raise ValueError(
        "No reference model: pass `ref_model=` (a frozen copy of the initial policy) or train with `peft_config=` "
        "so that the reference is the policy with adapters disabled."
    )


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The underlying `PreTrainedModel` of a PEFT-wrapped model (the model itself otherwise)."""
    return model.get_base_model() if is_peft_model(model) else model


__all__ = [
    "MetricsMixin",
    "ModelCardMixin",
    "check_finite",
    "identity_collator",
    "is_peft_model",
    "prepare_peft_model",
    "prepare_policy_and_reference",
    "reference_model_context",
    "render_model_card",
    "unwrap_peft",
]

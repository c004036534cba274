"""Configuration of the multi-task token reward model (MTR) of DiffRO."""

from __future__ import annotations

from transformers import BertConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

_DEFAULT_ENCODER = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "max_position_embeddings": 1024,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "vocab_size": 1,  # the encoder's own word table is unused: tokens are embedded by the reward model
    "pad_token_id": 0,
}

DEFAULT_ATTRIBUTE_LABELS: dict[str, list[str]] = {
    "gender": ["female", "male"],
    "pitch_level": ["low", "mid", "high"],
    "rate_level": ["slow", "normal", "fast"],
}


class TokenRewardConfig(PreTrainedConfig):
    r"""
    Configuration of [`TokenRewardModel`], the multi-task reward model (MTR) that reads speech-tokenizer codes (or soft
    one-hot vectors over them) and predicts:

    - the text, with a CTC head over `num_text_units` units plus a blank (`log P(text | tokens)`, the pronunciation
      reward);
    - one class per attribute task (`attribute_labels`, e.g. gender, pitch level, speaking rate);
    - a quality score (regression of e.g. the DNSMOS of the decoded audio), when `use_quality_head`.

    Args:
        codebook_size (`int`, *optional*, defaults to 512):
            Number of codes of the speech tokenizer (the last dimension of soft tokens).
        num_text_units (`int`, *optional*, defaults to 128):
            Size of the CTC text vocabulary; the blank is the extra class `num_text_units`. Use the same text units
            as the codec LM so that one `text_ids` column serves both.
        attribute_labels (`dict[str, list[str]]`, *optional*):
            Attribute task name -> class names, e.g. `{"rate_level": ["slow", "normal", "fast"]}`. Defaults to
            gender (2), pitch level (3) and speaking rate (3), the labels of `ardm_trl.data.build_tts_corpus`.
        use_quality_head (`bool`, *optional*, defaults to `True`):
            Whether to add the quality regression head.
        ctc_upsample (`int`, *optional*, defaults to 2):
            Each token emits this many CTC frames (a linear layer to `ctc_upsample * (num_text_units + 1)` logits),
            so texts longer than the token sequence remain alignable.
        encoder_config (`dict` or [`~transformers.BertConfig`], *optional*):
            The bidirectional transformer encoder (fed with `inputs_embeds`). Defaults to 4 layers of width 256.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation.
    """

    model_type = "ardm_token_reward"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=BertConfig, init_kwargs=_DEFAULT_ENCODER)}

    codebook_size: int = 512
    num_text_units: int = 128
    attribute_labels: dict[str, list[str]] | None = None
    use_quality_head: bool = True
    ctc_upsample: int = 2
    encoder_config: dict | BertConfig | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if isinstance(self.encoder_config, dict):
            self.encoder_config = {**_DEFAULT_ENCODER, **self.encoder_config}
        super().__post_init__(**kwargs)
        if self.attribute_labels is None:
            self.attribute_labels = {task: list(names) for task, names in DEFAULT_ATTRIBUTE_LABELS.items()}
        for task, names in self.attribute_labels.items():
            if not isinstance(names, (list, tuple)) or len(names) < 2 or len(set(names)) != len(names):
                raise ValueError(
                    f"`attribute_labels['{task}']` must list at least 2 distinct class names, got {names!r}."
                )
        if self.codebook_size < 2:
            raise ValueError(f"`codebook_size` must be >= 2, got {self.codebook_size}.")
        if self.num_text_units < 1:
            raise ValueError(f"`num_text_units` must be >= 1, got {self.num_text_units}.")
        if self.ctc_upsample < 1:
            raise ValueError(f"`ctc_upsample` must be a positive integer, got {self.ctc_upsample}.")

    @property
    def ctc_blank_id(self) -> int:
        return self.num_text_units

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    def label_to_id(self, task: str, label: str | int) -> int:
        """Class index of `label` (a class name or an index) for the attribute `task`."""
        if task not in self.attribute_labels:
            raise ValueError(f"Unknown attribute task '{task}'; this model has {sorted(self.attribute_labels)}.")
        names = self.attribute_labels[task]
        if isinstance(label, str):
            if label not in names:
                raise ValueError(f"Unknown label '{label}' for attribute '{task}'; expected one of {names}.")
            return names.index(label)
        if not 0 <= int(label) < len(names):
            raise ValueError(f"Label index {label} out of range for attribute '{task}' ({len(names)} classes).")
        return int(label)


__all__ = ["DEFAULT_ATTRIBUTE_LABELS", "TokenRewardConfig"]

"""Configuration of the DiTAR-style autoregressive diffusion model (ARDM) and its value model / discriminator."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, LlamaConfig, PretrainedConfig

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
HEAD_TYPES = ("adaln_mlp",)

DEFAULT_BACKBONE = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "vocab_size": 1,
    "bos_token_id": None,
    "eos_token_id": None,
    "pad_token_id": None,
    "rms_norm_eps": 1e-5,
    "attention_dropout": 0.0,
}

DEFAULT_SCHEDULER = {
    "_class_name": "DDPMScheduler",
    "num_train_timesteps": 1000,
    # DDPM's linear schedule: with "trailing" spacing the first of 16 steps starts at t=999 (pure noise) and the
    # posterior step amplifies head errors by ~1.3x; the cosine schedule's alpha_999 ~ 5e-5 amplifies them ~2000x,
    # which breaks guidance (see docs/models.md).
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    # Clip the predicted clean patch to +-clip_sample_range at every step: the latents are normalised (unit std), and
    # without a bound one out-of-range patch feeds back through the LM and the head's history input and grows
    # exponentially (seen with the small bundled ARDM: patches reached 1e11, then NaN, after ~50 patches).
    "clip_sample": True,
    "clip_sample_range": 6.0,
    "timestep_spacing": "trailing",
    # "fixed_large" (beta_t): with an exact head and 16 steps, right for a unit-variance token and too spread for
    # tokens of lower conditional variance; "fixed_small" (the posterior variance) is too narrow at every variance
    # (benchmarks/sampler_variance.py).
    "variance_type": "fixed_large",
}

class ARDMConfig(PretrainedConfig):
    r"""
    Configuration of [`ARDMForSpeechSynthesis`]: a causal transformer over patches of continuous latent frames
    (conditioned on text tokens and an optional voice prompt) and a small diffusion head that denoises the next patch.

    Args:
        latent_dim (`int`, *optional*, defaults to `16`):
            Channels of one latent frame (the codec's latent size).
        patch_size (`int`, *optional*, defaults to `2`):
            Frames per patch. The LM runs over patches; the head generates one patch (`patch_size * latent_dim`
            numbers) per LM step.
        text_vocab_size (`int`, *optional*, defaults to `256`):
            Size of the text (phoneme / character) vocabulary. Id `text_pad_token_id` is padding.
        text_pad_token_id (`int`, *optional*, defaults to `0`):
            Padding id of the text vocabulary.
        backbone_config (`dict` or `PretrainedConfig`, *optional*):
            A transformers decoder configuration for the causal LM (Llama-style by default, so KV cache, SDPA,
            gradient checkpointing and LoRA target names such as `q_proj`/`v_proj` come from transformers). A dict
            must contain `model_type` or is read as a `LlamaConfig`. Its `vocab_size` is unused (inputs are
            embeddings).
        head_type (`str`, *optional*, defaults to `"adaln_mlp"`):
            The diffusion head. `"adaln_mlp"`: MAR's residual MLP with adaptive layer norm, conditioned on the LM
            state, the diffusion time and the previous patch (DiTAR's historical context). See `docs/models.md`.
        head_hidden_size (`int`, *optional*, defaults to `512`):
            Width of the diffusion head.
        head_num_layers (`int`, *optional*, defaults to `4`):
            Residual blocks of the diffusion head.
        scheduler_config (`dict`, *optional*):
            A diffusers scheduler configuration (`DDPMScheduler` by default: 1000 steps, linear betas, "trailing"
            timestep spacing, "fixed_large" variance, predicted clean patches clipped to +-6, epsilon prediction). `prediction_type` is one of `"epsilon"`, `"v_prediction"`,
            `"sample"`.
        num_inference_steps (`int`, *optional*, defaults to `16`):
            Denoising steps per patch at sampling time (the VGPO paper uses DDPM with 16 steps).
        diffusion_batch_multiplier (`int`, *optional*, defaults to `4`):
            Noise draws (t, eps) per LM state in the training loss (MAR's "diffusion batch multiplier"): the LM pass
            is the expensive part, the head is cheap.
        cfg_dropout_prob (`float`, *optional*, defaults to `0.1`):
            Probability of replacing the text by the learned null embedding in training (for LM guidance).
        lm_guidance_scale (`float`, *optional*, defaults to `2.0`):
            Default LM (classifier-free) guidance weight `w`: `pred = pred_u + w * (pred_c - pred_u)`; 1 is the
            conditional model. Must be >= 0.
        stop_loss_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the end-of-speech (stop) binary cross-entropy in the training loss.
        stop_threshold (`float`, *optional*, defaults to `0.5`):
            Stop probability above which generation ends a sequence.
        max_patches (`int`, *optional*, defaults to `512`):
            Default maximum number of generated patches.
        guided_attention_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the guided-attention loss in pretraining (`ardm_trl.models.guided_attention`; 0 = off). It pulls
            the first `guided_attention_heads` heads of every LM layer onto a near-diagonal text-speech alignment, so
            a small LM learns to read the text instead of only continuing the speech. Pretraining passes then use
            eager attention; sampling and the RL trainers are unchanged.
        guided_attention_sigma (`float`, *optional*, defaults to `0.2`):
            Width of the diagonal window, as a fraction of the text length (DC-TTS's `g`).
        guided_attention_heads (`int`, *optional*):
            Heads per layer that are guided (the first ones); default: half of the heads.
        ctc_loss_weight (`float`, *optional*, defaults to `0.0`):
            Weight of an auxiliary CTC loss of the text from the LM states in pretraining (0 = off, and no CTC head is
            built): each state emits `patch_size` frames over the text vocabulary (blank = `text_pad_token_id`), so
            the state that predicts a patch must know which text units it speaks. Unused in sampling and RL.
        context_noise_std (`float`, *optional*, defaults to `0.0`):
            Standard deviation of Gaussian noise added in pretraining to the clean patches the model *reads* (the LM's
            patch inputs and the head's previous-patch input), never to the patches it predicts (0 = off). At sampling
            time the context is the model's own, imperfect output; a model trained on exact context learns to
            continue it rather than read the text, and its errors compound (exposure bias). Noisy context makes the
            text the more reliable source (the role of Tacotron's always-on pre-net dropout). The voice prompt stays
            clean. Unused in sampling and RL.
    """

    model_type = "ardm"

    def __init__(
        self,
        latent_dim: int = 16,
        patch_size: int = 2,
        text_vocab_size: int = 256,
        text_pad_token_id: int = 0,
        backbone_config: dict[str, Any] | PretrainedConfig | None = None,
        head_type: str = "adaln_mlp",
        head_hidden_size: int = 512,
        head_num_layers: int = 4,
        scheduler_config: dict[str, Any] | None = None,
        num_inference_steps: int = 16,
        diffusion_batch_multiplier: int = 4,
        cfg_dropout_prob: float = 0.1,
        lm_guidance_scale: float = 2.0,
        stop_loss_weight: float = 1.0,
        stop_threshold: float = 0.5,
        max_patches: int = 512,
        guided_attention_weight: float = 0.0,
        guided_attention_sigma: float = 0.2,
        guided_attention_heads: int | None = None,
        ctc_loss_weight: float = 0.0,
        context_noise_std: float = 0.0,
        **kwargs: Any,
    ):
        if backbone_config is None:
            backbone_config = LlamaConfig(**DEFAULT_BACKBONE)
        elif isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            model_type = backbone_config.pop("model_type", "llama")
            for key in ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"):
                backbone_config.setdefault(key, DEFAULT_BACKBONE[key])  # inputs are embeddings: no token table
            backbone_config = AutoConfig.for_model(model_type, **backbone_config)
        self.backbone_config = backbone_config
        self.latent_dim = latent_dim
        self.patch_size = patch_size
        self.text_vocab_size = text_vocab_size
        self.text_pad_token_id = text_pad_token_id
        self.head_type = head_type
        self.head_hidden_size = head_hidden_size
        self.head_num_layers = head_num_layers
        self.scheduler_config = {**DEFAULT_SCHEDULER, **(scheduler_config or {})}
        self.num_inference_steps = num_inference_steps
        self.diffusion_batch_multiplier = diffusion_batch_multiplier
        self.cfg_dropout_prob = cfg_dropout_prob
        self.lm_guidance_scale = lm_guidance_scale
        self.stop_loss_weight = stop_loss_weight
        self.stop_threshold = stop_threshold
        self.max_patches = max_patches
        self.guided_attention_weight = guided_attention_weight
        self.guided_attention_sigma = guided_attention_sigma
        self.guided_attention_heads = guided_attention_heads
        self.ctc_loss_weight = ctc_loss_weight
        self.context_noise_std = context_noise_std
        super().__init__(**kwargs)
        self.validate()

    @property
    def patch_dim(self) -> int:
        """Numbers in one patch: `patch_size * latent_dim`."""
        return self.patch_size * self.latent_dim

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config["prediction_type"]

    def validate(self) -> None:
        """Raise a `ValueError` that says how to fix an inconsistent configuration."""
        for name in ("latent_dim", "patch_size", "text_vocab_size", "head_hidden_size", "head_num_layers",
                     "num_inference_steps", "diffusion_batch_multiplier", "max_patches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"Unknown prediction type {self.prediction_type!r} in `scheduler_config`; use one of "
                f"{PREDICTION_TYPES}."
            )
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"Unknown `head_type` {self.head_type!r}; use one of {HEAD_TYPES}.")
        if self.lm_guidance_scale < 0:
            raise ValueError(
                f"`lm_guidance_scale` must be >= 0 (1 = conditional model, 0 = unconditional), got "
                f"{self.lm_guidance_scale}."
            )
        if not 0.0 <= self.cfg_dropout_prob < 1.0:
            raise ValueError(f"`cfg_dropout_prob` must be in [0, 1), got {self.cfg_dropout_prob}.")
        if not 0.0 < self.stop_threshold < 1.0:
            raise ValueError(f"`stop_threshold` must be in (0, 1), got {self.stop_threshold}.")
        if self.guided_attention_weight < 0 or self.guided_attention_sigma <= 0:
            raise ValueError(
                f"`guided_attention_weight` must be >= 0 (0 = off) and `guided_attention_sigma` > 0, got "
                f"{self.guided_attention_weight} and {self.guided_attention_sigma}."
            )
        if self.ctc_loss_weight < 0:
            raise ValueError(f"`ctc_loss_weight` must be >= 0 (0 = off), got {self.ctc_loss_weight}.")
        if self.context_noise_std < 0:
            raise ValueError(f"`context_noise_std` must be >= 0 (0 = off), got {self.context_noise_std}.")
        heads = self.guided_attention_heads
        if heads is not None and not 1 <= heads <= self.backbone_config.num_attention_heads:
            raise ValueError(
                f"`guided_attention_heads` must be between 1 and the LM's {self.backbone_config.num_attention_heads} "
                f"attention heads (or None for half of them), got {heads}."
            )
        if not hasattr(self.backbone_config, "hidden_size"):
            raise ValueError("`backbone_config` must be a transformers decoder config with a `hidden_size`.")

class ARDMValueConfig(ARDMConfig):
    r"""
    Configuration of [`ARDMValueModel`]: an [`ARDMConfig`] whose diffusion head ends in a scalar (VGPO Sec. 4.1).
    Build it from a trained ARDM with [`ARDMValueModel.from_ardm`].
    """

    model_type = "ardm_value"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

class ARDMDiscriminatorConfig(ARDMConfig):
    r"""
    Configuration of [`ARDMDiscriminator`]: the body of the value model, trained with the least-squares GAN loss of
    adversarial distribution matching (VGPO Eq. 17).
    """

    model_type = "ardm_discriminator"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

__all__ = ["ARDMConfig", "ARDMDiscriminatorConfig", "ARDMValueConfig"]

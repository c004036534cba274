"""DiTAR-style autoregressive diffusion model (ARDM) for speech synthesis, its value model and its discriminator.

An ARDM factorises `p(x) = prod_n p(x_n | x_<n, c)` over patches `x_n` of continuous latent frames; a causal LM
encodes the condition `c` (text, voice prompt) and `x_<n`, and a diffusion head models `p(x_n | LM state)`
(VGPO paper, Sec. 2.2 and Fig. 1). See `docs/models.md` for the equations and the design choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from ...zero3 import gathered_state_dict, zero3_init_disabled
from ..guided_attention import guided_attention_loss
from .backbone import ARDMBackbone
from .configuration_ardm import ARDMConfig, ARDMDiscriminatorConfig, ARDMValueConfig
from .diffusion import NoiseSchedule, draw_noisy_tokens
from .generation_ardm import ARDMGenerationMixin
from .head import DiffusionHead, is_broadcast_over_draws

logger = logging.get_logger(__name__)


@dataclass
class ARDMStates(ModelOutput):
    """LM states of every target patch of given clean trajectories, from one teacher-forced pass.

    Args:
        hidden (`torch.FloatTensor` of shape `(B, N, H)`): the conditional LM state that predicts patch `n`.
        unconditional_hidden (`torch.FloatTensor` of shape `(B, N, H)`, *optional*): the same with the text replaced
            by the null embedding (LM guidance); present when requested.
        stop_hidden (`torch.FloatTensor` of shape `(B, N + 1, H)`): states for the stop flag (the last one follows the
            last patch).
        previous_patches (`torch.FloatTensor` of shape `(B, N, P*D)`): patch `n - 1` (the last prompt patch, or
            zeros, for `n = 0`), the head's historical context.
        patches (`torch.FloatTensor` of shape `(B, N, P*D)`): the clean target patches `x_n`.
        patch_mask (`torch.BoolTensor` of shape `(B, N)`): valid patches.
        guided_attention_loss (`torch.FloatTensor` of shape `()`, *optional*): the guided-attention loss of the pass
            (`ardm_trl.models.guided_attention`), when requested.
    """

    hidden: torch.FloatTensor | None = None
    unconditional_hidden: torch.FloatTensor | None = None
    stop_hidden: torch.FloatTensor | None = None
    previous_patches: torch.FloatTensor | None = None
    patches: torch.FloatTensor | None = None
    patch_mask: torch.BoolTensor | None = None
    guided_attention_loss: torch.FloatTensor | None = None


@dataclass
class ARDMOutput(ModelOutput):
    """Output of [`ARDMForSpeechSynthesis.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `diffusion_loss + stop_loss_weight * stop_loss`, when
            `labels` are given.
        diffusion_loss (`torch.FloatTensor` of shape `()`, *optional*): MSE of the head to its target
            (epsilon / v / x0) over valid patches and `diffusion_batch_multiplier` noise draws per patch.
        stop_loss (`torch.FloatTensor` of shape `()`, *optional*): binary cross-entropy of the stop head.
        guided_attention_loss (`torch.FloatTensor` of shape `()`, *optional*): the guided-attention term (training with
            `config.guided_attention_weight > 0` only).
        ctc_loss (`torch.FloatTensor` of shape `()`, *optional*): the auxiliary text-CTC term (training with
            `config.ctc_loss_weight > 0` only; see [`~ARDMForSpeechSynthesis.text_ctc_loss`]).
        stop_logits (`torch.FloatTensor` of shape `(B, N + 1)`): stop logit after each number of patches.
        hidden_states (`torch.FloatTensor` of shape `(B, N, H)`): LM states that predict each target patch.
        head_prediction (`torch.FloatTensor` of shape `(M, K, P*D)`, *optional*): the (LM-guided) head prediction at
            the given `draws` (the RL trainers' entry point, so distributed wrappers see a forward call).
    """

    loss: torch.FloatTensor | None = None
    diffusion_loss: torch.FloatTensor | None = None
    stop_loss: torch.FloatTensor | None = None
    guided_attention_loss: torch.FloatTensor | None = None
    ctc_loss: torch.FloatTensor | None = None
    stop_logits: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None
    head_prediction: torch.FloatTensor | None = None


@dataclass
class ARDMValueOutput(ModelOutput):
    """Output of [`ARDMValueModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): MSE of the values to `rewards` (VGPO Eq. 13).
        value (`torch.FloatTensor` of shape `(M, K)`): `V(x_<n, x_n^t)` at the `M` valid patches of the batch and
            `K` noise draws each. (Not `values`: a `ModelOutput` is a dict, and DDP / DeepSpeed walk outputs with
            `.values()`.)
        timesteps (`torch.LongTensor` of shape `(M, K)`): the diffusion times used.
        sample_index (`torch.LongTensor` of shape `(M,)`): the trajectory each valid patch belongs to.
    """

    loss: torch.FloatTensor | None = None
    value: torch.FloatTensor | None = None
    timesteps: torch.LongTensor | None = None
    sample_index: torch.LongTensor | None = None


def patchify(
    latents: torch.Tensor, latents_mask: torch.Tensor | None, patch_size: int, latent_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, F, D)` frames -> `(B, F / P, P * D)` patches and a `(B, F / P)` patch mask (a patch is valid if its first
    frame is)."""
    if latents.dim() != 3:
        raise ValueError(f"Latents must have shape (batch, frames, latent_dim), got {tuple(latents.shape)}.")
    batch, frames, dim = latents.shape
    if dim != latent_dim:
        raise ValueError(
            f"Latent size mismatch: the model expects latent_dim={latent_dim} but the latents have {dim} channels. "
            "Encode the audio with the codec the model was trained on, or build the config with the codec's latent size."
        )
    if frames % patch_size != 0:
        raise ValueError(
            f"The number of latent frames ({frames}) is not a multiple of patch_size={patch_size}. Pad the frames "
            "(and their mask) to a multiple of the patch size, e.g. with `ardm_trl.models.ardm.pad_to_patch_multiple`."
        )
    patches = latents.reshape(batch, frames // patch_size, patch_size * dim)
    if latents_mask is None:
        mask = torch.ones(batch, frames // patch_size, dtype=torch.bool, device=latents.device)
    else:
        mask = latents_mask.reshape(batch, frames // patch_size, patch_size)[..., 0].bool()
    return patches, mask


def unpatchify(patches: torch.Tensor, patch_mask: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, N, P * D)` patches -> `(B, N * P, D)` frames and their `(B, N * P)` mask."""
    batch, num, patch_dim = patches.shape
    latents = patches.reshape(batch, num * patch_size, patch_dim // patch_size)
    return latents, patch_mask.repeat_interleave(patch_size, dim=1)


def pad_to_patch_multiple(
    latents: torch.Tensor, latents_mask: torch.Tensor | None, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad `(B, F, D)` latents with zeros (and their mask with False) to a multiple of `patch_size` frames."""
    batch, frames, _ = latents.shape
    if latents_mask is None:
        latents_mask = torch.ones(batch, frames, dtype=torch.bool, device=latents.device)
    extra = (-frames) % patch_size
    if extra:
        latents = F.pad(latents, (0, 0, 0, extra))
        latents_mask = F.pad(latents_mask, (0, extra), value=False)
    return latents, latents_mask.bool()


class ARDMPreTrainedModel(PreTrainedModel):
    """Common base: weight init, patching, the teacher-forced LM pass and the noise schedule."""

    config_class = ARDMConfig
    base_model_prefix = "ardm"
    main_input_name = "text_input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "AdaLNResBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and getattr(module, "zero_init", False):
            # adaLN-zero (DiT/MAR) modulations start every residual block as the identity; the head's output layer
            # starts at 0, so a fresh value model / discriminator outputs exactly 0 (VGPO Sec. 4.1).
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)
        if isinstance(module, ARDMBackbone):
            init.normal_(module.speech_start, std=0.02)
            init.normal_(module.null_text, std=0.02)

    @cached_property
    def noise_schedule(self) -> NoiseSchedule:
        """`alpha_t`, `sigma_t` and the prediction <-> score conversions of this model's scheduler."""
        return NoiseSchedule(self.config.scheduler_config)

    def patchify(self, latents: torch.Tensor, latents_mask: torch.Tensor | None = None):
        return patchify(latents, latents_mask, self.config.patch_size, self.config.latent_dim)

    def compute_lm_states(
        self,
        text_input_ids: torch.LongTensor,
        latents: torch.FloatTensor,
        text_attention_mask: torch.Tensor | None = None,
        latents_mask: torch.Tensor | None = None,
        prompt_latents: torch.FloatTensor | None = None,
        prompt_latents_mask: torch.Tensor | None = None,
        drop_text: torch.BoolTensor | None = None,
        unconditional: bool = False,
        guided_attention: bool = False,
        context_noise_std: float = 0.0,
    ) -> ARDMStates:
        """LM states of every position of clean trajectories `latents`, in one teacher-forced pass.

        With `unconditional=True` the conditional and the unconditional (text dropped) passes run batched together
        and `unconditional_hidden` is filled (for LM guidance in the RL trainers). With `guided_attention=True` the pass
        runs with eager attention and `guided_attention_loss` is filled (pretraining). With `context_noise_std > 0` the
        patches the model reads (LM inputs, `previous_patches`) get Gaussian noise of that std; `patches` (the
        targets) stay clean (pretraining; see `ARDMConfig.context_noise_std`).
        """
        if text_attention_mask is None:
            text_attention_mask = text_input_ids.ne(self.config.text_pad_token_id)
        patches, patch_mask = self.patchify(latents, latents_mask)  # (B, N, PD), (B, N)
        batch, num_patches, _ = patches.shape
        context = patches
        if context_noise_std > 0:
            context = patches + context_noise_std * torch.randn_like(patches) * patch_mask[..., None]
        prompt_patches = prompt_mask = None
        if prompt_latents is not None:
            prompt_patches, prompt_mask = self.patchify(prompt_latents, prompt_latents_mask)
        if drop_text is None:
            drop_text = torch.zeros(batch, dtype=torch.bool, device=patches.device)
        copies = 2 if unconditional else 1
        if unconditional:
            drop_text = torch.cat([drop_text, torch.ones_like(drop_text)])

        def twice(x):
            return None if x is None else torch.cat([x] * copies)

        prefix, prefix_mask = self.backbone.build_prefix(
            twice(text_input_ids), twice(text_attention_mask), twice(prompt_patches), twice(prompt_mask), drop_text
        )
        inputs = torch.cat([prefix, self.backbone.patch_embedding(twice(context))], dim=1)  # (cB, Lp + N, H)
        mask = torch.cat([prefix_mask, twice(patch_mask).long()], dim=1)
        guided_loss = None
        if guided_attention:
            hidden, attentions = self.backbone.forward_with_attentions(inputs, mask)
            guided_loss = self._guided_attention_loss(attentions[:batch], prefix.shape[1], text_attention_mask,
                                                      prompt_mask, patch_mask, drop_text[:batch])
        else:
            hidden, _ = self.backbone(inputs, mask)
        start = prefix.shape[1] - 1
        states = hidden[:, start:start + num_patches + 1]  # (cB, N + 1, H)

        first_previous = patches.new_zeros(batch, 1, patches.shape[-1])
        if prompt_patches is not None:
            last = (prompt_mask.long().cumsum(-1).argmax(-1))  # index of the last valid prompt patch
            has_prompt = prompt_mask.any(-1)
            picked = prompt_patches[torch.arange(batch, device=patches.device), last]
            first_previous = torch.where(has_prompt[:, None], picked, first_previous[:, 0])[:, None]
        previous = torch.cat([first_previous, context[:, :-1]], dim=1)
        return ARDMStates(
            hidden=states[:batch, :num_patches],
            unconditional_hidden=states[batch:, :num_patches] if unconditional else None,
            stop_hidden=states[:batch],
            previous_patches=previous,
            patches=patches,
            patch_mask=patch_mask,
            guided_attention_loss=guided_loss,
        )

    def _guided_attention_loss(self, attentions, prefix_length, text_mask, prompt_mask, patch_mask, drop_text):
        """Guided attention between target patch `j` (its LM state sits at column `Lp - 1 + j`) and text token `i`
        (left-padded layout of `ARDMBackbone.build_prefix`); text-dropped rows are left out."""
        attentions = [a[: patch_mask.shape[0]] for a in attentions]
        text_lengths = text_mask.long().sum(-1)  # (B,)
        prompt_lengths = prompt_mask.long().sum(-1) if prompt_mask is not None else torch.zeros_like(text_lengths)
        text_start = prefix_length - (text_lengths + 1 + prompt_lengths)  # (B,)
        key_columns = text_start[:, None] + torch.arange(text_mask.shape[1], device=text_mask.device)[None]
        query_columns = prefix_length - 1 + torch.arange(patch_mask.shape[1], device=patch_mask.device)
        query_lengths = patch_mask.long().sum(-1) * (~drop_text).long()
        if not query_lengths.any():
            return attentions[0].new_zeros(())
        return guided_attention_loss(attentions, query_columns[None].expand(patch_mask.shape[0], -1), query_lengths,
                                     key_columns, text_lengths, self.config.guided_attention_sigma,
                                     self.config.guided_attention_heads)


def _cat_broadcast(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`torch.cat([a, b])` that stays broadcast (stride 0) along the draw dimension when both inputs are, so the head
    projects each token's state once rather than once per draw (`project_distinct`)."""
    if a.shape == b.shape and is_broadcast_over_draws(a) and is_broadcast_over_draws(b):
        return torch.cat([a.narrow(-2, 0, 1), b.narrow(-2, 0, 1)]).expand(-1, *a.shape[1:])
    return torch.cat([a, b])


class ARDMForSpeechSynthesis(ARDMGenerationMixin, ARDMPreTrainedModel):
    """The ARDM policy: causal LM over patches + diffusion head + stop head.

    `forward(..., labels=latents)` returns the diffusion loss plus the stop loss, so a plain `transformers.Trainer`
    pretrains it; `generate` samples (see [`ARDMGenerationMixin.generate`]).
    """

    def __init__(self, config: ARDMConfig):
        super().__init__(config)
        hidden = config.backbone_config.hidden_size
        self.backbone = ARDMBackbone(config)
        self.head = DiffusionHead(hidden, config.patch_dim, config.head_hidden_size, config.head_num_layers,
                                  out_features=config.patch_dim)
        self.stop_head = nn.Linear(hidden, 1)
        # auxiliary text CTC on the LM states (pretraining only): each state emits `patch_size` frames over the text
        # vocabulary, the padding id being the blank
        self.ctc_head = nn.Linear(hidden, config.patch_size * config.text_vocab_size) if config.ctc_loss_weight > 0 else None
        self.post_init()

    def head_prediction(
        self,
        hidden: torch.Tensor,
        previous_patches: torch.Tensor,
        noisy_patches: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """The head's raw prediction (of `config.prediction_type`) at arbitrary `(n, t, x_n^t)`; any leading shape."""
        return self.head(hidden, previous_patches, noisy_patches, timesteps)

    def guided_prediction(
        self,
        hidden: torch.Tensor,
        unconditional_hidden: torch.Tensor | None,
        previous_patches: torch.Tensor,
        noisy_patches: torch.Tensor,
        timesteps: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """LM guidance: `pred_u + w * (pred_c - pred_u)`, both head passes batched; `w = 1` is exactly the conditional
        head (the unconditional pass is skipped)."""
        if guidance_scale == 1.0 or unconditional_hidden is None:
            if guidance_scale != 1.0:
                raise ValueError("LM guidance with w != 1 needs `unconditional_hidden` (compute_lm_states(unconditional=True)).")
            return self.head_prediction(hidden, previous_patches, noisy_patches, timesteps)
        both = self.head_prediction(
            _cat_broadcast(hidden, unconditional_hidden),
            _cat_broadcast(previous_patches, previous_patches),
            torch.cat([noisy_patches, noisy_patches]),
            torch.cat([timesteps, timesteps]),
        )
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def text_ctc_loss(self, states: ARDMStates, text_input_ids: torch.Tensor, text_mask: torch.Tensor,
                      drop_text: torch.Tensor | None) -> torch.Tensor:
        """CTC of the text (targets: the text ids, blank: `text_pad_token_id`) from `patch_size` frames per LM state.

        The state that predicts patch `n` has read the text and the patches before `n`; to emit the text units spoken
        in patch `n` it must know where the speech is in the text, which is the alignment a small LM is slow to learn
        from the diffusion loss alone. Text-dropped rows are left out.
        """
        config = self.config
        batch, num, _ = states.hidden.shape
        logits = self.ctc_head(states.hidden).reshape(batch, num * config.patch_size, config.text_vocab_size)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (N * P, B, V)
        keep = torch.ones(batch, dtype=torch.bool, device=logits.device) if drop_text is None else ~drop_text
        if not keep.any():
            return logits.new_zeros(())
        text_mask = text_mask.bool()
        targets = torch.stack([torch.cat([row[m], row[~m]]) for row, m in zip(text_input_ids, text_mask)])  # packed left
        loss = F.ctc_loss(log_probs[:, keep], targets[keep], (states.patch_mask.long().sum(-1) * config.patch_size)[keep],
                          text_mask.long().sum(-1)[keep], blank=config.text_pad_token_id, reduction="mean",
                          zero_infinity=True)
        return loss

    def stop_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.stop_head(hidden).squeeze(-1)

    def forward(
        self,
        text_input_ids: torch.LongTensor,
        text_attention_mask: torch.Tensor | None = None,
        prompt_latents: torch.FloatTensor | None = None,
        prompt_latents_mask: torch.Tensor | None = None,
        latents: torch.FloatTensor | None = None,
        latents_mask: torch.Tensor | None = None,
        labels: torch.FloatTensor | None = None,
        draws=None,
        lm_guidance_scale: float | None = None,
        **kwargs,
    ) -> ARDMOutput:
        r"""
        Args:
            text_input_ids (`torch.LongTensor` of shape `(B, T)`): text (phoneme) ids, padded with
                `config.text_pad_token_id`.
            text_attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*): 1 for real tokens.
            prompt_latents (`torch.FloatTensor` of shape `(B, Fp, D)`, *optional*): voice-prompt latents.
            prompt_latents_mask (`torch.Tensor` of shape `(B, Fp)`, *optional*).
            latents (`torch.FloatTensor` of shape `(B, F, D)`, *optional*): target latents fed teacher-forced;
                defaults to `labels`. `F` must be a multiple of `config.patch_size`.
            latents_mask (`torch.Tensor` of shape `(B, F)`, *optional*): valid frames.
            labels (`torch.FloatTensor` of shape `(B, F, D)`, *optional*): the target latents; when given, the loss
                is computed.
            draws (`ardm_trl.models.ardm.NoiseDraws`, *optional*): noisy tokens `x_n^t` at `(n, t)`; when
                given, `head_prediction` holds the head's prediction there (one LM pass, LM guidance with weight
                `lm_guidance_scale`, default 1 = conditional) and no loss is computed.
        """
        if latents is None:
            latents = labels
        if latents is None:
            raise ValueError("Pass the target latents as `latents=` or `labels=`.")
        batch = latents.shape[0]
        if draws is not None:
            guidance = 1.0 if lm_guidance_scale is None else lm_guidance_scale
            states = self.compute_lm_states(text_input_ids, latents, text_attention_mask, latents_mask, prompt_latents,
                                            prompt_latents_mask, unconditional=guidance != 1.0)
            unconditional = None if states.unconditional_hidden is None else draws.gather(states.unconditional_hidden)
            prediction = self.guided_prediction(draws.gather(states.hidden), unconditional,
                                                draws.gather(states.previous_patches), draws.noisy, draws.timesteps,
                                                guidance)
            return ARDMOutput(stop_logits=self.stop_logits(states.stop_hidden), hidden_states=states.hidden,
                              head_prediction=prediction)
        drop_text = None
        if self.training and self.config.cfg_dropout_prob > 0:
            drop_text = torch.rand(batch, device=latents.device) < self.config.cfg_dropout_prob
        guided = self.training and labels is not None and self.config.guided_attention_weight > 0
        states = self.compute_lm_states(
            text_input_ids, latents, text_attention_mask, latents_mask, prompt_latents, prompt_latents_mask, drop_text,
            guided_attention=guided,
            context_noise_std=self.config.context_noise_std if self.training and labels is not None else 0.0,
        )
        stop_logits = self.stop_logits(states.stop_hidden)  # (B, N + 1)
        loss = diffusion_loss = stop_loss = ctc_loss = None
        if labels is not None:
            diffusion_loss = self.diffusion_loss(states)
            stop_loss = self.stop_loss(stop_logits, states.patch_mask)
            loss = diffusion_loss + self.config.stop_loss_weight * stop_loss
            if guided:
                loss = loss + self.config.guided_attention_weight * states.guided_attention_loss
            if self.training and self.ctc_head is not None:
                mask = text_attention_mask if text_attention_mask is not None else text_input_ids.ne(self.config.text_pad_token_id)
                ctc_loss = self.text_ctc_loss(states, text_input_ids, mask, drop_text)
                loss = loss + self.config.ctc_loss_weight * ctc_loss
        return ARDMOutput(
            loss=loss, diffusion_loss=diffusion_loss, stop_loss=stop_loss,
            guided_attention_loss=states.guided_attention_loss, ctc_loss=ctc_loss, stop_logits=stop_logits,
            hidden_states=states.hidden,
        )

    def diffusion_loss(self, states: ARDMStates, num_draws: int | None = None) -> torch.Tensor:
        """Denoising loss at `num_draws` random `(t, eps)` per valid patch (MAR's diffusion batch multiplier)."""
        draws = num_draws or self.config.diffusion_batch_multiplier
        valid = states.patch_mask
        hidden = states.hidden[valid][:, None].expand(-1, draws, -1)  # (M, K, H)
        previous = states.previous_patches[valid][:, None].expand(-1, draws, -1)  # (M, K, PD)
        clean = states.patches[valid][:, None].expand(-1, draws, -1)  # (M, K, PD)
        schedule = self.noise_schedule
        timesteps = schedule.sample_timesteps(clean.shape[:2], clean.device)  # (M, K)
        noise = torch.randn_like(clean)
        noisy = schedule.add_noise(clean, noise, timesteps)
        prediction = self.head_prediction(hidden, previous, noisy, timesteps)
        return F.mse_loss(prediction.float(), schedule.target(clean, noise, timesteps).float())

    @staticmethod
    def stop_loss(stop_logits: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
        """BCE of "the sequence ends here": label 1 after the last valid patch, 0 before, ignored after."""
        lengths = patch_mask.sum(-1)  # (B,)
        index = torch.arange(stop_logits.shape[1], device=stop_logits.device)[None]  # (1, N + 1)
        valid = index <= lengths[:, None]
        targets = (index == lengths[:, None]).float()
        return F.binary_cross_entropy_with_logits(stop_logits[valid].float(), targets.expand_as(stop_logits)[valid])


def base_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights of a model without its PEFT layers: LoRA-injected layers keep their frozen weights under
    `.base_layer.` (and `modules_to_save` wrappers under `.original_module.`); the adapters are dropped. For a policy
    trained with LoRA these are the reference's weights (adapters off)."""
    kept = {}
    for name, tensor in state.items():
        if ".lora_" in name or ".modules_to_save." in name:
            continue
        kept[name.replace(".base_layer.", ".").replace(".original_module.", ".")] = tensor
    return kept


class ARDMValueModel(ARDMPreTrainedModel):
    """Soft value model `V(x_<n, x_n^t)` of an ARDM (VGPO Def. 2, Sec. 4.1): the ARDM with the diffusion head's last
    linear replaced by a zero-initialised scalar output. Build it from a trained ARDM with [`from_ardm`].

    The LM state at position `n` depends only on the clean prefix `x_<n`, so the gradient w.r.t. the noisy token
    `x_n^t` flows through the head only: value guidance costs one head backward per denoising step.
    """

    config_class = ARDMValueConfig

    def __init__(self, config: ARDMValueConfig):
        super().__init__(config)
        self.backbone = ARDMBackbone(config)
        self.head = DiffusionHead(config.backbone_config.hidden_size, config.patch_dim, config.head_hidden_size,
                                  config.head_num_layers, out_features=1)
        self.post_init()

    @classmethod
    def from_ardm(cls, ardm: ARDMPreTrainedModel, **config_overrides) -> ARDMValueModel:
        """Initialise from a trained ARDM: same LM and head body (the body only when the ARDM has the bundled head),
        new zero-initialised scalar output layer. The
        policy's pretraining-only aids (guided attention, text CTC, context noise) are switched off in the new config."""
        values = ardm.config.to_dict()
        for key in ("model_type", "architectures", "transformers_version", "_name_or_path"):
            values.pop(key, None)
        values.update(guided_attention_weight=0.0, ctc_loss_weight=0.0, context_noise_std=0.0)
        values.update(config_overrides)
        with zero3_init_disabled():  # a critic is optimised outside DeepSpeed: whole even under ZeRO-3
            model = cls(cls.config_class(**values))
        model.config._name_or_path = ardm.config._name_or_path  # model cards name the ARDM it was built from
        source = base_weights(gathered_state_dict(ardm))  # `ardm` may be sharded (ZeRO-3) or hold LoRA layers

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in source.items() if k.startswith(prefix)}

        model.backbone.load_state_dict(part("backbone."))
        body = part("head.body.")
        shapes = {k: v.shape for k, v in model.head.body.state_dict().items()}
        if {k: v.shape for k, v in body.items()} == shapes:
            model.head.body.load_state_dict(body)
        else:  # an ARDM with its own kind of head (ARDMProtocol): the LM is shared, the head body starts fresh
            logger.warning("The ARDM's head (%s) is not the bundled AdaLN head: the value model copies its LM only; "
                           "its head body starts from a random initialisation.", type(ardm.head).__name__)
        with torch.no_grad():
            model.head.output.weight.zero_()
            model.head.output.bias.zero_()
        return model.to(device=ardm.device, dtype=ardm.dtype)

    def has_untrained_head(self) -> bool:
        """True while the scalar output layer's weight is still all zeros (as [`from_ardm`] leaves it): the gradient
        of the value w.r.t. its input is then zero."""
        return not bool(self.head.output.weight.detach().any())

    def value(
        self,
        hidden: torch.Tensor,
        previous_patches: torch.Tensor,
        noisy_patches: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """`V(x_<n, x_n^t)` from the LM state of position `n`; any leading shape, returns that shape."""
        return self.head(hidden, previous_patches, noisy_patches, timesteps).squeeze(-1)

    def value_and_grad(
        self,
        hidden: torch.Tensor,
        previous_patches: torch.Tensor,
        noisy_patches: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`V` and `grad_{x_n^t} V` (one head forward and backward; `hidden` is treated as a constant)."""
        with torch.enable_grad():
            noisy = noisy_patches.detach().requires_grad_(True)
            values = self.value(hidden.detach(), previous_patches.detach(), noisy, timesteps)
            (grad,) = torch.autograd.grad(values.sum(), noisy)
        return values.detach(), grad

    def forward(
        self,
        text_input_ids: torch.LongTensor,
        latents: torch.FloatTensor,
        text_attention_mask: torch.Tensor | None = None,
        latents_mask: torch.Tensor | None = None,
        prompt_latents: torch.FloatTensor | None = None,
        prompt_latents_mask: torch.Tensor | None = None,
        rewards: torch.FloatTensor | None = None,
        num_draws: int | None = None,
        draws=None,
        **kwargs,
    ) -> ARDMValueOutput:
        r"""
        Values at noisy tokens of `latents` from one LM pass: at the given `draws`
        (`ardm_trl.models.ardm.NoiseDraws`), or at every valid patch with `num_draws` random `(t, eps)` each.
        With `rewards` `(B,)`, `loss` is the MSE of Eq. 13 (the value trainer also offers the exp-MSE of Eq. 32).
        """

        states = self.compute_lm_states(
            text_input_ids, latents, text_attention_mask, latents_mask, prompt_latents, prompt_latents_mask
        )
        if draws is None:
            draws = draw_noisy_tokens(self.noise_schedule, states.patches, states.patch_mask,
                                      num_draws or self.config.diffusion_batch_multiplier)
        values = self.value(draws.gather(states.hidden), draws.gather(states.previous_patches), draws.noisy,
                            draws.timesteps)
        loss = None
        if rewards is not None:
            loss = F.mse_loss(values.float(), rewards.float()[draws.sample_index][:, None].expand_as(values))
        return ARDMValueOutput(loss=loss, value=values, timesteps=draws.timesteps, sample_index=draws.sample_index)


class ARDMDiscriminator(ARDMValueModel):
    """Discriminator `D(x_<n, x_n^t)` of adversarial distribution matching (VGPO Sec. 3.4, Eq. 17-18): the value
    model's body, trained with the least-squares loss (real = reference samples -> +1, fake = policy samples -> -1)."""

    config_class = ARDMDiscriminatorConfig


__all__ = [
    "ARDMDiscriminator",
    "ARDMForSpeechSynthesis",
    "ARDMOutput",
    "ARDMPreTrainedModel",
    "ARDMStates",
    "ARDMValueModel",
    "ARDMValueOutput",
    "pad_to_patch_multiple",
    "patchify",
    "unpatchify",
]

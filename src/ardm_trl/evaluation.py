"""Evaluate a speech ARDM on prompt rows the way the VGPO paper's tables do: F0V, WER/CER, CTC NLL, SIM, DNSMOS of
its samples, and the KL to a reference model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .stats import mean_and_sem
from .trainer.ardm_utils import estimate_kl
from .trainer.rollout import generate_rollouts, prepare_prompt_batch


@dataclass
class ARDMEvaluation:
    """Metrics (means over samples) and what they were computed on."""

    metrics: dict[str, float]
    audio: list[np.ndarray] = field(repr=False)
    texts: list[str] = field(repr=False)
    generation_seconds: float = 0.0


@dataclass
class SampleScores:
    """Per-sample metrics of a model on prompt rows x sampling seeds, in the order seed by seed, row by row.

    Attributes:
        prompt_ids (`list[int]`): the row index of each sample (for per-prompt pairing, [`~ardm_trl.stats`]).
        seeds (`list[int]`): the sampling seed of each sample.
        scores (`dict[str, list[float | None]]`): each metric of [`~ardm_trl.rewards.score_speech`] per sample.
        kl (`float`, *optional*): `ardm_kl` to the reference on the model's own samples (when asked).
        generation_seconds (`float`): sampling time alone, all samples.
        audio (`list[np.ndarray]`): the decoded samples (empty unless `keep_audio`).
    """

    prompt_ids: list[int]
    seeds: list[int]
    scores: dict[str, list[float | None]]
    kl: float | None = None
    generation_seconds: float = 0.0
    audio: list[np.ndarray] = field(default_factory=list, repr=False)

    def means(self) -> dict[str, float]:
        """The mean of each metric over its defined samples (NaN if none)."""
        return {key: mean_and_sem([v for v in values if v is not None and np.isfinite(v)])[0]
                for key, values in self.scores.items()}  # fmt: skip


def score_audio(
    audio: Sequence[np.ndarray],
    sampling_rate: int,
    texts: Sequence[str],
    prompt_audio: Sequence[dict[str, Any] | None] | None = None,
    metrics: Sequence[str] = ("f0v", "wer", "sim"),
) -> dict[str, float]:
    """`ardm_trl.rewards.evaluate_speech` of `audio` against `texts`, with the voice prompts' audio
    (`{"array", "sampling_rate"}` per sample, as in the `prompt_audio` column) as the speaker-similarity references;
    `"sim"` is dropped when some sample has no prompt audio."""
    scores = score_audio_per_sample(audio, sampling_rate, texts, prompt_audio, metrics)
    return {key: mean_and_sem([v for v in values if v is not None and np.isfinite(v)])[0]
            for key, values in scores.items()}  # fmt: skip


def score_audio_per_sample(
    audio: Sequence[np.ndarray],
    sampling_rate: int,
    texts: Sequence[str],
    prompt_audio: Sequence[dict[str, Any] | None] | None = None,
    metrics: Sequence[str] = ("f0v", "wer", "sim"),
) -> dict[str, list[float | None]]:
    """[`score_audio`] per sample (`None` where a metric is undefined)."""
    from .rewards import score_speech

    references = list(prompt_audio) if prompt_audio is not None else [None] * len(audio)
    reference_audio, ref_rate = None, None
    if "sim" in metrics and all(r is not None for r in references):
        reference_audio = [np.asarray(r["array"]) for r in references]
        ref_rate = references[0]["sampling_rate"]
    return score_speech(
        list(audio),
        sampling_rate,
        list(texts),
        reference_audio=reference_audio,
        metrics=[m for m in metrics if m != "sim" or reference_audio is not None],
        reference_sampling_rate=ref_rate,
    )


@torch.no_grad()
def score_samples(
    model,
    rows: Sequence[dict[str, Any]],
    codec,
    seeds: Sequence[int] = (0,),
    metrics: Sequence[str] = ("f0v", "wer", "sim"),
    reference=None,
    compute_kl: bool = False,
    batch_size: int = 8,
    kl_draws: int = 4,
    keep_audio: bool = False,
    **generation_kwargs: Any,
) -> SampleScores:
    """Sample one utterance per row and seed (each seed restarts the sampler's generator, so two models evaluated with
    the same seeds start from the same noise), decode it with `codec` and score it per sample with
    `ardm_trl.rewards.score_speech`; the rows' `prompt_audio` are the speaker-similarity references. With
    `compute_kl`, also `kl` to `reference` (`ardm_kl` with shared draws, at the sampling guidance weight;
    `reference=None` is the policy with its LoRA adapters disabled), averaged over all samples.

    `generation_kwargs` go to `generate` (`value_model=` and `value_guidance_scale=` give value-guided sampling);
    unset sampling settings are the model's own ([`~ardm_trl.models.ardm.sampling_settings`])."""
    from .models.ardm import sampling_settings

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    rows = list(rows)
    if not rows or not seeds:
        raise ValueError(f"score_samples needs at least one row and one seed (got {len(rows)} rows, {len(seeds)} seeds).")
    prompt_ids, sample_seeds, audio, texts, references, kls = [], [], [], [], [], []
    generation_seconds = 0.0
    guidance = sampling_settings(base, lm_guidance_scale=generation_kwargs.get("lm_guidance_scale"))
    for seed in seeds:
        generator = torch.Generator(device=base.device).manual_seed(seed)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            batch = prepare_prompt_batch([{k: v for k, v in r.items() if k != "prompt_audio"} for r in chunk], 1,
                                         None, base.config.text_pad_token_id, base.config.patch_size)  # fmt: skip
            start_time = time.perf_counter()
            rollouts = generate_rollouts(base, batch.to(base.device), generator=generator, **generation_kwargs)
            generation_seconds += time.perf_counter() - start_time
            audio.extend(codec.decode_list([c.cpu() for c in rollouts.completions()]))
            texts.extend(rollouts.prompts)
            references.extend(row.get("prompt_audio") for row in chunk)
            prompt_ids.extend(range(start, start + len(chunk)))
            sample_seeds.extend([seed] * len(chunk))
            if compute_kl:
                inputs = dict(rollouts.model_inputs(), latents=rollouts.latents, latents_mask=rollouts.latents_mask)
                kls.append(estimate_kl(model, reference, inputs, kl_draws, guidance["lm_guidance_scale"],
                                       seed=seed * 100_003 + start) * len(chunk))  # fmt: skip
    scores = score_audio_per_sample(audio, codec.sampling_rate, texts, references, metrics)
    return SampleScores(prompt_ids=prompt_ids, seeds=sample_seeds, scores=scores,
                        kl=sum(kls) / len(prompt_ids) if kls else None, generation_seconds=generation_seconds,
                        audio=audio if keep_audio else [])  # fmt: skip


def evaluate_ardm(
    model,
    rows: Sequence[dict[str, Any]],
    codec,
    reference=None,
    compute_kl: bool = False,
    metrics: Sequence[str] = ("f0v", "wer", "sim"),
    batch_size: int = 8,
    seed: int = 0,
    kl_draws: int = 4,
    **generation_kwargs: Any,
) -> ARDMEvaluation:
    """[`score_samples`] with one sampling `seed`, reduced to means: the metrics (and `kl` with `compute_kl`), the
    decoded audio and texts, and the sampling time."""
    scores = score_samples(model, rows, codec, (seed,), metrics, reference, compute_kl, batch_size, kl_draws,
                           keep_audio=True, **generation_kwargs)  # fmt: skip
    results = scores.means()
    if scores.kl is not None:
        results["kl"] = scores.kl
    return ARDMEvaluation(metrics=results, audio=scores.audio, texts=[row.get("prompt", row.get("text")) for row in rows],
                          generation_seconds=scores.generation_seconds)  # fmt: skip


def _teacher_forced_inputs(model, batch: dict[str, torch.Tensor]) -> tuple[Any, list]:
    """The ARDM under a (peft) `model` and the positional arguments of `compute_lm_states` from a collator `batch`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    keys = ("text_input_ids", "latents", "text_attention_mask", "latents_mask", "prompt_latents", "prompt_latents_mask")
    inputs = [batch.get(k) for k in keys]
    return base, [x.to(base.device) if isinstance(x, torch.Tensor) else x for x in inputs]


@torch.no_grad()
def text_conditioning_gain(model, batch: dict[str, torch.Tensor], timestep: int = 600, seed: int = 0) -> dict[str, float]:
    """Does an ARDM read its text? The error of its clean-patch estimate `x_hat(x_n^t)` at a low-SNR `timestep`
    (where the context, not the noisy input, decides the patch) on a teacher-forced `batch` of real utterances (an
    `ARDMDataCollator` batch), with the text and with the text replaced by the null embedding, at the same noise.

    Returns `conditional` and `unconditional` (mean squared errors in latent units; the latents have unit variance)
    and `gain = 1 - conditional / unconditional`: the share of the text-free error that the text removes. A model that
    ignores its text has `gain` near 0 (the bundled ARDM before guided attention: 0.7018 vs 0.7036 at t = 600).
    """
    base, inputs = _teacher_forced_inputs(model, batch)
    schedule = base.noise_schedule
    errors = {}
    for name, drop in (("conditional", False), ("unconditional", True)):
        drop_text = torch.full((inputs[0].shape[0],), drop, dtype=torch.bool, device=base.device)
        states = base.compute_lm_states(*inputs, drop_text=drop_text)
        valid = states.patch_mask
        clean = states.patches[valid]  # (M, PD)
        generator = torch.Generator(device=clean.device).manual_seed(seed)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        timesteps = torch.full(clean.shape[:1], timestep, device=clean.device, dtype=torch.long)
        noisy = schedule.add_noise(clean, noise, timesteps)
        prediction = base.head_prediction(states.hidden[valid], states.previous_patches[valid], noisy, timesteps)
        estimate = schedule.to_sample(prediction, noisy, timesteps)
        errors[name] = float((estimate.float() - clean.float()).pow(2).mean())
    return {**errors, "gain": 1.0 - errors["conditional"] / errors["unconditional"]}


@torch.no_grad()
def teacher_forced_latents(
    model,
    batch: dict[str, torch.Tensor],
    estimate: str = "sample",
    lm_guidance_scale: float = 1.0,
    num_inference_steps: int | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Every patch of real utterances re-predicted by an ARDM from the *true* previous patches: where its errors come
    from. Free-running samples add exposure bias (each patch is conditioned on the model's own previous ones); these
    do not, so decoding them and scoring the audio (e.g. hama CTC NLL) measures how well a single next-patch
    prediction carries the text.

    Args:
        model ([`ARDMForSpeechSynthesis`] or a peft model of one): the model.
        batch (`dict`): an `ARDMDataCollator` batch of real utterances (`text_input_ids`, `latents`, masks, optional
            voice prompts).
        estimate (`str`, *optional*, defaults to `"sample"`): `"sample"` draws each patch with the model's sampler
            (`num_inference_steps` DDPM steps, like `generate`); `"mean"` is the head's clean-patch estimate from pure
            noise at the last training timestep, its estimate of the conditional mean `E[x_n | x_<n, text]`.
        lm_guidance_scale (`float`, *optional*, defaults to `1.0`): LM guidance weight `w` (1 = conditional model).
        num_inference_steps (`int`, *optional*): denoising steps of `"sample"`; default `config.num_inference_steps`.
        seed (`int`, *optional*, defaults to `0`): seed of the noise (utterance `b` starts from the noise of seed
            `seed + b`; the sampler's later noise is drawn for the whole batch).

    Returns:
        `list[torch.FloatTensor]`: per utterance, latents `(F_b, D)` of its true length (ready for `codec.decode_list`).
    """
    from .models.ardm.diffusion import build_scheduler

    if estimate not in ("sample", "mean"):
        raise ValueError(f"`estimate` must be 'sample' or 'mean', got {estimate!r}.")
    base, inputs = _teacher_forced_inputs(model, batch)
    states = base.compute_lm_states(*inputs, unconditional=lm_guidance_scale != 1.0)
    valid = states.patch_mask
    hidden, previous = states.hidden[valid], states.previous_patches[valid]  # (M, H), (M, PD)
    unconditional = states.unconditional_hidden[valid] if states.unconditional_hidden is not None else None
    shape = previous.shape
    # the starting noise of utterance b is drawn from its own generator (seed + b), so its "mean" estimate does not
    # depend on the other utterances of the batch
    noise = torch.cat([
        torch.randn((int(n), shape[-1]), generator=torch.Generator(device=hidden.device).manual_seed(seed + b),
                    device=hidden.device, dtype=previous.dtype)
        for b, n in enumerate(valid.sum(-1).tolist())
    ])  # fmt: skip
    if estimate == "mean":
        schedule = base.noise_schedule
        noisy = noise
        timesteps = torch.full(shape[:1], schedule.num_train_timesteps - 1, device=hidden.device, dtype=torch.long)
        prediction = base.guided_prediction(hidden, unconditional, previous, noisy, timesteps, lm_guidance_scale)
        patches = schedule.to_sample(prediction, noisy, timesteps)
    else:
        scheduler = build_scheduler(base.config.scheduler_config)
        scheduler.set_timesteps(num_inference_steps or base.config.num_inference_steps, device=hidden.device)
        generator = torch.Generator(device=hidden.device).manual_seed(seed)
        patches = base.denoise_patches(hidden, unconditional, previous, noise, scheduler, lm_guidance_scale, generator)
    full = torch.zeros_like(states.patches)
    full[valid] = patches.to(full.dtype)
    latents = full.reshape(full.shape[0], -1, base.config.latent_dim)
    latents_mask = inputs[3]
    lengths = latents_mask.sum(-1) if latents_mask is not None else torch.full((latents.shape[0],), inputs[1].shape[1])
    return [latents[b, : int(n)] for b, n in enumerate(lengths)]


@torch.no_grad()
def codec_lm_text_gap(model, rows: Sequence[dict[str, Any]], batch_size: int = 16) -> dict[str, float]:
    """How much a codec-token TTS LM reads its text: the teacher-forced cross-entropy (nats per speech token, end of
    speech included) of real utterances with their own text, and with the text of the next row (a "shifted" text of
    the same corpus, so both conditions have real texts of similar lengths). A model that ignores its text scores
    the same in both; the gap is what the text is worth to it.

    Args:
        model ([`CodecLMForSpeechSynthesis`]): the codec LM (put in eval mode for the measurement).
        rows (`Sequence[dict]`): at least two rows with `text_ids` (text-unit ids) and `speech_ids` (codes), as
            [`CodecLMDataCollator`] takes them.
        batch_size (`int`, *optional*, defaults to `16`): rows per forward pass.

    Returns:
        `dict[str, float]`: `matched` and `shifted` cross-entropies and `gap = shifted - matched`.
    """
    from .models.codec_lm import CodecLMDataCollator

    rows = list(rows)
    if len(rows) < 2:
        raise ValueError(f"`codec_lm_text_gap` needs at least two rows (one's text conditions another's speech), got {len(rows)}.")
    collate = CodecLMDataCollator(model.config)
    was_training = model.training
    model.eval()
    shifted_rows = [{"text_ids": rows[(i + 1) % len(rows)]["text_ids"], "speech_ids": row["speech_ids"]}
                    for i, row in enumerate(rows)]  # fmt: skip
    results = {}
    for name, condition in (("matched", rows), ("shifted", shifted_rows)):
        total, count = 0.0, 0
        for start in range(0, len(condition), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(condition[start : start + batch_size]).items()}
            tokens = int(batch["labels"][:, 1:].ne(-100).sum())
            total += float(model(**batch).loss) * tokens
            count += tokens
        results[name] = total / count
    model.train(was_training)
    return {**results, "gap": results["shifted"] - results["matched"]}


__all__ = [
    "ARDMEvaluation", "SampleScores", "codec_lm_text_gap", "evaluate_ardm", "mean_and_sem", "score_audio",
    "score_audio_per_sample", "score_samples", "teacher_forced_latents", "text_conditioning_gain",
]

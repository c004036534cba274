"""Cost of one training step: plain pretraining vs. VGPO (broken into phases) vs. ARDM-DPO.

Usage:

    python benchmarks/training_step.py                    # ~25 M-param ARDM, 32/64/128 patches, batch 2/8
    python benchmarks/training_step.py --quick            # tiny model, a few seconds (used by the smoke test)
    python benchmarks/training_step.py --lengths 32 64 --batch_sizes 2 --repeats 3 --num_threads 2

What one "step" is, for a batch of `B` sequences of `N` patches (random weights, synthetic latents; cost does not
depend on the weights):

- `pretrain`: `model(text_input_ids=..., prompt_latents=..., labels=latents).loss` + backward + gradient clipping +
  the optimizer the trainers use (`Trainer.get_optimizer_cls_and_kwargs`, AdamW) step, on `B` sequences.
- `vgpo`: one step of `VGPOTrainer` with online value updates and ADM on, on `B` trajectories (`B / G` prompts x
  `G = num_generations` samples, each forced to `N` patches with `min_patches = max_patches = N`). Phases are timed
  by calling the trainer's own methods in the order `VGPOTrainer.training_step` calls them:
    1. `rollout` and 2. `reward`: `trainer._generate_and_score(rows)`; the two times are the trainer's own
       `time/rollout` and `time/reward` metrics;
    3. `loss_forward`: `trainer.compute_loss(model, {"rollouts": ...})` (policy LM pass + heads, reference LM pass +
       heads, value-model LM pass + head backward, discriminator likewise); inside it, timing hooks measure
       `reference_forward` (forward hooks on `trainer.ref_model`) and `value_gradient` / `discriminator_gradient`
       (a timing wrapper around `trainer._critic_gradient`);
    4. `backward`: `trainer.accelerator.backward(loss)`;
    5. `optimizer`: gradient clipping + `trainer.optimizer.step()` + `zero_grad()` (the optimizer from
       `trainer.create_optimizer()`);
    6. `value_update`: `trainer.update_value_model(rollouts)` (`value_steps` value-model steps);
    7. `discriminator_update`: `trainer.update_discriminator(rollouts)`, which first samples the "real" reference
       trajectories (`reference_rollout`, timed by a wrapper around `trainer._reference_rollouts`) and then runs
       `discriminator_steps` steps.
  `total` is the sum of the top-level phases 1-7. Unless `--no_end_to_end_check` is given, the first cell also
  times the trainer's unmodified `training_step` (+ clipping and optimizer step) to show the sum matches it.
- `dpo`: one step of `ARDMDPOTrainer` on `B / 2` preference pairs (`B` sequences, chosen and rejected of `N`
  patches): `compute_loss` (`policy_forward`, and `reference_forward` timed by a wrapper around
  `trainer.reference_errors`), `backward`, `optimizer`, as above.

The reward is a cheap synthetic one (the mean of the latents), so `reward` shows the trainer's overhead and not a
speech model's. With the bundled codec (`ardm_trl.audio.load_pretrained_codec()`) each cell also times a real reward
on the rollouts of its last repeat: decoding with the codec (`decode`) and `ardm_trl.rewards.F0VarianceReward` on the
waveforms (`f0`).

In every repeat the three step types run one after the other (round-robin), so a ratio compares runs taken seconds
apart on the same (shared, noisy) machine; tables report medians of times and of per-repeat ratios. Each cell starts
with one untimed warm-up step of every kind at 2 patches (allocator, lazily created optimizer state).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from transformers import Trainer

from ardm_trl import ARDMConfig, ARDMForSpeechSynthesis, ARDMValueModel
from ardm_trl.trainer import VGPOConfig, VGPOTrainer
from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer

# LM (hidden, layers, heads, ffn) and head (hidden, blocks) of the model sizes the performance benchmarks use.
PRESETS = {
    "tiny": dict(lm=(32, 2, 2, 64), head=(32, 2)),
    "25m": dict(lm=(384, 8, 6, 1536), head=(512, 4)),
    "50m": dict(lm=(512, 10, 8, 2048), head=(512, 4)),
}
VGPO_PHASES = ("rollout", "reward", "loss_forward", "backward", "optimizer", "value_update", "discriminator_update")
VGPO_INNER = ("reference_forward", "value_gradient", "discriminator_gradient", "reference_rollout")
DPO_PHASES = ("loss_forward", "backward", "optimizer")
DPO_INNER = ("reference_forward",)

DEFAULTS = dict(preset="25m", lengths=[32, 64, 128], batch_sizes=[2, 8], repeats=2, num_inference_steps=16,
                text_length=32, prompt_frames=32, value_steps=2, discriminator_steps=2)
QUICK_DEFAULTS = dict(preset="tiny", lengths=[4], batch_sizes=[2], repeats=1, num_inference_steps=2, text_length=6,
                      prompt_frames=4, value_steps=1, discriminator_steps=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="Model size (default 25m).")
    parser.add_argument("--lengths", type=int, nargs="+", help="Patches per sequence (default 32 64 128).")
    parser.add_argument("--batch_sizes", type=int, nargs="+", help="Sequences per step, even (default 2 8).")
    parser.add_argument("--repeats", type=int, help="Timed steps per kind and cell; medians are reported.")
    parser.add_argument("--num_inference_steps", type=int, help="DDPM steps per patch in rollouts (default 16).")
    parser.add_argument("--text_length", type=int, help="Text tokens per sample (default 32).")
    parser.add_argument("--prompt_frames", type=int, help="Voice-prompt latent frames per sample (default 32).")
    parser.add_argument("--value_steps", type=int, help="Online value steps per VGPO step (paper: 10; default 2).")
    parser.add_argument("--discriminator_steps", type=int, help="ADM steps per VGPO step (paper: 10; default 2).")
    parser.add_argument("--num_generations", type=int, default=2, help="VGPO samples per prompt.")
    parser.add_argument("--num_threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--no_real_reward", action="store_true", help="Skip the codec + F0 reward timing.")
    parser.add_argument("--no_end_to_end_check", action="store_true", help="Skip the trainer.training_step check.")
    parser.add_argument("--quick", action="store_true", help="Tiny model and lengths: a smoke run of a few seconds.")
    parser.add_argument("--output_json", default="benchmarks/results/training_step.json", help="Where to write.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, value in (QUICK_DEFAULTS if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:  # an explicit option wins over the (quick) default
            setattr(args, name, value)
    if any(b % 2 or b % args.num_generations for b in args.batch_sizes):
        parser.error("every batch size must be even and a multiple of --num_generations (pairs, groups).")
    return args


# ---------------------------------------------------------------------------------------------- shared helpers
def build_config(preset: str) -> ARDMConfig:
    """An ARDM of the given size with the codec's latent layout (16 channels, patches of 2 frames)."""
    (hidden, layers, heads, ffn), (head_hidden, head_layers) = PRESETS[preset]["lm"], PRESETS[preset]["head"]
    return ARDMConfig(
        backbone_config=dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads, intermediate_size=ffn, max_position_embeddings=4096),
        head_hidden_size=head_hidden, head_num_layers=head_layers, max_patches=4096,
    )  # fmt: skip


def build_policy(preset: str, seed: int = 0) -> ARDMForSpeechSynthesis:
    """Random ARDM whose adaLN-zero modulations are moved off zero (so every block does real work) while the head's
    output layer stays at its zero initialisation: with a random non-zero epsilon head, DDPM samples blow up from
    patch to patch (NaN after ~16 patches of a 25 M model), and a NaN reward stops the trainer."""
    torch.manual_seed(seed)
    model = ARDMForSpeechSynthesis(build_config(preset))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.startswith("head.output."):
                parameter.add_(0.02 * torch.randn_like(parameter))
    return model


def count_parameters(model: ARDMForSpeechSynthesis) -> dict[str, int]:
    return {"lm": sum(p.numel() for p in model.backbone.parameters()),
            "head": sum(p.numel() for p in model.head.parameters()),
            "total": sum(p.numel() for p in model.parameters())}  # fmt: skip


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }


def prompt_rows(config: ARDMConfig, num: int, text_length: int, prompt_frames: int) -> list[dict]:
    rows = []
    for i in range(num):
        row = {"prompt": f"sentence {i}", "text_input_ids": torch.randint(1, config.text_vocab_size, (text_length,))}
        if prompt_frames:
            row["prompt_latents"] = torch.randn(prompt_frames, config.latent_dim)
        rows.append(row)
    return rows


def pretrain_batch(config: ARDMConfig, batch: int, num_patches: int, text_length: int, prompt_frames: int) -> dict:
    inputs = {"text_input_ids": torch.randint(1, config.text_vocab_size, (batch, text_length)),
              "labels": torch.randn(batch, num_patches * config.patch_size, config.latent_dim)}  # fmt: skip
    if prompt_frames:
        inputs["prompt_latents"] = torch.randn(batch, prompt_frames, config.latent_dim)
    return inputs


def mean_latent(prompts, completions, **kwargs) -> list[float]:
    """The cheap synthetic reward: the mean of each sample's latents."""
    return [float(c.mean()) for c in completions]


def common_args(output_dir: str) -> dict:
    return dict(output_dir=output_dir, use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no",
                logging_steps=1, max_grad_norm=1.0)  # fmt: skip


def make_optimizer(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    """The optimizer a `Trainer` with these `args` would build (AdamW, fused on CPU by default)."""
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return cls([p for p in model.parameters() if p.requires_grad], **kwargs)


class Timer:
    """Accumulates wall time per key; `timer.section(key)` is a context manager."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def section(self, key: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - start

    def wrap(self, fn, key):
        def timed(*args, **kwargs):
            with self.section(key(*args) if callable(key) else key):
                return fn(*args, **kwargs)

        return timed

    def hook_forward(self, module: torch.nn.Module, key: str) -> None:
        """Time every `module(...)` call (forward pre- and post-hooks)."""
        starts = []
        module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        module.register_forward_hook(lambda *_: self.seconds.__setitem__(
            key, self.seconds[key] + time.perf_counter() - starts.pop()))  # fmt: skip


# ---------------------------------------------------------------------------------------------- the three steps
class PretrainStep:
    def __init__(self, policy: ARDMForSpeechSynthesis, output_dir: str):
        self.model = copy.deepcopy(policy).train()
        self.args = VGPOConfig(**common_args(output_dir))
        self.optimizer = make_optimizer(self.model, self.args)

    def __call__(self, inputs: dict) -> dict[str, float]:
        timer = Timer()
        with timer.section("forward"):
            loss = self.model(**inputs).loss
        with timer.section("backward"):
            loss.backward()
        with timer.section("optimizer"):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return dict(timer.seconds, total=sum(timer.seconds.values()))


class VGPOStep:
    def __init__(self, policy: ARDMForSpeechSynthesis, cli: argparse.Namespace, batch: int, num_patches: int,
                 output_dir: str):  # fmt: skip
        policy = copy.deepcopy(policy)
        value_model = ARDMValueModel.from_ardm(policy)
        with torch.no_grad():
            value_model.head.output.weight.normal_(0, 0.02)  # a non-zero value gradient
        args = VGPOConfig(
            **common_args(output_dir), per_device_train_batch_size=batch // cli.num_generations,
            num_generations=cli.num_generations, max_patches=num_patches, min_patches=num_patches,
            num_inference_steps=cli.num_inference_steps, online_value_update=True, value_steps=cli.value_steps,
            use_adm=True, discriminator_steps=cli.discriminator_steps,
        )  # fmt: skip
        self.trainer = VGPOTrainer(policy, value_model, mean_latent, args)
        self.trainer.create_optimizer()
        self.timer = Timer()
        trainer = self.trainer
        self.timer.hook_forward(trainer.ref_model, "reference_forward")
        trainer._critic_gradient = self.timer.wrap(
            trainer._critic_gradient,
            lambda critic, *_: "value_gradient" if critic is trainer.value_model else "discriminator_gradient")
        trainer._reference_rollouts = self.timer.wrap(trainer._reference_rollouts, "reference_rollout")

    def set_length(self, num_patches: int) -> None:
        self.trainer.args.max_patches = self.trainer.args.min_patches = num_patches

    def __call__(self, rows: list[dict]) -> tuple[dict[str, float], object]:
        trainer, timer = self.trainer, self.timer
        timer.seconds.clear()
        model = trainer.model
        model.train()
        rollouts = trainer._generate_and_score(rows)
        timer.seconds["rollout"] = trainer._metrics["train"]["time/rollout"][-1]
        timer.seconds["reward"] = trainer._metrics["train"]["time/reward"][-1]
        with timer.section("loss_forward"):
            loss = trainer.compute_loss(model, {"rollouts": rollouts})
        with timer.section("backward"):
            trainer.accelerator.backward(loss)
        with timer.section("optimizer"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
        with timer.section("value_update"):
            trainer.update_value_model(rollouts)
        with timer.section("discriminator_update"):
            trainer.update_discriminator(rollouts)
        result = {key: timer.seconds.get(key, 0.0) for key in VGPO_PHASES + VGPO_INNER}
        result["total"] = sum(result[key] for key in VGPO_PHASES)
        return result, rollouts

    def end_to_end(self, rows: list[dict]) -> float:
        """The trainer's own `training_step` (rollout, reward, loss, backward, value and ADM updates) + clip + step."""
        trainer = self.trainer
        trainer.current_gradient_accumulation_steps = 1  # set by `Trainer.train`'s loop, which is not running here
        start = time.perf_counter()
        trainer.training_step(trainer.model, rows)
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.args.max_grad_norm)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


class DPOStep:
    def __init__(self, policy: ARDMForSpeechSynthesis, output_dir: str):
        args = ARDMDPOConfig(**common_args(output_dir))
        self.trainer = ARDMDPOTrainer(copy.deepcopy(policy), args=args)
        self.trainer.create_optimizer()
        self.timer = Timer()
        self.trainer.reference_errors = self.timer.wrap(self.trainer.reference_errors, "reference_forward")

    def __call__(self, rows: list[dict]) -> dict[str, float]:
        trainer, timer = self.trainer, self.timer
        timer.seconds.clear()
        model = trainer.model
        model.train()
        batch = trainer._prepare_inputs(rows)
        with timer.section("loss_forward"):
            loss = trainer.compute_loss(model, batch)
        with timer.section("backward"):
            trainer.accelerator.backward(loss)
        with timer.section("optimizer"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
        result = {key: timer.seconds.get(key, 0.0) for key in DPO_PHASES + DPO_INNER}
        result["total"] = sum(result[key] for key in DPO_PHASES)
        return result


def preference_rows(config: ARDMConfig, pairs: int, num_patches: int, text_length: int, prompt_frames: int):
    frames = num_patches * config.patch_size
    rows = prompt_rows(config, pairs, text_length, prompt_frames)
    for row in rows:
        row["chosen"], row["rejected"] = torch.randn(frames, config.latent_dim), torch.randn(frames, config.latent_dim)
    return rows


def step_inputs(config: ARDMConfig, args: argparse.Namespace, batch: int, num_patches: int, seed: int):
    """Inputs of one step of each kind for `batch` sequences of `num_patches` patches: a pretraining batch, the VGPO
    prompt rows (`batch / num_generations` prompts) and the ARDM-DPO preference rows (`batch / 2` pairs)."""
    torch.manual_seed(seed)
    return (pretrain_batch(config, batch, num_patches, args.text_length, args.prompt_frames),
            prompt_rows(config, batch // args.num_generations, args.text_length, args.prompt_frames),
            preference_rows(config, batch // 2, num_patches, args.text_length, args.prompt_frames))  # fmt: skip


def real_reward_times(codec, rollouts) -> dict[str, float]:
    """Seconds to decode the rollouts with the codec and to score them with `F0VarianceReward`."""
    from ardm_trl.rewards import F0VarianceReward

    reward = F0VarianceReward()
    completions = [c.detach().cpu() for c in rollouts.completions()]
    start = time.perf_counter()
    with torch.no_grad():
        audio = codec.decode_list(completions)
    decoded = time.perf_counter()
    values = reward(prompts=rollouts.prompts, completions=completions, audio=audio, sampling_rate=codec.sampling_rate)
    scored = time.perf_counter()
    return {"decode": decoded - start, "f0": scored - decoded, "total": scored - start,
            "audio_seconds": sum(len(a) for a in audio) / codec.sampling_rate,
            "num_scored": sum(v is not None for v in values)}  # fmt: skip


def load_codec():
    try:
        from ardm_trl.audio import load_pretrained_codec

        return load_pretrained_codec()
    except (ImportError, FileNotFoundError) as error:
        print(f"no real-reward timing: {error}", file=sys.stderr)
        return None


# ---------------------------------------------------------------------------------------------- the run
def median_dict(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def run(args: argparse.Namespace, on_progress=None) -> dict:
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    policy = build_policy(args.preset, args.seed)
    config = policy.config
    codec = None if args.no_real_reward else load_codec()
    report = {
        "settings": {
            "preset": args.preset,
            "lm": "{} x {} layers, {} heads, FFN {}".format(*PRESETS[args.preset]["lm"]),
            "head": "{} x {} blocks".format(*PRESETS[args.preset]["head"]),
            "num_parameters": count_parameters(policy),
            "latent_dim": config.latent_dim, "patch_size": config.patch_size,
            "diffusion_batch_multiplier": config.diffusion_batch_multiplier,
            "num_inference_steps": args.num_inference_steps, "num_generations": args.num_generations,
            "num_draws": VGPOConfig.num_draws, "lm_guidance_scale": VGPOConfig.lm_guidance_scale,
            "value_steps": args.value_steps, "discriminator_steps": args.discriminator_steps,
            "text_length": args.text_length, "prompt_frames": args.prompt_frames, "repeats": args.repeats,
            "lengths": args.lengths, "batch_sizes": args.batch_sizes,
            "reward": "synthetic: mean of the latents",
        },  # fmt: skip
        "environment": environment(),
        "results": [],
        "real_reward": [],
        "end_to_end_check": None,
    }
    cells = sorted(((n, b) for b in args.batch_sizes for n in args.lengths), key=lambda c: (c[0] * c[1], c))
    with tempfile.TemporaryDirectory() as output_dir:
        pretrain = PretrainStep(policy, output_dir)
        dpo = DPOStep(policy, output_dir)
        vgpo = {}
        for num_patches, batch in cells:
            if batch not in vgpo:  # one trainer per batch size: the policy keeps training across cells
                vgpo[batch] = VGPOStep(policy, args, batch, num_patches, output_dir)
            step = vgpo[batch]

            def inputs(length, repeat, batch=batch):
                return step_inputs(config, args, batch, length, seed=args.seed + 1000 * (repeat + 1) + length)

            warm = inputs(2, -1)  # warm-up at 2 patches
            step.set_length(2)
            pretrain(warm[0]), step(warm[1]), dpo(warm[2])
            step.set_length(num_patches)
            times = defaultdict(list)
            rollouts = None
            for repeat in range(args.repeats):
                pretrain_inputs, rows, pairs = inputs(num_patches, repeat)
                times["pretrain"].append(pretrain(pretrain_inputs))
                vgpo_times, rollouts = step(rows)
                times["vgpo"].append(vgpo_times)
                times["dpo"].append(dpo(pairs))
            row = {"num_patches": num_patches, "batch_size": batch, "tokens": num_patches * batch}
            for kind in ("pretrain", "vgpo", "dpo"):
                row[kind] = median_dict(times[kind])
                row[kind]["all_totals"] = [t["total"] for t in times[kind]]
            for kind in ("vgpo", "dpo"):
                row[f"{kind}_over_pretrain"] = statistics.median(
                    a["total"] / b["total"] for a, b in zip(times[kind], times["pretrain"]))
            row["vgpo_without_rollouts_over_pretrain"] = statistics.median(
                (a["total"] - a["rollout"] - a["reference_rollout"]) / b["total"]
                for a, b in zip(times["vgpo"], times["pretrain"]))  # fmt: skip
            report["results"].append(row)
            if codec is not None and rollouts is not None:
                report["real_reward"].append({"num_patches": num_patches, "batch_size": batch,
                                              **real_reward_times(codec, rollouts)})  # fmt: skip
            if report["end_to_end_check"] is None and not args.no_end_to_end_check:
                _, rows, _ = inputs(num_patches, args.repeats)
                seconds = step.end_to_end(rows)
                report["end_to_end_check"] = {
                    "num_patches": num_patches, "batch_size": batch, "trainer_training_step_seconds": seconds,
                    "median_sum_of_phases_seconds": row["vgpo"]["total"],
                    "ratio": seconds / row["vgpo"]["total"],
                }  # fmt: skip
            totals = {kind: round(row[kind]["total"], 3) for kind in ("pretrain", "vgpo", "dpo")}
            print(f"[{time.strftime('%H:%M:%S')}] {num_patches} patches, batch {batch}: median s {totals}",
                  file=sys.stderr, flush=True)  # fmt: skip
            if on_progress is not None:
                on_progress(report)
    report["environment"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report


def markdown_table(report: dict) -> str:
    ms = lambda s: f"{1e3 * s:.0f}"  # noqa: E731
    lines = [
        "| patches | batch | pretrain (ms) | VGPO (ms) | ARDM-DPO (ms) | VGPO / pretrain | VGPO w/o rollouts / pretrain "
        "| DPO / pretrain | pretrain patches/s | DPO patches/s | VGPO patches/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['num_patches']} | {r['batch_size']} | {ms(r['pretrain']['total'])} | {ms(r['vgpo']['total'])} "
            f"| {ms(r['dpo']['total'])} | {r['vgpo_over_pretrain']:.1f}x | {r['vgpo_without_rollouts_over_pretrain']:.1f}x "
            f"| {r['dpo_over_pretrain']:.2f}x | {r['tokens'] / r['pretrain']['total']:.0f} "
            f"| {r['tokens'] / r['dpo']['total']:.0f} | {r['tokens'] / r['vgpo']['total']:.1f} |"
        )
    lines += ["", "VGPO step, median ms per phase (inner timings in parentheses are part of the phase before them):", "",
              "| patches | batch | rollout | reward | loss fwd | (ref fwd) | (value grad) | (disc grad) | backward "
              "| optimizer | value update | ADM update | (ref rollout) | total |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["results"]:
        v = r["vgpo"]
        cells = [v[k] for k in ("rollout", "reward", "loss_forward", "reference_forward", "value_gradient",
                                "discriminator_gradient", "backward", "optimizer", "value_update",
                                "discriminator_update", "reference_rollout", "total")]  # fmt: skip
        lines.append(f"| {r['num_patches']} | {r['batch_size']} | " + " | ".join(ms(c) for c in cells) + " |")
    lines += ["", "Pretraining and ARDM-DPO steps, median ms per phase:", "",
              "| patches | batch | pretrain fwd | pretrain bwd | pretrain optim | DPO loss fwd | (DPO ref fwd) "
              "| DPO bwd | DPO optim |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["results"]:
        p, d = r["pretrain"], r["dpo"]
        cells = [p["forward"], p["backward"], p["optimizer"], d["loss_forward"], d["reference_forward"],
                 d["backward"], d["optimizer"]]  # fmt: skip
        lines.append(f"| {r['num_patches']} | {r['batch_size']} | " + " | ".join(ms(c) for c in cells) + " |")
    if report["real_reward"]:
        lines += ["", "Real reward on the VGPO rollouts (codec decode + F0VarianceReward) vs. the synthetic one:", "",
                  "| patches | batch | audio (s) | decode (ms) | F0 (ms) | real total (ms) | synthetic (ms) "
                  "| real reward / VGPO step |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        synthetic = {(r["num_patches"], r["batch_size"]): r["vgpo"] for r in report["results"]}
        for r in report["real_reward"]:
            v = synthetic[(r["num_patches"], r["batch_size"])]
            lines.append(
                f"| {r['num_patches']} | {r['batch_size']} | {r['audio_seconds']:.1f} | {ms(r['decode'])} "
                f"| {ms(r['f0'])} | {ms(r['total'])} | {ms(v['reward'])} | {r['total'] / v['total']:.3f} |"
            )
    check = report.get("end_to_end_check")
    if check:
        lines += ["", f"End-to-end check ({check['num_patches']} patches, batch {check['batch_size']}): the trainer's "
                  f"own `training_step` + optimizer step took {check['trainer_training_step_seconds']:.2f} s vs. "
                  f"{check['median_sum_of_phases_seconds']:.2f} s for the sum of the timed phases "
                  f"(ratio {check['ratio']:.2f})."]  # fmt: skip
    return "\n".join(lines)


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    output = Path(args.output_json)
    report = run(args, on_progress=lambda r: write_json(output, r))
    write_json(output, report)
    print(markdown_table(report))
    print(f"\nwritten to {output}")
    return report


if __name__ == "__main__":
    main()

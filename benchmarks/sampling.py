"""Sampling speed of an ARDM: KV cache vs. full recompute, LM guidance cost, value-guidance overhead.

Usage:

    python benchmarks/sampling.py                       # default ARDMConfig(), 16 DDPM steps, 16/64/128 patches
    python benchmarks/sampling.py --quick               # tiny model, a few seconds (used by the smoke test)
    python benchmarks/sampling.py --lengths 16 64 --batch_sizes 1 8 --repeats 5 --num_threads 2

For every (length, batch size) the variants below run round-robin inside each repeat, so a ratio compares two runs
taken seconds apart on the same (shared, noisy) machine; the table reports medians of times and of per-repeat ratios.

- `cache`: `generate(..., use_cache=True, lm_guidance_scale=2)`, the default sampler;
- `no_cache`: the same with `use_cache=False` (the whole prefix is recomputed at every patch);
- `no_guidance`: `lm_guidance_scale=1` (the unconditional branch is skipped);
- `value`: `cache` plus value guidance with `ARDMValueModel.from_ardm(model)` and `value_guidance_scale=1`.

The length is forced with `min_patches = max_patches` (the stop head is never consulted). Weights are random: speed
does not depend on them. A micro-benchmark also times one guided head evaluation and one value-gradient evaluation
at the sampler's batch size, to show that value guidance costs about one head evaluation per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ardm_trl import ARDMConfig, ARDMForSpeechSynthesis, ARDMValueModel

VARIANTS = {
    "cache": dict(use_cache=True, lm_guidance_scale=2.0, value=False),
    "no_cache": dict(use_cache=False, lm_guidance_scale=2.0, value=False),
    "no_guidance": dict(use_cache=True, lm_guidance_scale=1.0, value=False),
    "value": dict(use_cache=True, lm_guidance_scale=2.0, value=True),
}
RATIOS = {  # name: (numerator variant, denominator variant), ratios of times
    "cache_speedup": ("no_cache", "cache"),
    "lm_guidance_cost": ("cache", "no_guidance"),
    "value_guidance_overhead": ("value", "cache"),
}

DEFAULTS = dict(lengths=[16, 64, 128], batch_sizes=[1, 8], repeats=3, num_inference_steps=16, text_length=48,
                prompt_frames=64)
QUICK_DEFAULTS = dict(lengths=[4, 8], batch_sizes=[1, 2], repeats=1, num_inference_steps=4, text_length=8,
                      prompt_frames=8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", help="Generated patches per sample (default 16 64 128).")
    parser.add_argument("--batch_sizes", type=int, nargs="+", help="Samples per generate call (default 1 8).")
    parser.add_argument("--repeats", type=int, help="Timed repeats per variant, medians are reported (default 3).")
    parser.add_argument("--num_inference_steps", type=int, help="DDPM steps per patch (default 16).")
    parser.add_argument("--text_length", type=int, help="Text tokens per sample, i.e. phonemes (default 48).")
    parser.add_argument("--prompt_frames", type=int, help="Voice-prompt latent frames per sample (default 64).")
    parser.add_argument("--num_threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--quick", action="store_true", help="Tiny model and lengths: a smoke run of a few seconds.")
    parser.add_argument("--output_json", default="benchmarks/results/sampling.json", help="Where to write results.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    for name, value in defaults.items():  # an explicit option wins over the (quick) default
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def build_config(quick: bool) -> ARDMConfig:
    """The default `ARDMConfig()` (LM 256 x 4 layers, head 512 x 4, 16 latent channels, patch 2), or a tiny one."""
    if not quick:
        return ARDMConfig()
    return ARDMConfig(
        backbone_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=2),
        head_hidden_size=32,
        head_num_layers=2,
    )


def perturb_(model: torch.nn.Module, scale: float = 0.02) -> torch.nn.Module:
    """Move the zero-initialised layers (adaLN-zero, output) off zero, so every block does real work."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return model


def make_inputs(config: ARDMConfig, batch: int, text_length: int, prompt_frames: int) -> dict[str, torch.Tensor]:
    inputs = {"text_input_ids": torch.randint(1, config.text_vocab_size, (batch, text_length))}
    if prompt_frames > 0:
        inputs["prompt_latents"] = torch.randn(batch, prompt_frames, config.latent_dim)
    return inputs


def time_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_generate(model, value_model, inputs, num_patches: int, steps: int, variant: dict, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    return time_call(
        lambda: model.generate(
            **inputs,
            max_patches=num_patches,
            min_patches=num_patches,
            num_inference_steps=steps,
            lm_guidance_scale=variant["lm_guidance_scale"],
            value_model=value_model if variant["value"] else None,
            value_guidance_scale=1.0 if variant["value"] else 0.0,
            use_cache=variant["use_cache"],
            generator=generator,
        )
    )


def time_head_calls(model, value_model, batch: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of one guided head prediction (both LM-guidance branches) and one value gradient."""
    config = model.config
    hidden = torch.randn(2 * batch, config.backbone_config.hidden_size)
    previous, noisy = torch.randn(batch, config.patch_dim), torch.randn(batch, config.patch_dim)
    timesteps = torch.full((batch,), 500, dtype=torch.long)
    number = 20

    def guided():
        with torch.no_grad():
            for _ in range(number):
                model.guided_prediction(hidden[:batch], hidden[batch:], previous, noisy, timesteps, 2.0)

    def value_grad():
        for _ in range(number):
            value_model.value_and_grad(hidden[:batch], previous, noisy, timesteps)

    guided(), value_grad()  # warm-up
    head = statistics.median(time_call(guided) for _ in range(max(repeats, 3))) / number
    grad = statistics.median(time_call(value_grad) for _ in range(max(repeats, 3))) / number
    return {"guided_head_ms": 1e3 * head, "value_grad_ms": 1e3 * grad, "value_grad_over_guided_head": grad / head}


def run(args: argparse.Namespace, on_progress=None) -> dict:
    """Time every (length, batch size) cell, cheapest first; `on_progress(report)` is called after each cell, so an
    interrupted run still leaves the finished cells behind."""
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    config = build_config(args.quick)
    model = perturb_(ARDMForSpeechSynthesis(config)).eval()
    value_model = perturb_(ARDMValueModel.from_ardm(model)).eval()
    num_parameters = {"lm": sum(p.numel() for p in model.backbone.parameters()),
                      "head": sum(p.numel() for p in model.head.parameters())}  # fmt: skip
    report = {
        "settings": {
            "config": "tiny (--quick)" if args.quick else "ARDMConfig() defaults",
            "lm": f"{config.backbone_config.hidden_size} x {config.backbone_config.num_hidden_layers} layers",
            "head": f"{config.head_hidden_size} x {config.head_num_layers} blocks",
            "num_parameters": num_parameters,
            "latent_dim": config.latent_dim,
            "patch_size": config.patch_size,
            "num_inference_steps": args.num_inference_steps,
            "text_length": args.text_length,
            "prompt_frames": args.prompt_frames,
            "repeats": args.repeats,
            "lengths": args.lengths,
            "batch_sizes": args.batch_sizes,
        },
        "environment": {
            "torch": torch.__version__,
            "num_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
        "results": [],
        "ratios": [],
        "head_calls": [],
    }
    inputs = {batch: make_inputs(config, batch, args.text_length, args.prompt_frames) for batch in args.batch_sizes}
    for batch in args.batch_sizes:
        report["head_calls"].append(
            {"batch_size": batch, **time_head_calls(model, value_model, batch, args.repeats)}
        )
    cells = sorted(((n, b) for b in args.batch_sizes for n in args.lengths), key=lambda c: (c[0] * c[1] ** 0.5, c))
    for num_patches, batch in cells:
        for variant in VARIANTS.values():  # warm-up (allocator, first-call overheads)
            time_generate(model, value_model, inputs[batch], min(num_patches, 2), args.num_inference_steps, variant, 0)
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for repeat in range(args.repeats):
            for name, variant in VARIANTS.items():
                seconds = time_generate(
                    model, value_model, inputs[batch], num_patches, args.num_inference_steps, variant, repeat
                )
                times[name].append(seconds)
        frames = batch * num_patches * config.patch_size
        for name, seconds in times.items():
            median = statistics.median(seconds)
            report["results"].append({
                "num_patches": num_patches, "batch_size": batch, "variant": name, "seconds": seconds,
                "median_seconds": median, "frames_per_second": frames / median,
            })  # fmt: skip
        row = {"num_patches": num_patches, "batch_size": batch}
        for ratio, (top, bottom) in RATIOS.items():
            row[ratio] = statistics.median(a / b for a, b in zip(times[top], times[bottom]))
        report["ratios"].append(row)
        medians = {name: round(statistics.median(seconds), 3) for name, seconds in times.items()}
        print(f"[{time.strftime('%H:%M:%S')}] {num_patches} patches, batch {batch}: median s {medians}",
              file=sys.stderr, flush=True)  # fmt: skip
        if on_progress is not None:
            on_progress(report)
    return report


def markdown_table(report: dict) -> str:
    fps = {(r["num_patches"], r["batch_size"], r["variant"]): r["frames_per_second"] for r in report["results"]}
    lines = [
        "| patches | batch | frames/s cache | frames/s no cache | frames/s w=1 | frames/s value | cache speedup "
        "| LM guidance cost (w=2 / w=1) | value-guidance overhead |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["ratios"]:
        key = (row["num_patches"], row["batch_size"])
        lines.append(
            f"| {key[0]} | {key[1]} | {fps[(*key, 'cache')]:.0f} | {fps[(*key, 'no_cache')]:.0f} "
            f"| {fps[(*key, 'no_guidance')]:.0f} | {fps[(*key, 'value')]:.0f} | {row['cache_speedup']:.2f}x "
            f"| {row['lm_guidance_cost']:.2f}x | {row['value_guidance_overhead']:.2f}x |"
        )
    lines += ["", "| batch | guided head call (ms) | value gradient call (ms) | ratio |", "|---:|---:|---:|---:|"]
    for row in report["head_calls"]:
        lines.append(
            f"| {row['batch_size']} | {row['guided_head_ms']:.2f} | {row['value_grad_ms']:.2f} "
            f"| {row['value_grad_over_guided_head']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)

    def write(report: dict) -> None:
        output.write_text(json.dumps(report, indent=2) + "\n")

    report = run(args, on_progress=write)
    write(report)
    print(markdown_table(report))
    print(f"\nwritten to {output}")
    return report


if __name__ == "__main__":
    main()

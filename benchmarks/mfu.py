"""Model FLOPs utilisation (MFU) of an ARDM training step vs. the machine's measured matrix-multiply peak.

Usage:

    python benchmarks/mfu.py                  # ~50 M-param ARDM, batch 8 x 64 patches, fp32 and bf16 autocast
    python benchmarks/mfu.py --quick          # tiny model, a few seconds (used by the smoke test)
    python benchmarks/mfu.py --batch_size 16 --num_patches 128 --repeats 5 --num_threads 2

Peak: the median FLOP/s of `a @ b` with square `n x n` matrices (`--matmul_size`, default 2048, `2 n^3` FLOPs per
product), in fp32 and in bf16 (bf16 operands, i.e. what the matmuls inside a bf16-autocast step run on).

Step: one pretraining step of the ARDM (`model(..., labels=latents).loss`, backward, gradient clipping, AdamW step)
on synthetic latents, in fp32 and under `torch.autocast("cpu", dtype=torch.bfloat16)`. Its FLOPs are counted once
with `torch.utils.flop_counter.FlopCounterMode` over forward + backward (matmuls, linear layers and attention; the
elementwise work and the optimizer are not counted, as usual for MFU). CPU flash attention
(`aten._scaled_dot_product_flash_attention_for_cpu` and its backward) has no formula in torch's table, so this script
registers torch's own SDPA formulas for it (full `L x L` attention, the causal half is not discounted, as in torch).
For comparison the analytic estimate is reported too:

    6 * P_lm * T_lm + 6 * P_head * (N_patches * K)

with `P_lm` the LM's parameters without embeddings, `T_lm = B * (text + 1 + prompt patches + N)` the LM tokens,
`P_head` the diffusion head's parameters, `N_patches = B * N` and `K = diffusion_batch_multiplier` (the head runs
`K` times per patch). Attention is left out of the estimate.

Achieved FLOP/s = counted FLOPs / median step time; MFU = achieved / peak of the same precision. Peaks and steps are
timed round-robin in every repeat (peak fp32, step fp32, peak bf16, step bf16), so each MFU compares measurements
taken seconds apart on the same shared machine; the table reports medians of per-repeat values.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    register_flop_formula,
    sdpa_backward_flop,
    sdpa_flop,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_step import (  # noqa: E402  (sibling benchmark script)
    PRESETS,
    build_policy,
    count_parameters,
    environment,
    make_optimizer,
    pretrain_batch,
    write_json,
)

from ardm_trl.trainer import VGPOConfig  # noqa: E402

DEFAULTS = dict(preset="50m", batch_size=8, num_patches=64, text_length=32, prompt_frames=32, repeats=3,
                matmul_size=2048)
QUICK_DEFAULTS = dict(preset="tiny", batch_size=2, num_patches=4, text_length=6, prompt_frames=4, repeats=1,
                      matmul_size=256)
PRECISIONS = ("fp32", "bf16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="Model size (default 50m).")
    parser.add_argument("--batch_size", type=int, help="Sequences per step (default 8).")
    parser.add_argument("--num_patches", type=int, help="Patches per sequence (default 64).")
    parser.add_argument("--text_length", type=int, help="Text tokens per sample (default 32).")
    parser.add_argument("--prompt_frames", type=int, help="Voice-prompt latent frames per sample (default 32).")
    parser.add_argument("--repeats", type=int, help="Timed repeats; medians are reported (default 3).")
    parser.add_argument("--matmul_size", type=int, help="n of the n x n x n peak matmul (default 2048).")
    parser.add_argument("--num_threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--quick", action="store_true", help="Tiny model and matmul: a smoke run of a few seconds.")
    parser.add_argument("--output_json", default="benchmarks/results/mfu.json", help="Where to write results.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, value in (QUICK_DEFAULTS if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def register_cpu_flash_attention_flops() -> None:
    """Count CPU flash attention with torch's SDPA formulas (torch has none registered for the CPU kernels)."""
    aten = torch.ops.aten
    pairs = ((getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None), sdpa_flop),
             (getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None), sdpa_backward_flop))
    for op, formula in pairs:
        if op is not None and op not in flop_registry:
            register_flop_formula(op, get_raw=True)(formula)  # `formula` already converts tensors to shapes


def precision_context(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_flops_per_second(size: int, dtype: torch.dtype, number: int = 5) -> float:
    """Median FLOP/s of `number` products of two `size x size` matrices (one warm-up product first)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    seconds = []
    for _ in range(number):
        start = time.perf_counter()
        torch.matmul(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds)


def training_step(model, optimizer, inputs: dict, precision: str, max_grad_norm: float) -> None:
    with precision_context(precision):
        loss = model(**inputs).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def count_step_flops(model, inputs: dict) -> tuple[int, dict[str, int]]:
    """FLOPs of one forward + backward (fp32), total and per aten op."""
    register_cpu_flash_attention_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        model(**inputs).loss.backward()
    model.zero_grad(set_to_none=True)
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), per_op


def analytic_flops(model, args: argparse.Namespace) -> dict[str, int]:
    config = model.config
    lm_params = sum(p.numel() for p in model.backbone.lm.parameters())  # the decoder, no embeddings
    embedding = model.backbone.lm.get_input_embeddings()
    if embedding is not None:
        lm_params -= embedding.weight.numel()
    head_params = sum(p.numel() for p in model.head.parameters())
    lm_tokens = args.batch_size * (args.text_length + 1 + args.prompt_frames // config.patch_size + args.num_patches)
    head_evaluations = args.batch_size * args.num_patches * config.diffusion_batch_multiplier
    return {"lm_params_no_embeddings": lm_params, "head_params": head_params, "lm_tokens": lm_tokens,
            "head_evaluations": head_evaluations, "lm_flops": 6 * lm_params * lm_tokens,
            "head_flops": 6 * head_params * head_evaluations,
            "total": 6 * lm_params * lm_tokens + 6 * head_params * head_evaluations}  # fmt: skip


def run(args: argparse.Namespace, on_progress=None) -> dict:
    torch.set_num_threads(args.num_threads)
    model = build_policy(args.preset, args.seed).train()
    config = model.config
    optimizer = make_optimizer(model, VGPOConfig(output_dir="unused", use_cpu=True, report_to="none"))
    torch.manual_seed(args.seed)
    inputs = pretrain_batch(config, args.batch_size, args.num_patches, args.text_length, args.prompt_frames)
    counted, per_op = count_step_flops(model, inputs)
    report = {
        "settings": {
            "preset": args.preset,
            "lm": "{} x {} layers, {} heads, FFN {}".format(*PRESETS[args.preset]["lm"]),
            "head": "{} x {} blocks".format(*PRESETS[args.preset]["head"]),
            "num_parameters": count_parameters(model), "batch_size": args.batch_size,
            "num_patches": args.num_patches, "text_length": args.text_length, "prompt_frames": args.prompt_frames,
            "diffusion_batch_multiplier": config.diffusion_batch_multiplier, "repeats": args.repeats,
            "matmul_size": args.matmul_size, "optimizer": type(optimizer).__name__,
        },  # fmt: skip
        "environment": environment(),
        "flops": {"counted_forward_backward": counted, "counted_per_op": per_op,
                  "analytic": analytic_flops(model, args)},  # fmt: skip
        "repeats": [],
        "summary": {},
    }
    for precision in PRECISIONS:  # warm-up (allocator, lazily created optimizer state, oneDNN kernels)
        training_step(model, optimizer, inputs, precision, 1.0)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    for repeat in range(args.repeats):
        row = {}
        for precision in PRECISIONS:
            peak = matmul_flops_per_second(args.matmul_size, dtypes[precision])
            start = time.perf_counter()
            training_step(model, optimizer, inputs, precision, 1.0)
            seconds = time.perf_counter() - start
            row[precision] = {"peak_flops_per_second": peak, "step_seconds": seconds,
                              "achieved_flops_per_second": counted / seconds, "mfu": counted / seconds / peak}
        report["repeats"].append(row)
        print(f"[{time.strftime('%H:%M:%S')}] repeat {repeat}: "
              + ", ".join(f"{p} step {row[p]['step_seconds']:.2f} s MFU {row[p]['mfu']:.3f}" for p in PRECISIONS),
              file=sys.stderr, flush=True)  # fmt: skip
        if on_progress is not None:
            on_progress(report)
    for precision in PRECISIONS:
        values = [r[precision] for r in report["repeats"]]
        report["summary"][precision] = {key: statistics.median(v[key] for v in values) for key in values[0]}
    report["summary"]["bf16_step_speedup"] = statistics.median(
        r["fp32"]["step_seconds"] / r["bf16"]["step_seconds"] for r in report["repeats"])
    report["environment"]["load_average_at_end"] = environment()["load_average_at_start"]
    return report


def markdown_table(report: dict) -> str:
    s, flops = report["settings"], report["flops"]
    lines = [
        f"Model: {s['num_parameters']['total'] / 1e6:.1f} M parameters (LM {s['lm']}, head {s['head']}); batch "
        f"{s['batch_size']} x {s['num_patches']} patches, text {s['text_length']}, prompt {s['prompt_frames']} frames. "
        f"FLOPs per step (forward + backward): counted {flops['counted_forward_backward'] / 1e9:.1f} G, analytic "
        f"6·P·T estimate {flops['analytic']['total'] / 1e9:.1f} G.",
        "",
        "| precision | matmul peak (GFLOP/s) | step (s) | achieved (GFLOP/s) | MFU |",
        "|---|---:|---:|---:|---:|",
    ]
    for precision in PRECISIONS:
        r = report["summary"][precision]
        lines.append(f"| {precision} | {r['peak_flops_per_second'] / 1e9:.0f} | {r['step_seconds']:.2f} "
                     f"| {r['achieved_flops_per_second'] / 1e9:.1f} | {100 * r['mfu']:.1f}% |")  # fmt: skip
    lines.append(f"\nbf16 autocast step speed-up over fp32: {report['summary']['bf16_step_speedup']:.2f}x")
    return "\n".join(lines)


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

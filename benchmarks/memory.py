"""Peak memory of VGPO and ARDM-DPO training steps, full fine-tuning (frozen reference copy) vs. LoRA (reference =
the policy with adapters disabled).

Usage:

    python benchmarks/memory.py                   # ~50 M-param ARDM, 4 configurations, one fresh process each
    python benchmarks/memory.py --quick --in_process   # tiny model, all in this process (used by the smoke test)
    python benchmarks/memory.py --configs vgpo_full vgpo_lora --steps 3

Each configuration (`vgpo_full`, `vgpo_lora`, `dpo_full`, `dpo_lora`) runs in a fresh Python process (`--worker`),
so allocator caches and earlier peaks of other configurations do not leak into its figures. The worker records:

- parameter bytes of the policy, of its trainable part, of the trainer's separate reference model (`trainer.ref_model`:
  a full frozen copy with full fine-tuning, none with LoRA), of the value model (VGPO), and the optimizer state after
  training;
- on the CPU, resident memory from `/proc/self/status`: `VmRSS` before/after building the models and the trainer,
  and the peak `VmHWM` during `trainer.train()` of `--steps` steps (the peak counter is reset through
  `/proc/self/clear_refs` before each phase, so a phase's peak is its own); the "delta" of a phase is its peak minus
  the resident memory when it started. Freed memory that the C allocator keeps for reuse stays resident, so deltas are
  upper bounds of what a phase newly needs, measured the same way for full fine-tuning and LoRA;
- with CUDA, `torch.cuda.max_memory_allocated()` per phase instead (the trainer then runs on the GPU).

VGPO runs with its default critics (value model frozen, no ADM), rollouts forced to `--num_patches` patches with a cheap
synthetic reward; rollouts use `--num_inference_steps` (default 4: the number of denoising steps changes time, not the
memory of a step). LoRA: rank 16 on `q_proj`, `k_proj`, `v_proj`, `o_proj` of the LM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_step import PRESETS, build_policy, count_parameters, environment, mean_latent, write_json  # noqa: E402

CONFIGS = ("vgpo_full", "vgpo_lora", "dpo_full", "dpo_lora")
DEFAULTS = dict(preset="50m", batch_size=4, num_patches=32, num_inference_steps=4, text_length=32, prompt_frames=32,
                steps=2)
QUICK_DEFAULTS = dict(preset="tiny", batch_size=2, num_patches=4, num_inference_steps=2, text_length=6,
                      prompt_frames=4, steps=1)
MiB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--preset", choices=sorted(PRESETS), help="Model size (default 50m).")
    parser.add_argument("--batch_size", type=int, help="Sequences per step: trajectories (VGPO) or pairs x 2 (DPO).")
    parser.add_argument("--num_patches", type=int, help="Patches per sequence (default 32).")
    parser.add_argument("--num_inference_steps", type=int, help="DDPM steps per patch in VGPO rollouts (default 4).")
    parser.add_argument("--text_length", type=int, help="Text tokens per sample (default 32).")
    parser.add_argument("--prompt_frames", type=int, help="Voice-prompt latent frames per sample (default 32).")
    parser.add_argument("--steps", type=int, help="Training steps per configuration (default 2).")
    parser.add_argument("--lora_rank", type=int, default=16)
    parser.add_argument("--num_threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--in_process", action="store_true", help="Run every configuration in this process.")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="Tiny model: a smoke run of a few seconds.")
    parser.add_argument("--output_json", default="benchmarks/results/memory.json", help="Where to write results.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, value in (QUICK_DEFAULTS if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.batch_size % 2:
        parser.error("--batch_size must be even (VGPO groups of 2, DPO pairs).")
    return args


# ---------------------------------------------------------------------------------------------- measuring
class MemoryProbe:
    """Current and peak memory of this process: CUDA allocator statistics with CUDA, else `/proc/self/status`."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        except OSError:
            pass

    def read(self) -> dict[str, int]:
        """`{"current": bytes, "peak": bytes}` since the last `reset_peak`."""
        if self.cuda:
            torch.cuda.synchronize()
            return {"current": torch.cuda.memory_allocated(), "peak": torch.cuda.max_memory_allocated()}
        values = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) * 1024
        return {"current": values["VmRSS"], "peak": values["VmHWM"]}


def parameter_bytes(module: torch.nn.Module | None, trainable_only: bool = False) -> int:
    if module is None:
        return 0
    return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad or not trainable_only)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer | None) -> int:
    if optimizer is None:
        return 0
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if isinstance(value, torch.Tensor))  # fmt: skip


def synthetic_rows(config, args: argparse.Namespace, kind: str) -> list[dict]:
    """Dataset rows for `args.steps` steps: prompts (VGPO) or preference pairs (DPO), as plain lists."""
    generator = torch.Generator().manual_seed(args.seed)
    per_step = args.batch_size // 2  # prompts (2 generations each) or pairs
    rows = []
    for i in range(per_step * args.steps):
        row = {"prompt": f"sentence {i}",
               "text_input_ids": torch.randint(1, config.text_vocab_size, (args.text_length,), generator=generator)}
        if args.prompt_frames:
            row["prompt_latents"] = torch.randn(args.prompt_frames, config.latent_dim, generator=generator)
        if kind == "dpo":
            frames = args.num_patches * config.patch_size
            row["chosen"] = torch.randn(frames, config.latent_dim, generator=generator)
            row["rejected"] = torch.randn(frames, config.latent_dim, generator=generator)
        rows.append({k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in row.items()})
    return rows


def build_trainer(name: str, policy, value_model, args: argparse.Namespace, output_dir: str):
    from datasets import Dataset
    from peft import LoraConfig

    kind, mode = name.split("_")
    peft_config = None
    if mode == "lora":
        peft_config = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    common = dict(output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size // 2,
                  use_cpu=not torch.cuda.is_available(), report_to="none", disable_tqdm=True, save_strategy="no",
                  logging_steps=1, learning_rate=1e-5, seed=args.seed)  # fmt: skip
    dataset = Dataset.from_list(synthetic_rows(policy.config, args, kind))
    if kind == "vgpo":
        from ardm_trl.trainer import VGPOConfig, VGPOTrainer

        config = VGPOConfig(**common, num_generations=2, max_patches=args.num_patches, min_patches=args.num_patches,
                            num_inference_steps=args.num_inference_steps)  # fmt: skip
        return VGPOTrainer(policy, value_model, mean_latent, config, train_dataset=dataset, peft_config=peft_config)
    from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
    from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer

    return ARDMDPOTrainer(policy, args=ARDMDPOConfig(**common), train_dataset=dataset, peft_config=peft_config)


def measure(name: str, args: argparse.Namespace) -> dict:
    """Build the models and the trainer of configuration `name`, train `args.steps` steps, and record memory."""
    from ardm_trl import ARDMValueModel

    torch.set_num_threads(args.num_threads)
    probe = MemoryProbe()
    phases = {}

    def phase(label: str, start: dict[str, int]) -> None:
        now = probe.read()
        phases[label] = {"start": start["current"], "end": now["current"], "peak": now["peak"],
                         "peak_delta": now["peak"] - start["current"]}  # fmt: skip

    probe.reset_peak()
    start = probe.read()
    policy = build_policy(args.preset, args.seed)
    value_model = ARDMValueModel.from_ardm(policy) if name.startswith("vgpo") else None
    if value_model is not None:
        with torch.no_grad():
            value_model.head.output.weight.normal_(0, 0.02)  # a trained value model's non-zero output layer
    if probe.cuda:
        policy.cuda()
        value_model = value_model.cuda() if value_model is not None else None
    phase("build_models", start)
    with tempfile.TemporaryDirectory() as output_dir:
        probe.reset_peak()
        start = probe.read()
        trainer = build_trainer(name, policy, value_model, args, output_dir)
        phase("build_trainer", start)
        probe.reset_peak()
        start = probe.read()
        trainer.train()
        phase("train", start)
        model = trainer.model
        result = {
            "config": name,
            "device": "cuda" if probe.cuda else "cpu",
            "memory_kind": "torch.cuda.max_memory_allocated" if probe.cuda else "VmRSS / VmHWM",
            "phases": phases,
            "bytes": {
                "policy_parameters": parameter_bytes(model),
                "trainable_parameters": parameter_bytes(model, trainable_only=True),
                "reference_model_parameters": parameter_bytes(trainer.ref_model),
                "value_model_parameters": parameter_bytes(getattr(trainer, "value_model", None)),
                "optimizer_state": optimizer_state_bytes(trainer.optimizer),
            },
            "reference_is_separate_model": trainer.ref_model is not None,
            "loss": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        }
    return result


# ---------------------------------------------------------------------------------------------- the run
def run_worker(name: str, args: argparse.Namespace, argv: list[str]) -> dict:
    """Run configuration `name` in a fresh Python process; its JSON result is the last line of its stdout."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", name]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if completed.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, argv: list[str], on_progress=None) -> dict:
    policy = build_policy(args.preset, args.seed)
    report = {
        "settings": {
            "preset": args.preset,
            "lm": "{} x {} layers, {} heads, FFN {}".format(*PRESETS[args.preset]["lm"]),
            "head": "{} x {} blocks".format(*PRESETS[args.preset]["head"]),
            "num_parameters": count_parameters(policy), "batch_size": args.batch_size,
            "num_patches": args.num_patches, "num_inference_steps": args.num_inference_steps,
            "text_length": args.text_length, "prompt_frames": args.prompt_frames, "steps": args.steps,
            "lora": {"r": args.lora_rank, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
            "fresh_process_per_config": not args.in_process,
        },  # fmt: skip
        "environment": environment(),
        "results": [],
        "comparison": {},
    }
    del policy
    for name in args.configs:
        result = measure(name, args) if args.in_process else run_worker(name, args, argv)
        report["results"].append(result)
        print(f"{name}: train peak delta {result['phases']['train']['peak_delta'] / MiB:.0f} MiB", file=sys.stderr)
        if on_progress is not None:
            on_progress(report)
    by_name = {r["config"]: r for r in report["results"]}
    for kind in ("vgpo", "dpo"):
        full, lora = by_name.get(f"{kind}_full"), by_name.get(f"{kind}_lora")
        if full is None or lora is None:
            continue
        total = lambda r: r["phases"]["build_trainer"]["peak_delta"] + r["phases"]["train"]["peak_delta"]  # noqa: E731
        report["comparison"][kind] = {
            "reference_parameter_bytes_full": full["bytes"]["reference_model_parameters"],
            "reference_parameter_bytes_lora": lora["bytes"]["reference_model_parameters"],
            "build_trainer_delta_full_minus_lora": full["phases"]["build_trainer"]["peak_delta"]
            - lora["phases"]["build_trainer"]["peak_delta"],
            "train_peak_delta_full_minus_lora": full["phases"]["train"]["peak_delta"]
            - lora["phases"]["train"]["peak_delta"],
            "trainer_and_train_delta_full_minus_lora": total(full) - total(lora),
            "optimizer_state_full_minus_lora": full["bytes"]["optimizer_state"] - lora["bytes"]["optimizer_state"],
        }
    report["environment"]["load_average_at_end"] = environment()["load_average_at_start"]
    return report


def markdown_table(report: dict) -> str:
    mib = lambda b: f"{b / MiB:.1f}"  # noqa: E731
    s = report["settings"]
    lines = [
        f"Model: {s['num_parameters']['total'] / 1e6:.1f} M parameters; batch {s['batch_size']} x {s['num_patches']} "
        f"patches, {s['steps']} steps; memory = {report['results'][0]['memory_kind']} (MiB).",
        "",
        "| config | policy params | trainable params | reference copy params | value model params | optimizer state "
        "| trainer init (peak delta) | train (peak delta) | train peak (absolute) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        b, p = r["bytes"], r["phases"]
        lines.append(
            f"| {r['config']} | {mib(b['policy_parameters'])} | {b['trainable_parameters'] / MiB:.2f} "
            f"| {mib(b['reference_model_parameters'])} | {mib(b['value_model_parameters'])} "
            f"| {b['optimizer_state'] / MiB:.2f} | {mib(p['build_trainer']['peak_delta'])} "
            f"| {mib(p['train']['peak_delta'])} | {mib(p['train']['peak'])} |"
        )
    if report["comparison"]:
        lines += ["", "| trainer | reference params full / LoRA | optimizer state full - LoRA "
                  "| trainer init + train deltas, full - LoRA |", "|---|---:|---:|---:|"]  # fmt: skip
        for kind, c in report["comparison"].items():
            lines.append(
                f"| {kind} | {mib(c['reference_parameter_bytes_full'])} / {mib(c['reference_parameter_bytes_lora'])} "
                f"| {mib(c['optimizer_state_full_minus_lora'])} | {mib(c['trainer_and_train_delta_full_minus_lora'])} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return {}
    output = Path(args.output_json)
    report = run(args, argv, on_progress=lambda r: write_json(output, r))
    write_json(output, report)
    print(markdown_table(report))
    print(f"\nwritten to {output}")
    return report


if __name__ == "__main__":
    main()

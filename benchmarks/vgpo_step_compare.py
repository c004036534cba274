"""A VGPO step (Alg. 3 with online value update and ADM) of this tree against an earlier revision's, side by side.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/vgpo_step_compare.py --baseline 5821008 --rounds 2 --steps 3

The earlier revision is checked out in a temporary git worktree; each variant (baseline fp32, this tree fp32, this
tree bf16) runs in its own Python process that imports its own tree's `ardm_trl` and that tree's
`benchmarks/training_step.py` (whose model, inputs and `VGPOStep` both revisions share), builds the same random
25 M ARDM (seed 0) and times `steps` consecutive calls of the trainer's own `training_step` + clipping + optimizer
step on the same prompt rows (64 patches x batch 8 by default: 4 prompts x 2 rollouts, 16 DDPM steps, two value and
two discriminator steps per policy step). Variants alternate within each round, so every ratio compares processes run
minutes apart on the same machine.

The first step of a process is reported apart (`first`): it warms the allocator and, in this tree, fills ADM's
reference-sample cache. This tree's variants keep 2 reference samples per prompt (`adm_reference_samples_per_prompt=2`,
the default is 8), so from the second step on the cache serves ADM's "real" samples, as it does in a long run once
every prompt has been visited `samples_per_prompt / num_generations` times; `steady` is the median of those later
steps. The baseline draws reference samples at every step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import argparse, json, sys, tempfile, time
spec = json.loads(sys.argv[1])
sys.path[:0] = [spec["tree"] + "/src", spec["tree"] + "/benchmarks"]
import torch
import training_step as ts

torch.set_num_threads(spec["num_threads"])
common_args = ts.common_args
extra = dict(spec["extra_args"])
ts.common_args = lambda output_dir: {**common_args(output_dir), **extra}
policy = ts.build_policy(spec["preset"], 0)
cli = argparse.Namespace(num_generations=2, num_inference_steps=spec["num_inference_steps"], value_steps=2,
                         discriminator_steps=2, text_length=32, prompt_frames=32)
with tempfile.TemporaryDirectory() as output_dir:
    step = ts.VGPOStep(policy, cli, spec["batch"], spec["num_patches"], output_dir)
    _, rows, _ = ts.step_inputs(policy.config, cli, spec["batch"], spec["num_patches"], seed=1)
    times = [step.end_to_end(rows) for _ in range(spec["steps"])]
print("RESULT " + json.dumps(times))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="5821008", help="The earlier revision (any git revision).")
    parser.add_argument("--num_patches", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="Trajectories per step (2 per prompt).")
    parser.add_argument("--preset", default="25m", help="Model size of benchmarks/training_step.py.")
    parser.add_argument("--num_inference_steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="Processes per variant (alternating).")
    parser.add_argument("--steps", type=int, default=3, help="Consecutive training steps per process.")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--output_json", default="benchmarks/results/vgpo_step_compare.json")
    parser.add_argument("--quick", action="store_true", help="Tiny model, 4 patches, one round of 2 steps (smoke).")
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.num_patches, args.batch, args.num_inference_steps, args.rounds, args.steps = \
            "tiny", 4, 4, 2, 1, 2
    return args


def run_variant(tree: Path, spec: dict) -> list[float]:
    """Step times (seconds) of one worker process on `tree`."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["num_threads"]))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(dict(spec, tree=str(tree)))], env=env,
                          capture_output=True, text=True, cwd=tree)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"worker on {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarize(times: list[list[float]]) -> dict:
    first = [run[0] for run in times]
    later = [t for run in times for t in run[1:]]
    return {"first": statistics.median(first), "steady": statistics.median(later) if later else None,
            "per_process": times}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    base = {key: getattr(args, key) for key in ("num_patches", "batch", "preset", "num_inference_steps", "steps",
                                                "num_threads")}  # fmt: skip
    revision = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        baseline_tree = Path(scratch) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(baseline_tree), revision], cwd=REPO, check=True)
        variants = {
            f"baseline {revision} fp32": (baseline_tree, {}),
            f"this tree {head} fp32": (REPO, {"adm_reference_samples_per_prompt": 2}),
            f"this tree {head} bf16": (REPO, {"adm_reference_samples_per_prompt": 2, "bf16": True}),
        }
        times: dict[str, list[list[float]]] = {name: [] for name in variants}
        start = time.time()
        try:
            for round_index in range(args.rounds):
                for name, (tree, extra) in variants.items():
                    times[name].append(run_variant(tree, dict(base, extra_args=extra)))
                    print(f"round {round_index + 1}: {name}: {times[name][-1]}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline_tree)], cwd=REPO, check=False)
    summary = {name: summarize(runs) for name, runs in times.items()}
    baseline_name = next(iter(variants))
    reference = summary[baseline_name]["steady"]
    for row in summary.values():
        row["speedup_steady"] = reference / row["steady"] if row["steady"] else None
        row["speedup_first"] = summary[baseline_name]["first"] / row["first"]
    report = {"command": "python " + " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
              "settings": base, "baseline": revision, "head": head, "wall_seconds": time.time() - start,
              "load_average": os.getloadavg(), "results": summary}  # fmt: skip
    Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_json).write_text(json.dumps(report, indent=1))
    print("| variant | first step (s) | steady step (s) | speed-up (steady) | speed-up (first) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in summary.items():
        print(f"| {name} | {row['first']:.1f} | {row['steady']:.1f} | {row['speedup_steady']:.2f}x | "
              f"{row['speedup_first']:.2f}x |")  # fmt: skip
    return report


if __name__ == "__main__":
    main()

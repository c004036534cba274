"""Smoke tests of the performance benchmarks: each `--quick` run finishes and writes the documented JSON, whose
figures are consistent (phases sum to the step total, MFU = achieved / peak, LoRA holds no reference copy)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, output: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--num_threads", "1",
         "--output_json", str(output), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def test_training_step_benchmark_quick(tmp_path):
    output = tmp_path / "training_step.json"
    completed = run_benchmark("training_step", output, "--no_real_reward")
    assert "| patches | batch | pretrain (ms) |" in completed.stdout
    report = json.loads(output.read_text())
    assert set(report) == {"settings", "environment", "results", "real_reward", "end_to_end_check"}
    (row,) = report["results"]
    assert (row["num_patches"], row["batch_size"]) == (4, 2)
    for kind in ("pretrain", "vgpo", "dpo"):
        assert row[kind]["total"] > 0
    vgpo = row["vgpo"]
    phases = ("rollout", "reward", "loss_forward", "backward", "optimizer", "value_update", "discriminator_update")
    assert vgpo["total"] == pytest.approx(sum(vgpo[p] for p in phases))
    # inner timings are parts of their phase
    assert 0 < vgpo["reference_forward"] + vgpo["value_gradient"] + vgpo["discriminator_gradient"] <= vgpo["loss_forward"]
    assert 0 < vgpo["reference_rollout"] <= vgpo["discriminator_update"]
    assert 0 < row["dpo"]["reference_forward"] <= row["dpo"]["loss_forward"]
    assert row["vgpo_over_pretrain"] == pytest.approx(vgpo["total"] / row["pretrain"]["total"])
    assert report["end_to_end_check"]["trainer_training_step_seconds"] > 0


def test_vgpo_step_compare_quick(tmp_path):
    """Both trees' processes run (the baseline here is HEAD, in a temporary worktree) and the ratios are consistent."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the baseline is a git worktree)")
    output = tmp_path / "compare.json"
    completed = run_benchmark("vgpo_step_compare", output, "--baseline", "HEAD")
    assert "| variant | first step (s) |" in completed.stdout
    report = json.loads(output.read_text())
    rows = report["results"]
    assert len(rows) == 3 and all(len(row["per_process"]) == 1 and len(row["per_process"][0]) == 2 for row in rows.values())
    baseline = next(iter(rows.values()))
    for row in rows.values():
        assert row["steady"] > 0 and row["speedup_steady"] == pytest.approx(baseline["steady"] / row["steady"])
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "baseline" not in worktrees


def test_mfu_benchmark_quick(tmp_path):
    output = tmp_path / "mfu.json"
    completed = run_benchmark("mfu", output)
    assert "| precision | matmul peak (GFLOP/s) |" in completed.stdout
    report = json.loads(output.read_text())
    assert set(report) == {"settings", "environment", "flops", "repeats", "summary"}
    flops = report["flops"]
    # linear layers and (CPU flash) attention are counted, forward and backward
    assert any("mm" in op for op in flops["counted_per_op"])
    assert any("attention" in op and "backward" in op for op in flops["counted_per_op"])
    assert flops["counted_forward_backward"] == sum(flops["counted_per_op"].values())
    # the 6·P·T estimate is within a factor of 2 of the counted FLOPs
    assert 0.5 < flops["analytic"]["total"] / flops["counted_forward_backward"] < 2.0
    for precision in ("fp32", "bf16"):
        (row,) = [r[precision] for r in report["repeats"]]
        assert row["mfu"] == pytest.approx(flops["counted_forward_backward"] / row["step_seconds"]
                                           / row["peak_flops_per_second"])
        assert 0 < report["summary"][precision]["mfu"] < 1


def test_memory_benchmark_quick(tmp_path):
    output = tmp_path / "memory.json"
    completed = run_benchmark("memory", output, "--in_process")
    assert "| config | policy params |" in completed.stdout
    report = json.loads(output.read_text())
    assert set(report) == {"settings", "environment", "results", "comparison"}
    results = {r["config"]: r for r in report["results"]}
    assert set(results) == {"vgpo_full", "vgpo_lora", "dpo_full", "dpo_lora"}
    for kind in ("vgpo", "dpo"):
        full, lora = results[f"{kind}_full"], results[f"{kind}_lora"]
        # full fine-tuning holds a frozen copy of the policy; LoRA's reference is the same network, adapters off
        assert full["bytes"]["reference_model_parameters"] == full["bytes"]["trainable_parameters"] > 0
        assert lora["bytes"]["reference_model_parameters"] == 0 and not lora["reference_is_separate_model"]
        assert lora["bytes"]["trainable_parameters"] < full["bytes"]["trainable_parameters"]
        assert 0 < lora["bytes"]["optimizer_state"] < full["bytes"]["optimizer_state"]
        for r in (full, lora):
            assert set(r["phases"]) == {"build_models", "build_trainer", "train"}
            assert r["phases"]["train"]["peak"] >= r["phases"]["train"]["start"]
        assert set(report["comparison"][kind]) >= {"reference_parameter_bytes_full", "train_peak_delta_full_minus_lora"}

"""Smoke tests: `benchmarks/sampling.py --quick` runs and writes the documented JSON; `benchmarks/vgpo_shift_fidelity.py`
reads no learned shift in an untrained policy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_repo_script

ROOT = Path(__file__).resolve().parents[1]


def test_sampling_benchmark_quick_writes_results(tmp_path):
    output = tmp_path / "sampling.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampling.py"), "--quick", "--num_threads", "1",
         "--lengths", "3", "--batch_sizes", "2", "--output_json", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "| patches | batch |" in completed.stdout

    report = json.loads(output.read_text())
    assert set(report) == {"settings", "environment", "results", "ratios", "head_calls"}
    assert {r["variant"] for r in report["results"]} == {"cache", "no_cache", "no_guidance", "value"}
    for row in report["results"]:
        assert row["num_patches"] == 3 and row["batch_size"] == 2
        assert row["median_seconds"] > 0
        # frames/s is the generated latent frames (batch x patches x patch_size) over the median time
        assert abs(row["frames_per_second"] * row["median_seconds"] - 2 * 3 * report["settings"]["patch_size"]) < 1e-6
    (ratios,) = report["ratios"]
    assert {"cache_speedup", "lm_guidance_cost", "value_guidance_overhead"} <= set(ratios)
    assert all(ratios[key] > 0 for key in ("cache_speedup", "lm_guidance_cost", "value_guidance_overhead"))
    assert report["head_calls"][0]["value_grad_ms"] > 0


@pytest.mark.speech
def test_vgpo_shift_fidelity_of_the_reference_itself_is_zero(tmp_path):
    """The untrained ARDM as the 'policy': it has learned none of the value-guidance shift, whose target is not 0."""
    output = tmp_path / "shift.json"
    run_repo_script("benchmarks/vgpo_shift_fidelity.py", "--policy", "pretrained/ardm", "--value_model",
                    "pretrained/value_pitch", "--w_kl", "0.015625", "--task", "ctc", "--num_prompts", "2",
                    "--num_generations", "1", "--corpus_utterances", "120", "--output_json", output, timeout=600)
    report = json.loads(output.read_text())
    assert report["all"]["norm_learned"] == 0 and report["all"]["norm_target"] > 0
    assert sum(report[f"timesteps_q{q}"]["tokens"] for q in range(1, 5)) == report["all"]["tokens"]

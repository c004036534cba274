"""Smoke tests of the paper-table benchmarks: `benchmarks/task_a.py --quick` and `task_b.py --quick` run every row
kind and write the documented JSON and Markdown (the full tables are in docs/results.md)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_table(script: str, tmp_path: Path) -> dict:
    output = tmp_path / f"{script}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick", "--output_json", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    assert output.with_suffix(".md").read_text().count("\n|") == len(report["rows"]) + 2  # header, rule, rows
    assert report["command"].startswith(f"python benchmarks/{script}.py")
    # --replot redraws the same table (and the plot) from the JSON alone
    markdown = output.with_suffix(".md").read_text()
    output.with_suffix(".md").unlink()
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--replot", "--output_json", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert output.with_suffix(".md").read_text() == markdown
    assert output.with_suffix(".png").stat().st_size > 0  # reward against cost
    return report


@pytest.mark.parametrize(
    "script, expected_rows, metrics",
    [
        ("task_a", ["Base", "Best-of-2", "Guided sampling (λ=1)", "ARDM-DPO (β=2)", "VGPO (w_KL=1)"], ["wer", "sim"]),
        (
            "task_b",
            [
                "Base",
                "Best-of-2 (WER)",
                "Best-of-2 (NLL)",
                "Guided sampling (λ=1)",
                "ARDM-DPO (β=2)",
                "VGPO",
                "VGPO + online value update",
                "VGPO + online value update + ADM",
            ],
            ["ctc_nll", "cer", "sim"],
        ),
    ],
)
def test_paper_table_quick(tmp_path, script, expected_rows, metrics):
    report = run_table(script, tmp_path)
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == expected_rows
    for row in rows.values():
        assert all(math.isfinite(row["metrics"][m]) for m in metrics), row
        assert row["infer_s_per_utt"] > 0
    # trained policies carry a measured KL to the base model; Best-of-K the analytic bound log K - (K-1)/K
    for name, row in rows.items():
        if name.startswith(("ARDM-DPO", "VGPO")):
            assert row["metrics"]["kl"] >= 0 and row["train_s"] > 0
        if name.startswith("Best-of-2"):
            assert row["kl_bound"] == pytest.approx(math.log(2) - 0.5)
    # the value model's training time is counted in guided sampling and VGPO rows
    assert rows[expected_rows[-1]]["train_s"] >= next(r for n, r in rows.items() if n.startswith("Guided"))["train_s"]

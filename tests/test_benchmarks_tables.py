"""Smoke test of the paper-table benchmark: `benchmarks/paper_table.py` evaluates every row kind (Base, codec
reconstruction, Best-of-K, guided sampling, a trained policy, a run's checkpoints for the frontier) on the same
prompts and seeds, writes the documented JSON / Markdown / frontier plot, and `--keep` reuses finished rows."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ardm_trl import ARDMForSpeechSynthesis, ARDMValueModel

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.speech


def test_paper_table_evaluates_every_row_kind(tmp_path):
    policy = ARDMForSpeechSynthesis.from_pretrained(ROOT / "pretrained" / "ardm")
    value_model = ARDMValueModel.from_ardm(policy)
    with torch.no_grad():
        value_model.head.output.weight.normal_(0, 0.01)
    value_model.save_pretrained(tmp_path / "value")
    policy.save_pretrained(tmp_path / "run" / "checkpoint-1")
    policy.save_pretrained(tmp_path / "run" / "checkpoint-2")
    (tmp_path / "run" / "checkpoint-2" / "run_info.json").write_text(json.dumps({"train_seconds": 3.0}))
    output = tmp_path / "table.json"
    args = [sys.executable, str(ROOT / "benchmarks" / "paper_table.py"), "--task", "ctc", "--num_prompts", "2",
            "--seeds", "0", "--corpus_utterances", "120", "--max_patches", "24", "--num_inference_steps", "2",
            "--best_of", "2", "--codec_reconstruction", "--value_model", str(tmp_path / "value"),
            "--guidance_scales", "1", "--policy", f"Trained={tmp_path / 'run' / 'checkpoint-2'}",
            "--frontier", f"Run={tmp_path / 'run'}", "--output_json", str(output)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names == ["Base", "Codec reconstruction", "Best-of-2", "Guided sampling (λ=1)", "Trained",
                     "Run @ checkpoint-1", "Run @ checkpoint-2"]
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["Best-of-2"]["kl_bound"] == pytest.approx(math.log(2) - 0.5)
    assert rows["Trained"]["kl"] == pytest.approx(0.0, abs=1e-6) and rows["Trained"]["train_seconds"] == 3.0
    assert all(len(row["scores"]["ctc_nll"]) == 2 for row in report["rows"])
    assert report["meta"]["command"].startswith("python benchmarks/paper_table.py --task ctc")
    assert output.with_suffix(".md").read_text().count("\n|") == len(names) + 2  # header, rule, rows
    assert (tmp_path / "table_frontier.png").stat().st_size > 0
    # --keep: nothing is recomputed, the table is unchanged
    markdown = output.with_suffix(".md").read_text()
    completed = subprocess.run(args + ["--keep"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert output.with_suffix(".md").read_text() == markdown


def test_named_paths_split_at_the_last_equals_sign():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from paper_table import parse_named

    assert parse_named(["VGPO (w_KL=2^-6)=outputs/vgpo", "DPO=out/dpo"]) == [("VGPO (w_KL=2^-6)", "outputs/vgpo"),
                                                                            ("DPO", "out/dpo")]  # fmt: skip
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_named(["outputs/vgpo"])
